// Every route, status and error of `tinyemo serve` over real HTTP on
// loopback, against the CLI and the C API on the same fixtures.
#include <set>

#include "server_fixtures.h"

namespace tinyemo::server_test {
namespace {

const std::vector<std::string> kImages = {"rocket.jpg", "chelsea.png", "camera.png"};

// `tinyemo classify --json` on the fixture images: what /v1/classify must match.
json cli_classify(const std::vector<std::string>& extra = {}) {
  const Workspace& w = Workspace::get();
  std::vector<std::string> args = {"classify", "--clip", w.clip.string(), "--projector", w.projector.string(), "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  for (const auto& f : kImages) args.push_back((w.images / f).string());
  const auto r = testing::run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out)["results"];
}

void expect_same_result(const json& got, const json& want) {
  ASSERT_TRUE(got.contains("predicted")) << got.dump();
  EXPECT_EQ(got["predicted"], want["predicted"]);
  ASSERT_EQ(got["scores"].size(), want["scores"].size());
  for (const auto& [label, p] : want["scores"].items()) {
    EXPECT_NEAR(got["scores"][label].get<double>(), p.get<double>(), 1e-5) << label;
  }
  ASSERT_EQ(got["top"].size(), want["top"].size());
  for (size_t i = 0; i < want["top"].size(); ++i) {
    EXPECT_EQ(got["top"][i]["label"], want["top"][i]["label"]);
    EXPECT_NEAR(got["top"][i]["cosine"].get<double>(), want["top"][i]["cosine"].get<double>(), 1e-5);
    EXPECT_NEAR(got["top"][i]["distance"].get<double>(), want["top"][i]["distance"].get<double>(), 1e-5);
  }
}

void expect_error(const httplib::Result& r, int status, const std::string& code) {
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  const json body = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r->body;
  ASSERT_TRUE(body.contains("error")) << r->body;
  EXPECT_EQ(body["error"]["code"], code) << r->body;
  EXPECT_TRUE(body["error"]["message"].is_string() && !body["error"]["message"].get<std::string>().empty());
  EXPECT_TRUE(body["error"]["type"].is_string());
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
}

// The server most tests share: CLIP, the projector, llama-tiny for chat, metrics.
ServerProcess& shared_server() {
  static const std::unique_ptr<ServerProcess> server = [] {
    auto s = std::make_unique<ServerProcess>(
        base_args({"--lm", Workspace::get().lm.string(), "--metrics", "--parallel", "2"}));
    EXPECT_TRUE(s->wait_ready()) << s->log();
    return s;
  }();
  return *server;
}

httplib::Result post_json(httplib::Client& c, const std::string& path, const json& body) {
  return c.Post(path.c_str(), body.dump(), "application/json");
}

TEST(ServerHealth, LoadingThenOkWithoutTheKey) {
  ServerProcess s(base_args({"--debug-load-delay-ms", "1500", "--api-key", "sekrit"}));
  auto c = s.client();
  auto r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(json::parse(r->body), json({{"status", "loading"}}));
  EXPECT_FALSE(r->get_header_value("Retry-After").empty());
  // A model route while loading: 503 with Retry-After (the key is right).
  const httplib::Headers key = {{"Authorization", "Bearer sekrit"}};
  r = c.Post("/v1/classify", key, json({{"images", {data_uri(Workspace::get().images / "rocket.jpg")}}}).dump(),
             "application/json");
  expect_error(r, 503, "loading");
  EXPECT_FALSE(r->get_header_value("Retry-After").empty());
  ASSERT_TRUE(s.wait_ready());
  r = c.Get("/health");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body), json({{"status", "ok"}}));
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(ServerModels, ListsWhatIsLoadedAndItsModalities) {
  auto c = shared_server().client();
  const auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json body = json::parse(r->body);
  EXPECT_EQ(body["object"], "list");
  std::set<std::string> kinds;
  for (const auto& m : body["data"]) {
    kinds.insert(m["kind"].get<std::string>());
    EXPECT_EQ(m["object"], "model");
    EXPECT_TRUE(m["modalities"]["input"].is_array());
    if (m["kind"] == "projector") {
      EXPECT_EQ(m["labels"], json({"anger", "joy", "fear"}));
    } else if (m["kind"] == "clip") {
      EXPECT_EQ(m["embedding_dim"], 48);
    } else if (m["kind"] == "lm") {
      EXPECT_EQ(m["id"], "llama-tiny");
    }
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"clip", "projector", "lm"}));
  EXPECT_EQ(body["capabilities"]["chat"], true);
  EXPECT_EQ(body["capabilities"]["reason"], false);
}

TEST(ServerClassify, JsonImagesMatchTheCliInRequestOrder) {
  const Workspace& w = Workspace::get();
  const json want = cli_classify();
  auto c = shared_server().client();
  const std::string bare = data_uri(w.images / "chelsea.png").substr(std::string("data:image/png;base64,").size());
  // A data URI, bare base64, an undecodable image, another data URI.
  const json body = {{"images",
                      {data_uri(w.images / "rocket.jpg"), bare, "data:image/png;base64,iVBORw0KGgpnYXJiYWdl",
                       data_uri(w.images / "camera.png")}}};
  const auto r = post_json(c, "/v1/classify", body);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json got = json::parse(r->body);
  EXPECT_EQ(got["labels"], json({"anger", "joy", "fear"}));
  ASSERT_EQ(got["results"].size(), 4u);
  expect_same_result(got["results"][0], want[0]);
  expect_same_result(got["results"][1], want[1]);
  EXPECT_TRUE(got["results"][2].contains("error")) << got["results"][2];
  EXPECT_NE(got["results"][2]["error"].get<std::string>().find("images[2]"), std::string::npos);
  expect_same_result(got["results"][3], want[2]);
}

TEST(ServerClassify, MultipartFilesInTheOrderSent) {
  const Workspace& w = Workspace::get();
  const json want = cli_classify();
  auto c = shared_server().client();
  // Field names that sort in another order than sent.
  const httplib::MultipartFormDataItems items = {
      {"z", read_file(w.images / "rocket.jpg"), "rocket.jpg", "image/jpeg"},
      {"a", read_file(w.images / "chelsea.png"), "chelsea.png", "image/png"},
      {"notes", "not an image at all", "notes.txt", "text/plain"},
      {"m", read_file(w.images / "camera.png"), "camera.png", "image/png"},
      {"top_k", "2", "", ""},
  };
  const auto r = c.Post("/v1/classify", items);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json got = json::parse(r->body);
  ASSERT_EQ(got["results"].size(), 4u);
  EXPECT_EQ(got["results"][0]["image"], "rocket.jpg");
  EXPECT_EQ(got["results"][0]["predicted"], want[0]["predicted"]);
  EXPECT_EQ(got["results"][1]["predicted"], want[1]["predicted"]);
  EXPECT_NE(got["results"][2]["error"].get<std::string>().find("notes.txt"), std::string::npos) << got["results"][2];
  EXPECT_EQ(got["results"][3]["predicted"], want[2]["predicted"]);
  EXPECT_EQ(got["results"][0]["top"].size(), 2u);
}

TEST(ServerClassify, LabelSubsetMatchesTheCliAndUnknownLabelsAreRefused) {
  const Workspace& w = Workspace::get();
  const json want = cli_classify({"--labels", "fear,anger", "--top-k", "1"});
  auto c = shared_server().client();
  json images = json::array();
  for (const auto& f : kImages) images.push_back(data_uri(w.images / f));
  auto r = post_json(c, "/v1/classify", {{"images", images}, {"labels", {"fear", "anger"}}, {"top_k", 1}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json got = json::parse(r->body);
  EXPECT_EQ(got["labels"], json({"fear", "anger"}));
  for (size_t i = 0; i < kImages.size(); ++i) expect_same_result(got["results"][i], want[i]);
  // Back to the model's set on the next request.
  r = post_json(c, "/v1/classify", {{"images", images}});
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["labels"], json({"anger", "joy", "fear"}));
  r = post_json(c, "/v1/classify", {{"images", images}, {"labels", {"joy", "calm"}}});
  expect_error(r, 400, "unknown_label");
  EXPECT_NE(r->body.find("calm"), std::string::npos);
  expect_error(post_json(c, "/v1/classify", {{"images", images}, {"labels", {"joy", "joy"}}}), 400, "invalid_value");
  expect_error(post_json(c, "/v1/classify", {{"images", images}, {"labels", json::array()}}), 400, "invalid_value");
  expect_error(post_json(c, "/v1/classify", {{"images", images}, {"top_k", 0}}), 400, "invalid_value");
}

TEST(ServerClassify, OpenVocabularyUsesTheLmsLabelAnchors) {
  const Workspace& w = Workspace::get();
  ServerProcess s({"--clip", w.clip.string(), "--projector", w.projector_lm.string(), "--anchors-lm", w.lm.string(),
                   "--threads", "2"});
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();
  const std::vector<std::string> labels = {"anger", "calm", "storm"};
  const auto r = post_json(c, "/v1/classify", {{"images", {data_uri(w.images / "chelsea.png")}}, {"labels", labels}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json got = json::parse(r->body)["results"][0];
  // The same through the C API: CLIP embedding, the projector with the LM's anchors.
  te::Clip clip = te::Clip::load(w.clip.string());
  te::Projector projector = te::Projector::load(w.projector_lm.string());
  te::Lm lm = te::Lm::load(w.lm.string());
  projector.set_anchors(labels, lm.label_anchors(labels));
  const te::Image image = te::Image::load((w.images / "chelsea.png").string());
  const std::vector<float> e = clip.embed({&image});
  std::vector<float> p(labels.size());
  int32_t predicted = -1;
  te::check(te_projector_classify(projector.get(), e.data(), 1, e.size(), &predicted, p.data(), nullptr, nullptr));
  EXPECT_EQ(got["predicted"], labels[static_cast<size_t>(predicted)]);
  for (size_t l = 0; l < labels.size(); ++l) EXPECT_NEAR(got["scores"][labels[l]].get<double>(), p[l], 1e-5);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(ServerEmbeddings, ClipEmbeddingsAsFloatsAndBase64) {
  const Workspace& w = Workspace::get();
  auto c = shared_server().client();
  const auto r = post_json(c, "/v1/embeddings",
                           {{"input", {data_uri(w.images / "rocket.jpg"), data_uri(w.images / "camera.png")}}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json got = json::parse(r->body);
  EXPECT_EQ(got["object"], "list");
  ASSERT_EQ(got["data"].size(), 2u);
  te::Clip clip = te::Clip::load(w.clip.string());
  const te::Image a = te::Image::load((w.images / "rocket.jpg").string());
  const te::Image b = te::Image::load((w.images / "camera.png").string());
  const std::vector<float> want = clip.embed({&a, &b});
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(got["data"][i]["index"], i);
    const auto row = got["data"][i]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(row.size(), 48u);
    for (size_t k = 0; k < 48; ++k) EXPECT_NEAR(row[k], want[i * 48 + k], 1e-5f);
  }
  // base64: little-endian float32 bytes of the same numbers.
  const auto r64 = post_json(c, "/v1/embeddings",
                             {{"input", data_uri(w.images / "rocket.jpg")}, {"encoding_format", "base64"}});
  ASSERT_TRUE(r64);
  ASSERT_EQ(r64->status, 200) << r64->body;
  const std::string encoded = json::parse(r64->body)["data"][0]["embedding"];
  EXPECT_EQ(encoded.size(), (48 * 4 + 2) / 3 * 4);
  expect_error(post_json(c, "/v1/embeddings", {{"input", "a photo of a happy dog"}}), 422,
               "text_embeddings_unsupported");
  expect_error(post_json(c, "/v1/embeddings", {{"input", "data:text/plain;base64,aGVsbG8="}}), 415,
               "unsupported_media_type");
  expect_error(post_json(c, "/v1/embeddings", {{"input", "data:image/png;base64,aGVsbG8="}}), 400, "invalid_image");
  expect_error(post_json(c, "/v1/embeddings", {{"input", "https://example.com/cat.jpg"}}), 400, "remote_url");
}

TEST(ServerErrors, MalformedRequestsGetJsonErrors) {
  auto c = shared_server().client();
  expect_error(c.Post("/v1/classify", "{\"images\": [", "application/json"), 400, "invalid_json");
  expect_error(c.Post("/v1/classify", "[1, 2]", "application/json"), 400, "invalid_json");
  expect_error(c.Post("/v1/classify", std::string(200, '['), "application/json"), 400, "invalid_json");
  expect_error(post_json(c, "/v1/classify", {{"pictures", json::array()}}), 400, "missing_field");
  expect_error(post_json(c, "/v1/classify", {{"images", json::array()}}), 400, "invalid_value");
  expect_error(post_json(c, "/v1/classify", {{"images", {42}}}), 400, "invalid_value");
  expect_error(post_json(c, "/v1/classify", {{"images", {"http://example.com/a.png"}}}), 400, "remote_url");
  expect_error(c.Post("/v1/chat/completions", "{}", "application/json"), 400, "missing_field");
  expect_error(post_json(c, "/v1/chat/completions", {{"messages", {{{"role", "wizard"}, {"content", "hi"}}}}}), 400,
               "invalid_value");
  expect_error(post_json(c, "/v1/chat/completions",
                         {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"temperature", 7}}),
               400, "invalid_value");
  expect_error(post_json(c, "/v1/chat/completions",
                         {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 0}}),
               400, "invalid_value");
  expect_error(post_json(c, "/v1/chat/completions",
                         {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"stop", {"a", "b", "c", "d", "e"}}}),
               400, "invalid_value");
  // 404 and 405, as JSON.
  auto r = c.Get("/v2/nothing");
  expect_error(r, 404, "not_found");
  r = c.Get("/v1/classify");
  expect_error(r, 405, "method_not_allowed");
  EXPECT_EQ(r->get_header_value("Allow"), "POST");
  expect_error(c.Delete("/health"), 405, "method_not_allowed");
  expect_error(c.Put("/v1/chat/completions", "{}", "application/json"), 405, "method_not_allowed");
  // 415: a body type the route does not take.
  expect_error(c.Post("/v1/classify", "hello", "text/plain"), 415, "unsupported_media_type");
  expect_error(c.Post("/v1/chat/completions", "a=b", "application/x-www-form-urlencoded"), 415,
               "unsupported_media_type");
  expect_error(c.Post("/v1/embeddings", std::string(20000, 'a'), "application/x-www-form-urlencoded"), 415,
               "unsupported_media_type");
  // 422: an image for chat without a vision-language model; /v1/reason without a reasoning model.
  const json image_chat = {
      {"messages",
       {{{"role", "user"},
         {"content",
          {{{"type", "text"}, {"text", "what is the mood?"}},
           {{"type", "image_url"}, {"image_url", {{"url", data_uri(Workspace::get().images / "rocket.jpg")}}}}}}}}}};
  expect_error(post_json(c, "/v1/chat/completions", image_chat), 422, "no_vision_model");
  expect_error(post_json(c, "/v1/reason", {{"image", data_uri(Workspace::get().images / "rocket.jpg")}}), 422,
               "no_reasoning_model");
  // Nothing above left a slot busy or took the server down.
  r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("tinyemo_slots_busy 0"), std::string::npos);
  EXPECT_EQ(c.Get("/health")->status, 200);
}

TEST(ServerErrors, LimitsGive413) {
  const Workspace& w = Workspace::get();
  ServerProcess s(base_args({"--max-body-mb", "1", "--max-pixels", "10000", "--max-images", "2"}));
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();
  // A body over --max-body-mb, as JSON and as a form.
  expect_error(c.Post("/v1/classify", std::string(3 << 20, ' '), "application/json"), 413, "body_too_large");
  const httplib::MultipartFormDataItems big = {{"images", std::string(3 << 20, 'x'), "big.png", "image/png"}};
  const auto rb = c.Post("/v1/classify", big);
  ASSERT_TRUE(rb);
  EXPECT_EQ(rb->status, 413) << rb->body;
  expect_error(c.Post("/v1/embeddings", std::string(3 << 20, ' '), "application/json"), 413, "body_too_large");
  // An image over --max-pixels (rocket.jpg is larger than 100 x 100).
  expect_error(post_json(c, "/v1/classify", {{"images", {data_uri(w.images / "rocket.jpg")}}}), 413,
               "image_too_large");
  expect_error(post_json(c, "/v1/embeddings", {{"input", {data_uri(w.images / "rocket.jpg")}}}), 413,
               "image_too_large");
  // More images than --max-images.
  expect_error(post_json(c, "/v1/classify", {{"images", {"aGk=", "aGk=", "aGk="}}}), 413, "too_many_images");
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(ServerAuth, BearerKeyOnEveryRouteButHealthAndThePage) {
  ServerProcess s(base_args({"--api-key", "sekrit", "--metrics"}));
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c = s.client();
  const std::string body = json({{"images", {data_uri(Workspace::get().images / "rocket.jpg")}}}).dump();
  auto r = c.Post("/v1/classify", body, "application/json");
  expect_error(r, 401, "missing_api_key");
  EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer");
  expect_error(c.Post("/v1/classify", {{"Authorization", "Bearer wrong"}}, body, "application/json"), 401,
               "invalid_api_key");
  expect_error(c.Get("/v1/models"), 401, "missing_api_key");
  expect_error(c.Get("/metrics"), 401, "missing_api_key");
  r = c.Post("/v1/classify", {{"Authorization", "Bearer sekrit"}}, body, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(c.Get("/health")->status, 200);
  r = c.Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("<!doctype html>"), std::string::npos);
  EXPECT_EQ(c.Get("/app.js")->status, 200);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(ServerMetrics, PrometheusTextWithMetricsOnly) {
  auto c = shared_server().client();
  ASSERT_EQ(post_json(c, "/v1/classify", {{"images", {data_uri(Workspace::get().images / "rocket.jpg")}}})->status,
            200);
  const auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
  for (const char* needle :
       {"tinyemo_requests_total{route=\"/v1/classify\",status=\"200\"}",
        "tinyemo_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"+Inf\"}", "tinyemo_images_total ",
        "tinyemo_images_per_second ", "tinyemo_tokens_per_second ", "tinyemo_queue_depth{queue=\"vision\"}",
        "tinyemo_slots_busy ", "process_resident_memory_bytes "}) {
    EXPECT_NE(r->body.find(needle), std::string::npos) << needle << "\n" << r->body;
  }
  // Off by default.
  ServerProcess s(base_args());
  ASSERT_TRUE(s.wait_ready()) << s.log();
  auto c2 = s.client();
  expect_error(c2.Get("/metrics"), 404, "not_found");
  EXPECT_EQ(s.stop(), 0);
}

}  // namespace
}  // namespace tinyemo::server_test
