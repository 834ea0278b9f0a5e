// CLIP zero-shot end to end against ../shared/fixtures/clip-zeroshot-tiny:
// texts -> tokenizer -> text tower, pixels -> image tower, logits_per_image
// (= exp(logit_scale) x cosine) within 1e-4 relative, from the HF safetensors
// and the OpenAI state dict; prompt templates; anchors from CLIP text.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/zero_shot.h"
#include "io/safetensors.h"
#include "models/clip/vision_model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

std::filesystem::path fixture_dir() { return testing::fixture("clip-zeroshot-tiny"); }
std::filesystem::path vocab() { return testing::data("bpe_simple_vocab_16e6.txt.gz"); }

class ZeroShotParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ZeroShotParity, LogitsPerImageMatchOpenAI) {
  const auto io = SafetensorsFile::open(fixture_dir() / "io.safetensors");
  const auto texts = nlohmann::json::parse(io.metadata().at("texts")).get<std::vector<std::string>>();
  const std::filesystem::path model = fixture_dir() / GetParam();
  const data::ClipTextEncoder encoder = data::ClipTextEncoder::load(model, vocab());
  const data::EncodedTexts encoded = data::encode_texts(encoder, texts);
  EXPECT_EQ(encoded.input_ids.to_f32_vector(), io.get("input_ids").to_f32_vector());
  EXPECT_LE(testing::rel_error(encoded.text_embeds, io.get("text_embeds")), 1e-4);

  // The texts as "labels" with the identity template reproduce logits_per_image.
  const data::ZeroShotClassifier zero_shot(encoder, texts, "{}");
  const clip::VisionModel vision = clip::VisionModel::load(model);
  const clip::VisionOutputs image = vision.forward(io.get("pixel_values"));
  const std::vector<float> x = image.image_embeds.to_f32_vector();
  const projector::Scores s = zero_shot.classify(x.data(), image.image_embeds.dim(0));
  std::vector<float> logits(s.cosines.size());
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = zero_shot.logit_scale() * s.cosines[i];
  EXPECT_LE(testing::rel_error(logits, io.get("logits_per_image").to_f32_vector()), 1e-4);
  // Probabilities are the softmax of those logits; predicted is their argmax.
  for (int64_t i = 0; i < s.n; ++i) {
    double z = 0.0, sum = 0.0;
    int64_t best = 0;
    for (int64_t l = 0; l < s.labels; ++l) {
      z += std::exp(logits[i * s.labels + l] - logits[i * s.labels]);
      if (logits[i * s.labels + l] > logits[i * s.labels + best]) best = l;
    }
    for (int64_t l = 0; l < s.labels; ++l) {
      const double p = std::exp(logits[i * s.labels + l] - logits[i * s.labels]) / z;
      EXPECT_NEAR(s.probabilities[i * s.labels + l], p, 1e-5);
      sum += s.probabilities[i * s.labels + l];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_EQ(s.predicted[i], best);
  }
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, ZeroShotParity, ::testing::Values("model.safetensors", "openai_state_dict.pt"),
                         [](const auto& info) { return info.param == "model.safetensors" ? "HF" : "OpenAI"; });

TEST(ZeroShot, PromptTemplates) {
  EXPECT_EQ(data::fill_prompt("a photo evoking {}", "joy"), "a photo evoking joy");
  EXPECT_EQ(data::fill_prompt("{} and {}", "x"), "x and x");
  EXPECT_THROW(data::fill_prompt("no slot", "joy"), Error);
}

TEST(ZeroShot, LabelsAndPromptsAndAnchors) {
  const data::ClipTextEncoder encoder = data::ClipTextEncoder::load(fixture_dir(), vocab());
  const data::ZeroShotClassifier z(encoder, {"anger", "joy"}, "a photo evoking {}");
  EXPECT_EQ(z.prompts(), (std::vector<std::string>{"a photo evoking anger", "a photo evoking joy"}));
  EXPECT_EQ(z.dim(), 24);
  EXPECT_NEAR(z.logit_scale(), 100.0, 1e-2);
  EXPECT_THROW(data::ZeroShotClassifier(encoder, {"joy", "joy"}, "{}"), Error);
  // Anchors are the prompts' text embeddings (fixture rows 1 and 2 are exactly these prompts).
  const projector::AnchorSet a = data::clip_text_anchors(encoder, {"anger", "joy"}, "a photo evoking {}");
  EXPECT_EQ(a.hidden, 24);
  const auto io = SafetensorsFile::open(fixture_dir() / "io.safetensors");
  const std::vector<float> all = io.get("text_embeds").to_f32_vector();
  EXPECT_LE(testing::rel_error(a.rows, std::vector<float>(all.begin() + 24, all.begin() + 72)), 1e-4);
}

TEST(ZeroShot, MissingVocabularyIsNamed) {
  try {
    data::ClipTextEncoder::load(fixture_dir(), std::nullopt);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bpe_simple_vocab_16e6.txt.gz"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--vocab"), std::string::npos) << e.what();
  }
}

// Hugging Face checkpoints ship merges.txt (the same merges after a
// "#version" line) instead of OpenAI's gzip: found beside the model.
TEST(ZeroShot, HuggingFaceMergesBesideTheModelAreFound) {
  testing::TempDir dir;
  for (const char* name : {"config.json", "model.safetensors"}) {
    std::filesystem::create_symlink(fixture_dir() / name, dir.path() / name);
  }
  const std::string unzip = "gzip -dc '" + vocab().string() + "' > '" + (dir.path() / "merges.txt").string() + "'";
  ASSERT_EQ(std::system(unzip.c_str()), 0);
  const data::ClipTextEncoder encoder = data::ClipTextEncoder::load(dir.path(), std::nullopt);
  const auto io = SafetensorsFile::open(fixture_dir() / "io.safetensors");
  const auto texts = nlohmann::json::parse(io.metadata().at("texts")).get<std::vector<std::string>>();
  const data::EncodedTexts encoded = data::encode_texts(encoder, texts);
  EXPECT_EQ(encoded.input_ids.to_f32_vector(), io.get("input_ids").to_f32_vector());
  EXPECT_LE(testing::rel_error(encoded.text_embeds, io.get("text_embeds")), 1e-4);
}

}  // namespace
}  // namespace tinyemo
