// End-to-end: `tinyemo clip encode-text`, `clip encode` on a whole CLIPModel,
// `classify --zero-shot` and `projector anchors --clip-text` against the
// fixture clip-zeroshot-tiny (OpenAI reference outputs).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/projector/model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using testing::fixture;
using testing::run_cli;

std::string zs(const std::string& name = "") { return fixture("clip-zeroshot-tiny/" + name).string(); }
std::string vocab() { return testing::data("bpe_simple_vocab_16e6.txt.gz").string(); }

TEST(ClipTextCli, EncodeTextMatchesOpenAI) {
  testing::TempDir dir;
  const auto io = SafetensorsFile::open(zs("io.safetensors"));
  const auto texts = nlohmann::json::parse(io.metadata().at("texts")).get<std::vector<std::string>>();
  for (const std::string& model : {zs(), zs("openai_state_dict.pt")}) {
    std::vector<std::string> args = {"clip", "encode-text", "--model", model, "--vocab", vocab(),
                                     "--out", (dir / "t.safetensors").string()};
    for (const auto& t : texts) args.insert(args.end(), {"--text", t});
    const auto r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto out = SafetensorsFile::open(dir / "t.safetensors");
    const Tensor ids = out.get("input_ids");
    EXPECT_EQ(ids.dtype(), DType::I64);
    EXPECT_EQ(shape_str(ids.shape()), "[8, 77]");
    EXPECT_EQ(ids.to_f32_vector(), io.get("input_ids").to_f32_vector()) << model;
    EXPECT_LE(testing::rel_error(out.get("text_embeds"), io.get("text_embeds")), 1e-4) << model;
  }
}

TEST(ClipTextCli, EncodeTextErrors) {
  testing::TempDir dir;
  // No vocabulary beside the model and none given.
  auto r = run_cli({"clip", "encode-text", "--model", zs(), "--text", "x", "--out", (dir / "t.safetensors").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--vocab"), std::string::npos) << r.err;
  // A vision-only checkpoint has no text tower.
  r = run_cli({"clip", "encode-text", "--model", fixture("clip-vision-tiny").string(), "--vocab", vocab(), "--text", "x",
               "--out", (dir / "t.safetensors").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no CLIP text tower"), std::string::npos) << r.err;
}

TEST(ClipTextCli, EncodeReadsTheImageTowerOfAWholeClipModel) {
  testing::TempDir dir;
  const auto io = SafetensorsFile::open(zs("io.safetensors"));
  for (const std::string& model : {zs(), zs("openai_state_dict.pt")}) {
    const auto r = run_cli({"clip", "encode", "--model", model, "--pixels", zs("io.safetensors"), "--out",
                            (dir / "i.safetensors").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_LE(testing::rel_error(SafetensorsFile::open(dir / "i.safetensors").get("image_embeds"), io.get("image_embeds")),
              1e-4)
        << model;
  }
}

// Cosine between row i of a and row j of b.
double cosine(const std::vector<float>& a, int64_t i, const std::vector<float>& b, int64_t j, int64_t d) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t k = 0; k < d; ++k) {
    ab += static_cast<double>(a[i * d + k]) * b[j * d + k];
    aa += static_cast<double>(a[i * d + k]) * a[i * d + k];
    bb += static_cast<double>(b[j * d + k]) * b[j * d + k];
  }
  return ab / std::sqrt(aa * bb);
}

TEST(ClipTextCli, ZeroShotClassifyAgreesWithTheTowersRunSeparately) {
  testing::TempDir dir;
  const std::vector<std::string> labels = {"anger", "joy", "fear", "sadness"};
  const std::vector<std::string> images = {fixture("clip-preprocess/rocket.jpg").string(),
                                           fixture("clip-preprocess/chelsea.png").string()};
  std::vector<std::string> args = {"classify", "--zero-shot", "--clip", zs(), "--vocab", vocab(), "--labels",
                                   "anger,joy,fear,sadness", "--template", "a photo evoking {}", "--top-k", "4", "--json"};
  args.insert(args.end(), images.begin(), images.end());
  const auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("labels").get<std::vector<std::string>>(), labels);

  // The same through preprocess + encode + encode-text.
  std::vector<std::string> text_args = {"clip", "encode-text", "--model", zs(), "--vocab", vocab(), "--out",
                                        (dir / "t.safetensors").string()};
  for (const auto& l : labels) text_args.insert(text_args.end(), {"--text", "a photo evoking " + l});
  ASSERT_EQ(run_cli(text_args).exit_code, 0);
  const std::vector<float> text = SafetensorsFile::open(dir / "t.safetensors").get("text_embeds").to_f32_vector();
  for (size_t i = 0; i < images.size(); ++i) {
    ASSERT_EQ(run_cli({"clip", "preprocess", "--image", images[i], "--size", "28", "--out",
                       (dir / "p.safetensors").string()})
                  .exit_code,
              0);
    ASSERT_EQ(run_cli({"clip", "encode", "--model", zs(), "--pixels", (dir / "p.safetensors").string(), "--out",
                       (dir / "e.safetensors").string()})
                  .exit_code,
              0);
    const std::vector<float> image = SafetensorsFile::open(dir / "e.safetensors").get("image_embeds").to_f32_vector();
    const auto& result = j.at("results").at(i);
    size_t best = 0;
    std::vector<double> logits;
    for (size_t l = 0; l < labels.size(); ++l) {
      logits.push_back(100.0 * cosine(image, 0, text, static_cast<int64_t>(l), 24));
      if (logits[l] > logits[best]) best = l;
    }
    EXPECT_EQ(result.at("predicted").get<std::string>(), labels[best]) << images[i];
    double z = 0;
    for (double v : logits) z += std::exp(v - logits[best]);
    for (size_t l = 0; l < labels.size(); ++l) {
      EXPECT_NEAR(result.at("scores").at(labels[l]).get<double>(), std::exp(logits[l] - logits[best]) / z, 2e-4)
          << images[i] << " " << labels[l];
    }
  }
  // Zero-shot needs labels and no projector.
  auto bad = run_cli({"classify", "--zero-shot", "--clip", zs(), "--vocab", vocab(), images[0]});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--labels"), std::string::npos) << bad.err;
  bad = run_cli({"classify", "--clip", zs(), images[0]});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--projector"), std::string::npos) << bad.err;
}

TEST(ClipTextCli, ProjectorAnchorsFromClipText) {
  testing::TempDir dir;
  const auto r = run_cli({"projector", "anchors", "--clip-text", zs("openai_state_dict.pt"), "--vocab", vocab(),
                          "--labels", "anger,joy", "--out", (dir / "a.safetensors").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const projector::AnchorSet a = projector::load_anchors(dir / "a.safetensors");
  EXPECT_EQ(a.labels, (std::vector<std::string>{"anger", "joy"}));
  EXPECT_EQ(a.hidden, 24);
  // Fixture texts 1 and 2 are "a photo evoking anger" / "... joy" (the default template).
  const std::vector<float> all = SafetensorsFile::open(zs("io.safetensors")).get("text_embeds").to_f32_vector();
  EXPECT_LE(testing::rel_error(a.rows, std::vector<float>(all.begin() + 24, all.begin() + 72)), 1e-4);
  const auto both = run_cli({"projector", "anchors", "--clip-text", zs(), "--anchors-lm", zs(), "--labels", "a",
                             "--out", (dir / "b.safetensors").string()});
  EXPECT_EQ(both.exit_code, 1);
  EXPECT_NE(both.err.find("one of --anchors-lm or --clip-text"), std::string::npos) << both.err;
}

}  // namespace
}  // namespace tinyemo
