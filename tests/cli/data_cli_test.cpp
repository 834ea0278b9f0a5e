// End-to-end: `tinyemo data scan`, `tinyemo features --format <dataset>`
// (one shard per split, labels through the taxonomy, resumable), `tinyemo
// eval` on the Emotion6 features, and `data pretrain|emoreason|stats|export`
// against a teacher on loopback, killed with SIGKILL and resumed.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/jsonl.h"
#include "datasets/fake_teacher.h"

#include "io/file.h"
#include <fcntl.h>
#include <fstream>
#include "io/safetensors.h"
#include "models/projector/dataset.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

namespace fs = std::filesystem;
using testing::fixture;
using testing::run_cli;

TEST(DataCli, ScanPrintsSplitsAndSkipped) {
  testing::TempDir d;
  for (const char* f : {"amusement/1.jpg", "amusement/2.jpg", "Awe/3.jpg", "weird/4.jpg"}) write_file_atomic(d / f, "x");
  auto r = run_cli({"data", "scan", "--format", "fi", d.path().string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("format"), "fi");
  EXPECT_EQ(j.at("splits"), nlohmann::json::parse(R"({"all": {"amusement": 2, "awe": 1}})"));
  ASSERT_EQ(j.at("skipped").size(), 1u);
  EXPECT_EQ(j.at("skipped")[0].at("path"), "weird/4.jpg");
  EXPECT_NE(j.at("skipped")[0].at("reason").get<std::string>().find("not in taxonomy fi"), std::string::npos);
  // Text output.
  r = run_cli({"data", "scan", "--format", "fi", d.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("amusement 2"), std::string::npos) << r.out;
  // Errors: unknown format, missing layout.
  r = run_cli({"data", "scan", "--format", "imagenet", d.path().string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown dataset format"), std::string::npos) << r.err;
  r = run_cli({"data", "scan", "--format", "emotion6", d.path().string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("images/<emotion>"), std::string::npos) << r.err;
}

TEST(DataCli, FeaturesOneShardPerSplit) {
  testing::TempDir d;
  const fs::path rocket = fixture("clip-preprocess/rocket.jpg"), cat = fixture("clip-preprocess/chelsea.png");
  fs::create_directories(d / "roi/images/joy");
  fs::create_directories(d / "roi/images/fear");
  fs::copy_file(rocket, d / "roi/images/joy/a.jpg");
  fs::copy_file(cat, d / "roi/images/joy/b.png");
  fs::copy_file(rocket, d / "roi/images/fear/c.jpg");
  write_file_atomic(d / "roi/images/fear/broken.jpg", "not a jpeg");
  write_file_atomic(d / "roi/training_testing_split/training.txt", "joy/a.jpg\nfear/c.jpg\nfear/broken.jpg\n");
  write_file_atomic(d / "roi/training_testing_split/testing.txt", "joy/b.png\n");
  const std::string model = fixture("clip-zeroshot-tiny").string();
  auto r = run_cli({"features", "--model", model, "--images", (d / "roi").string(), "--format", "emotionroi", "--out",
                    (d / "feat").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;  // the broken image failed, the rest were written
  EXPECT_NE(r.err.find("broken.jpg"), std::string::npos) << r.err;
  const projector::FeatureSet train = projector::load_feature_shard(d / "feat/train.safetensors");
  const projector::FeatureSet test = projector::load_feature_shard(d / "feat/test.safetensors");
  EXPECT_EQ(train.size(), 2);
  EXPECT_EQ(test.size(), 1);
  EXPECT_EQ(train.labels, (std::vector<std::string>{"fear", "joy"}));
  EXPECT_EQ(train.files, (std::vector<std::string>{"images/fear/c", "images/joy/a"}));
  EXPECT_EQ(test.files, (std::vector<std::string>{"images/joy/b"}));
  EXPECT_EQ(train.dim(), 24);
  // The same image gives the same feature in both places it was used.
  const std::vector<float> f = train.features.to_f32_vector();
  EXPECT_EQ(std::vector<float>(f.begin(), f.begin() + 24), std::vector<float>(f.begin() + 24, f.begin() + 48));
  // Resumed: nothing new to write.
  r = run_cli({"features", "--model", model, "--images", (d / "roi").string(), "--format", "emotionroi", "--out",
               (d / "feat").string()});
  EXPECT_NE(r.err.find("0 written, 3 already done"), std::string::npos) << r.err;
}

TEST(DataCli, EvalOnTheEmotion6Features) {
  // The real Emotion6 CLIP ViT-L/14 features (train folder, split "all"): 20 %
  // held out with the projector's split rule, one seed, the probe at one penalty.
  testing::TempDir d;
  const std::string features = testing::data("emotion6-clip-vit-l-14/train").string();
  const auto r = run_cli({"eval", "--dataset", "emotion6=" + features, "--train", "emotion6", "--seeds", "0",
                          "--probe-l2", "0.1", "--out", (d / "report").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("protocol").at("datasets").at("emotion6").at("n_eval"), 278);
  EXPECT_EQ(j.at("protocol").at("datasets").at("emotion6").at("n_train"), 1108);
  for (const auto& c : j.at("cells")) {
    EXPECT_EQ(c.at("n"), 278);
    // Far above chance (1/6); docs/projector.md: 0.75-0.78 for these recipes.
    EXPECT_GT(c.at("mean").get<double>(), 0.65) << c.dump();
    EXPECT_LT(c.at("mean").get<double>(), 0.85) << c.dump();
  }
  for (const char* ext : {".md", ".json", ".html"}) EXPECT_TRUE(fs::exists(d / ("report" + std::string(ext)))) << ext;
  EXPECT_NE(read_file(d / "report.md").find("| TinyEmo-700M (paper) | 73.40 |"), std::string::npos);
  // Bad flags are refused by name.
  auto bad = run_cli({"eval", "--dataset", "emotion6", "--train", "emotion6"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("NAME=PATH"), std::string::npos) << bad.err;
  bad = run_cli({"eval", "--dataset", "emotion6=" + features, "--train", "emotion6", "--seeds", "x"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--seeds"), std::string::npos) << bad.err;
}

extern "C" char** environ;

// Starts the built CLI without waiting; the key travels in the environment only.
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& key) {
  std::vector<std::string> all = {TINYEMO_CLI_PATH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back("TINYEMO_TEACHER_API_KEY=" + key);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  EXPECT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

int64_t complete_lines(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return 0;
  const std::string s = read_file(p);
  return static_cast<int64_t>(std::count(s.begin(), s.end(), '\n'));
}

TEST(DataCli, GeneratorResumesAfterKillNineWithoutDuplicatesOrLoss) {
  testing::TempDir d;
  constexpr int kImages = 24;
  for (int i = 0; i < kImages; ++i) {
    const std::string label = i % 2 ? "joy" : "fear";
    testing::write_fake_image(d / "images" / label / (std::to_string(i) + ".jpg"), std::to_string(i));
  }
  testing::FakeTeacher teacher([](const testing::TeacherRequest& r, int, httplib::Response& res) {
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    const std::string text = r.body["messages"][0]["content"][0]["text"];
    const std::string label = text.substr(text.rfind(' ') + 1, text.size() - text.rfind(' ') - 2);
    res.set_content(testing::chat_reply("Reasoning: looks like it.\n\nPredicted Label: " + label), "application/json");
  });
  const std::vector<std::string> args = {"data", "emoreason", "--teacher", teacher.url(), "--teacher-model", "t",
                                         "--images", (d / "images").string(), "--labels", "fear,joy", "--out",
                                         (d / "out.jsonl").string(), "--concurrency", "3"};
  // Kill it twice in the middle of the run.
  for (int64_t stop_at : {4, 11}) {
    const pid_t pid = spawn_cli(args, "sk-secret");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (complete_lines(d / "out.jsonl") < stop_at && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status));
    ASSERT_LT(complete_lines(d / "out.jsonl"), kImages);  // it really stopped in the middle
  }
  // A write cut short by the kill leaves a partial line: simulate the worst case.
  {
    std::ofstream f(d / "out.jsonl", std::ios::app | std::ios::binary);
    f << R"({"id": "joy/99", "image": "jo)";
  }
  ::setenv("TINYEMO_TEACHER_API_KEY", "sk-secret", 1);
  const auto r = run_cli(args);
  ::unsetenv("TINYEMO_TEACHER_API_KEY");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("cut a partial last line"), std::string::npos) << r.err;
  const std::string text = read_file(d / "out.jsonl");
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::map<std::string, int> seen;
  for (const auto& rec : data::read_jsonl(d / "out.jsonl")) ++seen[rec["id"]];
  EXPECT_EQ(seen.size(), static_cast<size_t>(kImages));
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;
  EXPECT_EQ(complete_lines(d / "out.jsonl"), kImages);
  // The key went in the header, never on the command line.
  for (const auto& req : teacher.requests()) EXPECT_EQ(req.authorization, "Bearer sk-secret");

  // stats and export over the finished file.
  auto s = run_cli({"data", "stats", (d / "out.jsonl").string(), "--rejects", (d / "out.jsonl.rejects").string()});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const auto stats = nlohmann::json::parse(s.out);
  EXPECT_EQ(stats["records"], kImages);
  EXPECT_EQ(stats["repeated_ids"], 0);
  EXPECT_EQ(stats["by_label"], nlohmann::json::parse(R"({"fear": 12, "joy": 12})"));
  auto e = run_cli({"data", "export", (d / "out.jsonl").string(), "--out", (d / "train.json").string()});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const auto exported = nlohmann::json::parse(read_file(d / "train.json"));
  EXPECT_EQ(exported.size(), static_cast<size_t>(kImages));
  EXPECT_EQ(exported[0]["image"], "fear/0.jpg");
}

TEST(DataCli, GeneratorRefusesBadFlags) {
  testing::TempDir d;
  testing::write_fake_image(d / "images/joy/a.jpg", "a");
  auto r = run_cli({"data", "pretrain", "--teacher", "ftp://x", "--teacher-model", "m", "--images",
                    (d / "images").string(), "--out", (d / "o.jsonl").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("http:// or https://"), std::string::npos) << r.err;
  r = run_cli({"data", "pretrain", "--teacher", "http://127.0.0.1:1/v1", "--teacher-model", "m", "--images",
               (d / "images").string(), "--out", (d / "o.jsonl").string(), "--mix", "caption=x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--mix"), std::string::npos) << r.err;
  // Nothing listening: the image fails after its retries, exit code 2, nothing written.
  r = run_cli({"data", "pretrain", "--teacher", "http://127.0.0.1:1/v1", "--teacher-model", "m", "--images",
               (d / "images").string(), "--out", (d / "o.jsonl").string(), "--retries", "1", "--backoff-s", "0.01"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("connection error"), std::string::npos) << r.err;
  EXPECT_EQ(complete_lines(d / "o.jsonl"), 0);
}

}  // namespace
}  // namespace tinyemo
