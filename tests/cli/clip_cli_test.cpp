// End-to-end: `tinyemo clip preprocess|encode|bench`, `tinyemo features`
// (both output formats, resume, bad images) against the shared fixtures.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "io/file.h"
#include "io/pytorch.h"
#include "io/safetensors.h"
#include "models/projector/model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using testing::fixture;
using testing::run_cli;

TEST(ClipCli, PreprocessMatchesOpenAITransform) {
  testing::TempDir dir;
  for (const char* image : {"rocket.jpg", "camera.png"}) {
    const auto out = dir / "pixels.safetensors";
    const auto r = run_cli({"clip", "preprocess", "--image", fixture(std::string("clip-preprocess/") + image).string(),
                            "--size", "336", "--out", out.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto got = SafetensorsFile::open(out).get("pixel_values");
    const auto want = SafetensorsFile::open(fixture("clip-preprocess/expected_336.safetensors")).get(image);
    ASSERT_EQ(shape_str(got.shape()), "[3, 336, 336]");
    EXPECT_LE(testing::max_abs_diff(got.to_f32_vector(), want.to_f32_vector()), 0.02) << image;
  }
}

TEST(ClipCli, EncodeWritesTheFourOutputs) {
  testing::TempDir dir;
  const auto io = SafetensorsFile::open(fixture("clip-vision-tiny/io.safetensors"));
  // Batched input under another key, and one image as [3, N, N].
  write_safetensors(dir / "in.safetensors", {{"px", io.get("pixel_values")}, {"one", io.get("pixel_values").row(2)}});
  for (const char* model : {"clip-vision-tiny", "clip-vision-tiny/openai_visual_state_dict.pt"}) {
    auto r = run_cli({"clip", "encode", "--model", fixture(model).string(), "--pixels", (dir / "in.safetensors").string(),
                      "--key", "px", "--out", (dir / "out.safetensors").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto out = SafetensorsFile::open(dir / "out.safetensors");
    for (const char* name : {"image_embeds", "pooled_output", "last_hidden_state", "penultimate_hidden_state"}) {
      EXPECT_LE(testing::rel_error(out.get(name), io.get(name)), 1e-4) << model << " " << name;
    }
  }
  auto r = run_cli({"clip", "encode", "--model", fixture("clip-vision-tiny").string(), "--pixels",
                    (dir / "in.safetensors").string(), "--key", "one", "--out", (dir / "one.safetensors").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Tensor one = SafetensorsFile::open(dir / "one.safetensors").get("image_embeds");
  EXPECT_EQ(shape_str(one.shape()), "[1, 32]");
  EXPECT_LE(testing::rel_error(one.row(0), io.get("image_embeds").row(2)), 1e-4);
}

TEST(ClipCli, EncodeRefusesBadInput) {
  testing::TempDir dir;
  write_safetensors(dir / "in.safetensors", {{"pixel_values", Tensor::zeros(DType::F32, {1, 3, 30, 30})}});
  auto r = run_cli({"clip", "encode", "--model", fixture("clip-vision-tiny").string(), "--pixels",
                    (dir / "in.safetensors").string(), "--out", (dir / "out.safetensors").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("[B, 3, 28, 28]"), std::string::npos) << r.err;
  r = run_cli({"clip", "encode", "--model", fixture("clip-vision-tiny").string(), "--pixels",
               (dir / "in.safetensors").string(), "--key", "nope", "--out", (dir / "out.safetensors").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
  // A checkpoint without one of its tensors.
  const auto src = SafetensorsFile::open(fixture("clip-vision-tiny/model.safetensors"));
  NamedTensors kept;
  for (const auto& e : src.entries()) {
    if (e.name != "vision_model.post_layernorm.weight") kept.emplace_back(e.name, src.get(e.name));
  }
  write_safetensors(dir / "broken" / "model.safetensors", kept);
  r = run_cli({"clip", "encode", "--model", (dir / "broken").string(), "--pixels", (dir / "in.safetensors").string(),
               "--out", (dir / "out.safetensors").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing tensor vision_model.post_layernorm.weight"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out.safetensors"));
}

TEST(ClipCli, PreprocessRefusesBadImages) {
  testing::TempDir dir;
  write_file_atomic(dir / "empty.png", "");
  write_file_atomic(dir / "text.jpg", "hello");
  const std::string png = read_file(fixture("clip-preprocess/chelsea.png"));
  write_file_atomic(dir / "cut.png", png.substr(0, png.size() / 3));
  for (const char* name : {"empty.png", "text.jpg", "cut.png"}) {
    const auto r = run_cli({"clip", "preprocess", "--image", (dir / name).string(), "--size", "224", "--out",
                            (dir / "out.safetensors").string()});
    EXPECT_EQ(r.exit_code, 1) << name;
    EXPECT_NE(r.err.find(name), std::string::npos) << r.err;
  }
  const auto r = run_cli({"clip", "preprocess", "--image", fixture("clip-preprocess/chelsea.png").string(), "--size",
                          "224", "--max-pixels", "1000", "--out", (dir / "out.safetensors").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("decompression bomb"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out.safetensors"));
}

class FeaturesCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto src = fixture("clip-preprocess");
    std::filesystem::create_directories(images_ / "joy");
    std::filesystem::create_directories(images_ / "fear");
    std::filesystem::copy_file(src / "rocket.jpg", images_ / "joy" / "rocket.jpg");
    std::filesystem::copy_file(src / "camera.png", images_ / "joy" / "1.png");
    std::filesystem::copy_file(src / "coffee.png", images_ / "fear" / "coffee.png");
    write_file_atomic(images_ / "fear" / "broken.jpg", read_file(src / "rocket.jpg").substr(0, 3000));
    write_file_atomic(images_ / "fear" / "README.txt", "not an image");
  }
  std::vector<std::string> args(const std::string& out, const std::string& format) const {
    return {"features", "--model", fixture("clip-vision-small").string(), "--images", images_.string(), "--out",
            out, "--format", format, "--batch", "2", "--threads", "2"};
  }
  testing::TempDir dir_;
  std::filesystem::path images_ = dir_ / "images";
};

TEST_F(FeaturesCli, TinyEmoLayoutResumesAndReportsBadImages) {
  const auto out = dir_ / "features";
  auto r = run_cli(args(out.string(), "tinyemo-pt"));
  EXPECT_EQ(r.exit_code, 2) << r.err;  // one image failed, the rest written
  EXPECT_NE(r.err.find("broken.jpg"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 written, 0 already done (skipped), 1 failed"), std::string::npos) << r.err;
  const Tensor t = load_pytorch_tensor(out / "joy" / "rocket.pt");
  EXPECT_EQ(t.dtype(), DType::F16);
  EXPECT_EQ(shape_str(t.shape()), "[48]");
  EXPECT_TRUE(std::filesystem::exists(out / "joy" / "1.pt"));
  EXPECT_TRUE(std::filesystem::exists(out / "fear" / "coffee.pt"));
  EXPECT_FALSE(std::filesystem::exists(out / "fear" / "broken.pt"));

  // The embedding equals clip preprocess + clip encode of the same image (in fp16).
  r = run_cli({"clip", "preprocess", "--image", (images_ / "joy" / "rocket.jpg").string(), "--size", "224", "--out",
               (dir_ / "px.safetensors").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli({"clip", "encode", "--model", fixture("clip-vision-small").string(), "--pixels",
               (dir_ / "px.safetensors").string(), "--out", (dir_ / "enc.safetensors").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Tensor ref = SafetensorsFile::open(dir_ / "enc.safetensors").get("image_embeds").row(0);
  EXPECT_LE(testing::rel_error(t, ref), 1e-3);

  // Second run: everything done is skipped, the broken image is retried (and fails again).
  r = run_cli(args(out.string(), "tinyemo-pt"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("0 written, 3 already done (skipped), 1 failed"), std::string::npos) << r.err;
  std::filesystem::remove(images_ / "fear" / "broken.jpg");
  r = run_cli(args(out.string(), "tinyemo-pt"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(FeaturesCli, SafetensorsShard) {
  const auto out = dir_ / "shard";
  auto r = run_cli(args(out.string(), "safetensors"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  const auto shard = SafetensorsFile::open(out / "features.safetensors");
  EXPECT_EQ(shape_str(shard.get("features").shape()), "[3, 48]");
  EXPECT_EQ(shard.get("features").dtype(), DType::F16);
  const auto ids = shard.get("label_ids");
  EXPECT_EQ(ids.dtype(), DType::I64);
  EXPECT_EQ(nlohmann::json::parse(shard.metadata().at("labels")), nlohmann::json({"fear", "joy"}));
  EXPECT_EQ(nlohmann::json::parse(shard.metadata().at("files")),
            nlohmann::json({"fear/coffee", "joy/1", "joy/rocket"}));
  EXPECT_EQ(ids.to_f32_vector(), std::vector<float>({0, 1, 1}));
  // Resume: only the new image is computed; earlier rows are kept.
  std::filesystem::remove(images_ / "fear" / "broken.jpg");
  std::filesystem::copy_file(fixture("clip-preprocess/chelsea.png"), images_ / "fear" / "chelsea.png");
  r = run_cli(args(out.string(), "safetensors"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("1 written, 3 already done (skipped), 0 failed"), std::string::npos) << r.err;
  const auto resumed = SafetensorsFile::open(out / "features.safetensors");
  EXPECT_EQ(shape_str(resumed.get("features").shape()), "[4, 48]");
  EXPECT_EQ(testing::rel_error(resumed.get("features").rows(1, 4).clone(), shard.get("features").clone()), 0.0);
}

TEST(ClipCli, BenchPrintsJson) {
  const auto r = run_cli({"clip", "bench", "--arch", "vit-b-32", "--random-weights", "--batch", "1", "--threads", "1",
                          "--min-seconds", "0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["seconds_per_image"].get<double>(), 0.0);
  EXPECT_NEAR(j["gflop_per_image"].get<double>(), 8.85, 0.1);  // ViT-B/32 at 224
  EXPECT_GT(j["gflops"].get<double>(), 0.0);
  EXPECT_EQ(j["threads"], 1);
}

// A projector for the small CLIP fixture's 48-d embeddings, with
// deterministic non-trivial weights and anchors.
std::filesystem::path write_projector(const testing::TempDir& dir) {
  projector::ProjectorConfig config;
  config.dims = {48, 16};
  projector::ProjectorModel model(config, {"anger", "joy", "fear"});
  projector::MlpWeights w(model.layout());
  for (size_t i = 0; i < w.params.size(); ++i) w.params[i] = 0.3f * std::sin(0.7f * static_cast<float>(i) + 0.1f);
  model.set_members({w});
  std::vector<float> anchors(3 * 16);
  for (size_t i = 0; i < anchors.size(); ++i) anchors[i] = std::cos(1.3f * static_cast<float>(i));
  model.set_anchors({"anger", "joy", "fear"}, anchors);
  const auto path = dir / "projector.safetensors";
  model.save(path);
  return path;
}

TEST(ClassifyCli, ImagesGiveTheScoresOfTheirFeatureFiles) {
  testing::TempDir dir;
  const auto projector = write_projector(dir);
  const auto images = dir / "images" / "x";
  std::filesystem::create_directories(images);
  for (const char* f : {"rocket.jpg", "chelsea.png", "camera.png"}) {
    std::filesystem::copy_file(fixture(std::string("clip-preprocess/") + f), images / f);
  }
  write_file_atomic(images / "broken.png", "\x89PNG\r\n\x1a\n garbage");
  const std::string clip_dir = fixture("clip-vision-small").string();
  auto r = run_cli({"classify", "--clip", clip_dir, "--projector", projector.string(), (images / "rocket.jpg").string(),
                    (images / "broken.png").string(), (images / "chelsea.png").string(),
                    (images / "camera.png").string(), "--json"});
  EXPECT_EQ(r.exit_code, 2) << r.err;  // one unreadable image
  EXPECT_NE(r.err.find("broken.png"), std::string::npos) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["results"].size(), 4u);
  EXPECT_TRUE(j["results"][1].contains("error"));
  EXPECT_EQ(j["labels"], nlohmann::json({"anger", "joy", "fear"}));

  // Same answer as features + `projector classify` on the fp16 feature files.
  r = run_cli({"features", "--model", clip_dir, "--images", (dir / "images").string(), "--out", (dir / "feat").string()});
  ASSERT_EQ(r.exit_code, 2) << r.err;
  for (const auto& [index, name] : {std::pair<int, std::string>{0, "rocket"}, {2, "chelsea"}, {3, "camera"}}) {
    const auto pr = run_cli({"projector", "classify", "--model", projector.string(), "--json", "--top-k", "3",
                             (dir / "feat" / "x" / (name + ".pt")).string()});
    ASSERT_EQ(pr.exit_code, 0) << pr.err;
    const auto want = nlohmann::json::parse(pr.out)["results"][0];
    const auto& got = j["results"][index];
    EXPECT_EQ(got["predicted"], want["predicted"]) << name;
    for (const auto& t : want["top"]) {
      EXPECT_NEAR(got["scores"][t["label"].get<std::string>()].get<double>(), t["probability"].get<double>(), 1e-2)
          << name;
    }
  }
}

TEST(ClassifyCli, DimensionMismatchIsRefused) {
  // The fixture projector takes 768-d ViT-L/14 features; the small CLIP gives 48-d.
  testing::TempDir dir;
  auto r = run_cli({"projector", "import", "--bin", fixture("tinyemo-projector/pytorch_model.bin").string(),
                    "--anchors", fixture("tinyemo-projector/anchors.safetensors").string(), "--out",
                    (dir / "p.safetensors").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli({"classify", "--clip", fixture("clip-vision-small").string(), "--projector",
               (dir / "p.safetensors").string(), fixture("clip-preprocess/rocket.jpg").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("48-d"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("768-d"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tinyemo
