// End-to-end: `tinyemo data scan` and `tinyemo features --format <dataset>`
// (one shard per split, labels through the taxonomy, resumable).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/file.h"
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

}  // namespace
}  // namespace tinyemo
