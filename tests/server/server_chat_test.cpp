// /v1/chat/completions on llama-tiny: answers equal the C API's generation on
// the same prompt, streaming, stop strings, limits, sampling seeds, a client
// that goes away, several slots at once, SIGTERM with a stream in flight.
#include <atomic>
#include <mutex>

#include "server_fixtures.h"

namespace tinyemo::server_test {
namespace {

// The greedy continuation of `user` through the C API, as the server's plain
// template renders it.
std::string reference_answer(const std::string& user, int max_tokens) {
  static te::Lm lm = te::Lm::load(Workspace::get().lm.string());
  te::Session session(lm);
  te_generate_params g = te_generate_default_params();
  g.max_new_tokens = max_tokens;
  g.ignore_eos = true;
  const char* stop[] = {"\nUser:"};
  g.stop = stop;
  g.n_stop = 1;
  return session.generate(lm.tokenize("User: " + user + "\nAssistant:"), g).text;
}

json chat_body(const std::string& user, int max_tokens, bool stream = false) {
  return {{"messages", {{{"role", "user"}, {"content", user}}}},
          {"temperature", 0},
          {"max_tokens", max_tokens},
          {"ignore_eos", true},
          {"stream", stream}};
}

struct Streamed {
  std::string text, finish_reason;
  int chunks = 0;
  bool done = false;  // "data: [DONE]" arrived
  bool role_first = false;
  json usage;
  int status = 0;
};

// Reads server-sent events; `stop_after` chunks (0: all) then hangs up.
Streamed stream_chat(const ServerProcess& s, const json& body, int stop_after = 0) {
  Streamed out;
  std::string pending;
  auto c = s.client();
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.response_handler = [&](const httplib::Response& r) {
    out.status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    pending.append(data, n);
    for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
      const std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event == "data: [DONE]") {
        out.done = true;
        continue;
      }
      if (event.rfind("data: ", 0) != 0) continue;
      const json j = json::parse(event.substr(6));
      if (j.contains("usage")) out.usage = j["usage"];
      if (!j.contains("choices") || j["choices"].empty()) continue;
      const json& choice = j["choices"][0];
      if (out.chunks == 0) out.role_first = choice["delta"].value("role", "") == "assistant";
      ++out.chunks;
      if (choice["delta"].contains("content")) out.text += choice["delta"]["content"].get<std::string>();
      if (!choice["finish_reason"].is_null()) out.finish_reason = choice["finish_reason"];
      if (stop_after > 0 && out.chunks >= stop_after) return false;
    }
    return true;
  };
  c.send(req);
  return out;
}

ServerProcess& chat_server() {
  static const std::unique_ptr<ServerProcess> server = [] {
    auto s = std::make_unique<ServerProcess>(
        base_args({"--lm", Workspace::get().lm.string(), "--metrics", "--parallel", "2"}));
    EXPECT_TRUE(s->wait_ready()) << s->log();
    return s;
  }();
  return *server;
}

int64_t metric(const ServerProcess& s, const std::string& name) {
  auto c = s.client();
  const auto r = c.Get("/metrics");
  if (!r) return -1;
  const size_t at = r->body.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stoll(r->body.substr(at + name.size() + 2));
}

TEST(ServerChat, GreedyAnswerEqualsTheCApi) {
  auto c = chat_server().client();
  const auto r = c.Post("/v1/chat/completions", chat_body("the happy dog", 24).dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json got = json::parse(r->body);
  EXPECT_EQ(got["object"], "chat.completion");
  EXPECT_EQ(got["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(got["choices"][0]["message"]["content"], reference_answer("the happy dog", 24));
  EXPECT_EQ(got["usage"]["completion_tokens"].get<int>() + got["usage"]["prompt_tokens"].get<int>(),
            got["usage"]["total_tokens"].get<int>());
  // The same request again reuses the slot's cache and answers the same.
  const auto again = c.Post("/v1/chat/completions", chat_body("the happy dog", 24).dump(), "application/json");
  ASSERT_TRUE(again);
  const json second = json::parse(again->body);
  EXPECT_EQ(second["choices"][0]["message"]["content"], got["choices"][0]["message"]["content"]);
  EXPECT_GT(second["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0);
}

TEST(ServerChat, StreamsChunksEndingWithDone) {
  json body = chat_body("a sad rainy day", 20, true);
  body["stream_options"] = {{"include_usage", true}};
  const Streamed s = stream_chat(chat_server(), body);
  EXPECT_EQ(s.status, 200);
  EXPECT_TRUE(s.role_first);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.text, reference_answer("a sad rainy day", 20));
  EXPECT_FALSE(s.finish_reason.empty());
  EXPECT_EQ(s.usage["completion_tokens"], 20);
}

TEST(ServerChat, StopStringsMaxTokensAndSeeds) {
  auto c = chat_server().client();
  const std::string full = reference_answer("the happy dog", 30);
  ASSERT_GT(full.size(), 6u);
  // A stop string: the answer ends before it.
  const std::string stop = full.substr(full.size() / 2, 3);
  json body = chat_body("the happy dog", 30);
  body["stop"] = stop;
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  json got = json::parse(r->body);
  EXPECT_EQ(got["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(got["choices"][0]["message"]["content"], full.substr(0, full.find(stop)));
  // max_tokens: "length".
  r = c.Post("/v1/chat/completions", chat_body("the happy dog", 5).dump(), "application/json");
  got = json::parse(r->body);
  EXPECT_EQ(got["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(got["usage"]["completion_tokens"], 5);
  // Sampling is reproducible for a seed.
  json sampled = chat_body("the happy dog", 16);
  sampled["temperature"] = 0.9;
  sampled["top_p"] = 0.95;
  sampled["seed"] = 1234;
  const std::string a = json::parse(c.Post("/v1/chat/completions", sampled.dump(), "application/json")->body)
                            ["choices"][0]["message"]["content"];
  const std::string b = json::parse(c.Post("/v1/chat/completions", sampled.dump(), "application/json")->body)
                            ["choices"][0]["message"]["content"];
  EXPECT_EQ(a, b);
}

TEST(ServerChat, PromptPastTheContextIs400) {
  auto c = chat_server().client();
  std::string user;
  for (int i = 0; i < 1200; ++i) user += "happy dog ";
  const auto r = c.Post("/v1/chat/completions", chat_body(user, 4).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "context_length_exceeded");
}

// --lm-compute reaches the LM: bf16 prefill loads where the CPU has it;
// a name it does not know stops the server before it serves.
TEST(ServerChat, LmComputeOption) {
  try {
    ServerProcess unknown(base_args({"--lm", Workspace::get().lm.string(), "--lm-compute", "fp8"}));
    ADD_FAILURE() << "the server started with --lm-compute fp8";
  } catch (const std::exception& e) {  // it exits before it listens
    EXPECT_NE(std::string(e.what()).find("--lm-compute"), std::string::npos) << e.what();
  }
  ServerProcess bf16(base_args({"--lm", Workspace::get().lm.string(), "--lm-compute", "bf16"}));
  if (bf16.wait_ready()) {
    EXPECT_EQ(bf16.stop(), 0) << bf16.log();
  } else {  // a CPU without AVX512-BF16 refuses it by name
    EXPECT_NE(bf16.stop(), 0);
    EXPECT_NE(bf16.log().find("AVX512-BF16"), std::string::npos) << bf16.log();
  }
}

TEST(ServerChat, WithoutALanguageModelIs422) {
  ServerProcess s(base_args());
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();
  const auto r = c.Post("/v1/chat/completions", chat_body("hi", 4).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "no_language_model");
  EXPECT_EQ(s.stop(), 0);
}

TEST(ServerChat, ClientDisconnectStopsGenerationAndFreesTheSlot) {
  ServerProcess s(base_args({"--lm", Workspace::get().lm.string(), "--metrics", "--parallel", "1"}));
  ASSERT_TRUE(s.wait_ready()) << s.log();
  const int64_t before = metric(s, "tinyemo_generated_tokens_total");
  const Streamed cut = stream_chat(s, chat_body("the happy dog", 1800, true), /*stop_after=*/3);
  EXPECT_EQ(cut.chunks, 3);
  EXPECT_FALSE(cut.done);
  // The slot is free again well before 1800 tokens could have been made...
  bool freed = false;
  for (int i = 0; i < 200 && !freed; ++i) {
    freed = metric(s, "tinyemo_slots_busy") == 0;
    if (!freed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(freed);
  EXPECT_LT(metric(s, "tinyemo_generated_tokens_total") - before, 1800);
  // ...and serves the next request.
  const Streamed next = stream_chat(s, chat_body("the happy dog", 8, true));
  EXPECT_TRUE(next.done);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(ServerChat, FullQueueIs503WithRetryAfter) {
  ServerProcess s(base_args({"--lm", Workspace::get().lm.string(), "--metrics", "--parallel", "1", "--queue", "1"}));
  ASSERT_TRUE(s.wait_ready()) << s.log();
  // One long generation holds the slot and one request waits for it; a third
  // is refused. Retried when the long one ends before the third arrives.
  bool refused = false;
  for (int attempt = 0; attempt < 5 && !refused; ++attempt) {
    std::thread holder([&] { stream_chat(s, chat_body("the happy dog", 1900, true)); });
    std::thread waiter([&] {
      for (int i = 0; i < 400 && metric(s, "tinyemo_slots_busy") != 1; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      stream_chat(s, chat_body("the sad cat", 4, true));
    });
    for (int i = 0; i < 400; ++i) {
      auto c = s.client();
      const auto m = c.Get("/metrics");
      if (m && m->body.find("tinyemo_queue_depth{queue=\"generation\"} 1") != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    auto c = s.client();
    const auto r = c.Post("/v1/chat/completions", chat_body("x", 2).dump(), "application/json");
    ASSERT_TRUE(r);
    if (r->status == 503) {
      refused = true;
      EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
      EXPECT_EQ(r->get_header_value("Retry-After"), "1");
    }
    holder.join();
    waiter.join();
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(metric(s, "tinyemo_slots_busy"), 0);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(ServerConcurrency, EachSlotAnswersAsTheRequestServedAlone) {
  ServerProcess& s = chat_server();  // --parallel 2
  const std::vector<std::string> prompts = {"the happy dog", "a sad rainy day", "angry red skies",
                                            "calm blue water", "a fearful night", "joy and light"};
  std::vector<std::string> alone;
  for (const auto& p : prompts) alone.push_back(reference_answer(p, 40));
  for (int round = 0; round < 2; ++round) {
    std::vector<Streamed> got(prompts.size());
    std::vector<std::thread> clients;
    for (size_t i = 0; i < prompts.size(); ++i) {
      clients.emplace_back([&, i] { got[i] = stream_chat(s, chat_body(prompts[i], 40, true)); });
    }
    for (auto& t : clients) t.join();
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(got[i].status, 200);
      EXPECT_TRUE(got[i].done) << prompts[i];
      EXPECT_EQ(got[i].text, alone[i]) << prompts[i] << " (round " << round << ")";
    }
  }
  EXPECT_EQ(metric(s, "tinyemo_slots_busy"), 0);
}

TEST(ServerLifecycle, SigtermFinishesTheStreamInFlightAndExitsZero) {
  ServerProcess s(base_args({"--lm", Workspace::get().lm.string(), "--parallel", "1"}));
  ASSERT_TRUE(s.wait_ready()) << s.log();
  Streamed in_flight;
  std::atomic<bool> started{false};
  std::thread client([&] {
    json body = chat_body("the happy dog", 400, true);
    Streamed out;
    std::string pending;
    auto c = s.client();
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      started = true;
      pending.append(data, n);
      return true;
    };
    c.send(req);
    in_flight.done = pending.find("data: [DONE]") != std::string::npos;
  });
  for (int i = 0; i < 400 && !started; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(started);
  kill(s.pid(), SIGTERM);
  client.join();
  EXPECT_TRUE(in_flight.done) << s.log();
  EXPECT_EQ(s.stop(SIGTERM, 60), 0) << s.log();
  // Nothing listens any more.
  httplib::Client c("127.0.0.1", s.port());
  c.set_connection_timeout(2, 0);
  EXPECT_FALSE(c.Get("/health"));
}

}  // namespace
}  // namespace tinyemo::server_test
