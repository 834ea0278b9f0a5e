// The multimodal routes on tinyllava-tiny (a 320-token LLaMA behind a small
// CLIP tower; the tokenizer trained here sits beside its weights): chat with
// image_url parts and /v1/reason answer as the C API does on the same inputs,
// streamed or not, label sets included, several slots at once.
#include <atomic>

#include "../mm/mm_fixtures.h"
#include "server_fixtures.h"

namespace tinyemo::server_test {
namespace {

const fs::path& mm_dir() { return tinyllava_dir(); }

ServerProcess& mm_server() {
  static const std::unique_ptr<ServerProcess> server = [] {
    const Workspace& w = Workspace::get();
    auto s = std::make_unique<ServerProcess>(std::vector<std::string>{
        "--clip", w.clip.string(), "--projector", w.projector_lm.string(), "--mm", mm_dir().string(), "--parallel",
        "2", "--threads", "2", "--metrics"});
    if (!s->wait_ready()) throw std::runtime_error("the mm server did not get ready:\n" + s->log());
    return s;
  }();
  return *server;
}

te_generate_params greedy(int max_tokens) {
  te_generate_params g = te_mm_default_generate_params();
  g.temperature = 0.0f;
  g.max_new_tokens = max_tokens;
  return g;
}

json image_chat(const fs::path& image, const std::string& question, int max_tokens, bool stream = false) {
  return {{"messages",
           {{{"role", "user"},
             {"content",
              {{{"type", "image_url"}, {"image_url", {{"url", data_uri(image)}}}},
               {{"type", "text"}, {"text", question}}}}}}},
          {"temperature", 0},
          {"max_tokens", max_tokens},
          {"stream", stream}};
}

// The concatenated deltas of a server-sent event stream and its last JSON event.
struct Events {
  std::string text;
  json last;
  bool done = false;
};
Events read_events(const std::string& body, const char* delta_path) {
  Events e;
  size_t at = 0;
  for (size_t end; (end = body.find("\n\n", at)) != std::string::npos; at = end + 2) {
    const std::string event = body.substr(at, end - at);
    if (event == "data: [DONE]") {
      e.done = true;
      continue;
    }
    const json j = json::parse(event.substr(6), nullptr, false);
    if (j.is_discarded()) continue;
    if (std::string(delta_path) == "chat") {
      if (j.contains("choices") && !j["choices"].empty() && j["choices"][0]["delta"].contains("content")) {
        e.text += j["choices"][0]["delta"]["content"].get<std::string>();
      }
    } else if (j.value("object", "") == "reason.delta") {
      e.text += j["delta"].get<std::string>();
    }
    e.last = j;
  }
  return e;
}

TEST(ServerMm, ModelsListTheReasoningModel) {
  auto c = mm_server().client();
  const auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  const json body = json::parse(r->body);
  bool found = false;
  for (const auto& m : body["data"]) {
    if (m["kind"] == "mm") {
      found = true;
      EXPECT_EQ(m["conversation"], "llama");
      EXPECT_EQ(m["modalities"]["input"], json({"text", "image"}));
    }
  }
  EXPECT_TRUE(found) << body.dump();
  EXPECT_EQ(body["capabilities"]["reason"], true);
  EXPECT_EQ(body["capabilities"]["vision_chat"], true);
  EXPECT_EQ(body["capabilities"]["chat"], true);
}

TEST(ServerMm, ChatWithAnImageEqualsTheCApi) {
  const Workspace& w = Workspace::get();
  te::Mm mm = te::Mm::load(mm_dir().string());
  te::MmSession session(mm);
  const te::Image image = te::Image::load((w.images / "rocket.jpg").string());
  const std::string want = session.generate({{"<image>\nWhat is shown?", std::nullopt}}, {&image}, greedy(10)).text;
  ASSERT_FALSE(want.empty());

  auto c = mm_server().client();
  auto r = c.Post("/v1/chat/completions", image_chat(w.images / "rocket.jpg", "What is shown?", 10).dump(),
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json got = json::parse(r->body);
  EXPECT_EQ(got["choices"][0]["message"]["content"], want);
  EXPECT_EQ(got["model"], "tinyllava");
  // Streamed: the same text in chunks, then [DONE].
  r = c.Post("/v1/chat/completions", image_chat(w.images / "rocket.jpg", "What is shown?", 10, true).dump(),
             "application/json");
  ASSERT_TRUE(r);
  const Events e = read_events(r->body, "chat");
  EXPECT_TRUE(e.done);
  EXPECT_EQ(e.text, want);
  // A follow-up turn: the answer goes back as the assistant's message.
  json follow = image_chat(w.images / "rocket.jpg", "What is shown?", 6);
  follow["messages"].push_back({{"role", "assistant"}, {"content", want}});
  follow["messages"].push_back({{"role", "user"}, {"content", "Why?"}});
  r = c.Post("/v1/chat/completions", follow.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  te::MmSession again(mm);
  EXPECT_EQ(json::parse(r->body)["choices"][0]["message"]["content"],
            again.generate({{"<image>\nWhat is shown?", want}, {"Why?", std::nullopt}}, {&image}, greedy(6)).text);
}

TEST(ServerMm, ImageChatErrors) {
  const Workspace& w = Workspace::get();
  auto c = mm_server().client();
  json bad = image_chat(w.images / "rocket.jpg", "x", 4);
  bad["messages"][0]["content"][0]["image_url"]["url"] = "data:image/png;base64,aGVsbG8=";
  auto r = c.Post("/v1/chat/completions", bad.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "invalid_image");
  bad["messages"][0]["content"][0]["image_url"]["url"] = "data:text/html;base64,aGVsbG8=";
  r = c.Post("/v1/chat/completions", bad.dump(), "application/json");
  EXPECT_EQ(r->status, 415) << r->body;
  json ends_with_assistant = image_chat(w.images / "rocket.jpg", "x", 4);
  ends_with_assistant["messages"].push_back({{"role", "assistant"}, {"content", "done"}});
  r = c.Post("/v1/chat/completions", ends_with_assistant.dump(), "application/json");
  EXPECT_EQ(r->status, 400) << r->body;
}

TEST(ServerMm, ReasonEqualsTheCApiStreamedOrNot) {
  const Workspace& w = Workspace::get();
  te::Mm mm = te::Mm::load(mm_dir().string());
  te::Clip clip = te::Clip::load(w.clip.string());
  te::Projector projector = te::Projector::load(w.projector_lm.string());
  te::Reasoner reasoner(mm, projector, &clip);
  const te::Image image = te::Image::load((w.images / "chelsea.png").string());
  const te::Reasoning want = reasoner.reason(image, greedy(12));
  ASSERT_FALSE(want.text.empty());

  auto c = mm_server().client();
  json body = {{"image", data_uri(w.images / "chelsea.png")}, {"temperature", 0}, {"max_tokens", 12}};
  auto r = c.Post("/v1/reason", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json got = json::parse(r->body);
  EXPECT_EQ(got["label"], want.label);
  EXPECT_EQ(got["text"], want.text);
  EXPECT_EQ(got["reasoning"], want.reasoning);
  EXPECT_EQ(got["lm_label"], want.lm_label);
  ASSERT_EQ(got["scores"].size(), want.scores.size());
  for (const auto& [label, p] : want.scores) EXPECT_NEAR(got["scores"][label].get<double>(), p, 1e-5) << label;
  // The projector's label is /v1/classify's.
  r = c.Post("/v1/classify", json({{"images", {data_uri(w.images / "chelsea.png")}}}).dump(), "application/json");
  EXPECT_EQ(json::parse(r->body)["results"][0]["predicted"], want.label);

  body["stream"] = true;
  r = c.Post("/v1/reason", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/event-stream", 0), 0u);
  const Events e = read_events(r->body, "reason");
  EXPECT_TRUE(e.done);
  EXPECT_FALSE(e.text.empty());
  EXPECT_EQ(e.last["object"], "reason.result");
  EXPECT_EQ(e.last["label"], want.label);
  EXPECT_EQ(e.last["text"], want.text);
}

TEST(ServerMm, ReasonLabelSets) {
  const Workspace& w = Workspace::get();
  auto c = mm_server().client();
  const auto reason = [&](const json& labels) {
    return c.Post("/v1/reason",
                  json({{"image", data_uri(w.images / "camera.png")}, {"labels", labels}, {"max_tokens", 4}}).dump(),
                  "application/json");
  };
  auto r = reason({"fear", "anger"});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["labels"], json({"fear", "anger"}));
  // New labels: anchored in the LM's embeddings (the projector's space is the LM's).
  r = reason({"awe", "calm", "anger"});
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["labels"], json({"awe", "calm", "anger"}));
  // Back to the projector's own set.
  r = c.Post("/v1/reason", json({{"image", data_uri(w.images / "camera.png")}, {"max_tokens", 4}}).dump(),
             "application/json");
  EXPECT_EQ(json::parse(r->body)["labels"], json({"anger", "joy", "fear"}));
  r = reason(json::array());
  EXPECT_EQ(r->status, 400);
}

TEST(ServerMm, ReasonRefusesLabelsItCannotAnchor) {
  // A projector whose space is not the LM's: new labels cannot be anchored.
  const Workspace& w = Workspace::get();
  ServerProcess s({"--clip", w.clip.string(), "--projector", w.projector.string(), "--mm", mm_dir().string(),
                   "--threads", "2"});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();
  const auto r = c.Post(
      "/v1/reason",
      json({{"image", data_uri(w.images / "camera.png")}, {"labels", {"awe", "joy"}}, {"stream", true}}).dump(),
      "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "unknown_label");
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(ServerMm, ConcurrentReasoningEqualsEachServedAlone) {
  const Workspace& w = Workspace::get();
  auto c = mm_server().client();
  const std::vector<std::string> files = {"rocket.jpg", "chelsea.png", "camera.png", "coffee.png"};
  const auto body = [&](size_t i) {
    return json({{"image", data_uri(w.images / files[i])}, {"temperature", 0}, {"max_tokens", 16}}).dump();
  };
  std::vector<std::string> alone;
  for (size_t i = 0; i < files.size(); ++i) {
    const auto r = c.Post("/v1/reason", body(i), "application/json");
    ASSERT_TRUE(r);
    alone.push_back(json::parse(r->body)["text"]);
  }
  std::vector<std::string> together(files.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < files.size(); ++i) {
    clients.emplace_back([&, i] {
      auto own = mm_server().client();
      const auto r = own.Post("/v1/reason", body(i), "application/json");
      if (r && r->status == 200) together[i] = json::parse(r->body)["text"];
    });
  }
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < files.size(); ++i) EXPECT_EQ(together[i], alone[i]) << files[i];
  const auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("tinyemo_slots_busy 0"), std::string::npos);
}

// llama.cpp's pair (LM .gguf + mmproj .gguf, written by `tinyemo convert
// --mmproj-out`) behind --mm/--mmproj answers as the C API does on the same
// pair, and as the folder it came from (the pair reproduces the folder's
// greedy ids: tests/mm/mmproj_test.cpp); /v1/reason takes the projector's
// CLIP from --clip, since the pair's tower has no post-LayerNorm.
TEST(ServerMm, AnMmprojPairServesWhatTheFolderServes) {
  const Workspace& w = Workspace::get();
  testing::TempDir dir;
  // The fixture with a tokenizer llama.cpp's SentencePiece can carry (no NFKC normaliser).
  const fs::path model = dir.path() / "model";
  testing::copy_tinyllava_fixture("tinyllava-tiny", model);
  const std::string lm = (dir.path() / "lm.gguf").string(), mmproj = (dir.path() / "mmproj.gguf").string();
  const auto converted = testing::run_cli(
      {"convert", "--to", "gguf", "--quant", "f32", "--model", model.string(), "--out", lm, "--mmproj-out", mmproj});
  ASSERT_EQ(converted.exit_code, 0) << converted.err;

  te_mm_params params = te_mm_default_params();
  params.mmproj = mmproj.c_str();
  params.conversation = "llama";
  te::Mm pair = te::Mm::load(lm, params);
  te::Mm folder = te::Mm::load(model.string());
  const te::Image image = te::Image::load((w.images / "rocket.jpg").string());
  te::MmSession pair_session(pair), folder_session(folder);
  const std::string want = pair_session.generate({{"<image>\nWhat is shown?", std::nullopt}}, {&image}, greedy(10)).text;
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(want, folder_session.generate({{"<image>\nWhat is shown?", std::nullopt}}, {&image}, greedy(10)).text);

  ServerProcess s({"--clip", w.clip.string(), "--projector", w.projector_lm.string(), "--mm", lm, "--mmproj", mmproj,
                   "--mm-template", "llama", "--threads", "2"});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();
  auto r = c.Post("/v1/chat/completions", image_chat(w.images / "rocket.jpg", "What is shown?", 10).dump(),
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["choices"][0]["message"]["content"], want);
  r = c.Post("/v1/reason", json({{"image", data_uri(w.images / "chelsea.png")}, {"max_tokens", 4}}).dump(),
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(s.stop(), 0) << s.log();

  // --mmproj names the second file of a pair: alone it is refused at start.
  ServerProcess alone(base_args({"--mmproj", mmproj}));
  EXPECT_FALSE(alone.wait_ready());
  EXPECT_NE(alone.stop(), 0);
  EXPECT_NE(alone.log().find("--mmproj needs --mm"), std::string::npos) << alone.log();
}

}  // namespace
}  // namespace tinyemo::server_test
