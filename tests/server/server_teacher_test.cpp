// `tinyemo data pretrain|emoreason` with `tinyemo serve --mm` (tinyllava-tiny,
// random weights) as the teacher: the instruct-data generator's plumbing end
// to end over real HTTP. Images travel as data URIs in image_url parts; each
// record holds the answer the server gives to that prompt and image; a rerun
// resumes without a request; EmoReason answers that do not parse go to the
// rejects file with the reason. What the random weights say is not judged.
#include <fstream>
#include <map>

#include "server_fixtures.h"

namespace tinyemo::server_test {
namespace {

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

// The id the server lists for its multimodal model (sent as --teacher-model).
std::string mm_model_id(ServerProcess& server) {
  auto c = server.client();
  auto r = c.Get("/v1/models");
  if (!r || r->status != 200) throw std::runtime_error("GET /v1/models failed:\n" + server.log());
  const json models = json::parse(r->body);
  for (const auto& m : models["data"]) {
    if (m["kind"] == "mm") return m["id"];
  }
  throw std::runtime_error("the server lists no mm model: " + r->body);
}

TEST(ServerAsTeacher, PretrainEmoReasonAndResume) {
  const Workspace& w = Workspace::get();
  ServerProcess server({"--clip", w.clip.string(), "--projector", w.projector_lm.string(), "--mm",
                        tinyllava_dir().string(), "--parallel", "2", "--threads", "2"});
  ASSERT_TRUE(server.wait_ready()) << server.log();
  const std::string model = mm_model_id(server);
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port()) + "/v1";

  // A <label>/<file> folder of four images.
  testing::TempDir d;
  const std::map<std::string, std::string> images = {{"joy/rocket.jpg", "rocket.jpg"},
                                                     {"joy/coffee.png", "coffee.png"},
                                                     {"fear/chelsea.png", "chelsea.png"},
                                                     {"anger/camera.png", "camera.png"}};
  for (const auto& [rel, src] : images) {
    fs::create_directories((d / "images" / rel).parent_path());
    fs::copy_file(w.images / src, d / "images" / rel);
  }
  const std::vector<std::string> common = {"--teacher", base, "--teacher-model", model, "--images",
                                           (d / "images").string(), "--max-tokens", "6", "--temperature", "0",
                                           "--concurrency", "2", "--retries", "1", "--timeout-s", "120",
                                           "--no-sync", "--json"};
  auto with = [&](std::vector<std::string> head, const std::vector<std::string>& tail) {
    head.insert(head.end(), common.begin(), common.end());
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  };

  // pretrain: one record per image, the server's answer verbatim.
  const fs::path out = d / "pretrain.jsonl";
  auto r = testing::run_cli(with({"data", "pretrain"}, {"--out", out.string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << server.log();
  json summary = json::parse(r.out);
  EXPECT_EQ(summary["written"], 4) << summary;
  EXPECT_EQ(summary["failed"], 0) << summary;
  const std::vector<json> records = read_jsonl(out);
  ASSERT_EQ(records.size(), 4u);
  auto c = server.client(120);
  for (const json& rec : records) {
    const std::string image = rec["image"];
    ASSERT_TRUE(images.count(image)) << rec;
    ASSERT_EQ(rec["conversations"].size(), 2u) << rec;
    EXPECT_EQ(rec["conversations"][0]["from"], "human");
    EXPECT_EQ(rec["conversations"][1]["from"], "gpt");
    const std::string human = rec["conversations"][0]["value"];
    ASSERT_EQ(human.rfind("<image>\n", 0), 0u) << human;
    // The same question asked directly (greedy, so the same answer): the
    // record holds what the teacher said for this image and this prompt.
    const json body = {{"model", model},
                       {"max_tokens", 6},
                       {"temperature", 0},
                       {"messages",
                        {{{"role", "user"},
                          {"content",
                           {{{"type", "text"}, {"text", human.substr(8)}},
                            {{"type", "image_url"},
                             {"image_url", {{"url", data_uri(d / "images" / image)}}}}}}}}}};
    auto direct = c.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(direct && direct->status == 200) << (direct ? direct->body : "no reply");
    EXPECT_EQ(rec["conversations"][1]["value"], json::parse(direct->body)["choices"][0]["message"]["content"]) << rec;
  }

  // A rerun finds every record done and asks nothing.
  r = testing::run_cli(with({"data", "pretrain"}, {"--out", out.string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  summary = json::parse(r.out);
  EXPECT_EQ(summary["already_done"], 4) << summary;
  EXPECT_EQ(summary["requests"], 0) << summary;
  EXPECT_EQ(read_jsonl(out).size(), 4u);

  // emoreason: six tokens of a random model never end in "Predicted Label: X",
  // so every image is retried once, then rejected with the reason.
  const fs::path emo = d / "emoreason.jsonl", rejects = d / "emoreason.rejects";
  r = testing::run_cli(
      with({"data", "emoreason"}, {"--labels", "anger,fear,joy", "--out", emo.string(), "--rejects", rejects.string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err << "\n" << server.log();
  summary = json::parse(r.out);
  const int64_t written = summary["written"], rejected = summary["rejected"];
  EXPECT_EQ(written + rejected, 4) << summary;
  EXPECT_EQ(static_cast<int64_t>(read_jsonl(emo).size()), written);
  const std::vector<json> rejected_records = read_jsonl(rejects);
  EXPECT_EQ(static_cast<int64_t>(rejected_records.size()), rejected);
  for (const json& rec : rejected_records) EXPECT_FALSE(rec.value("reason", "").empty()) << rec;
}

}  // namespace
}  // namespace tinyemo::server_test
