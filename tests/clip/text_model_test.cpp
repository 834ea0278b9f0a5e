// CLIP text tower parity with the OpenAI reference outputs in
// ../shared/fixtures/clip-zeroshot-tiny (HF safetensors and the OpenAI .pt
// state dict, F32, within 1e-4 relative), config handling, the image tower of
// a whole CLIPModel, and refusal of broken checkpoints.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "core/error.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "models/clip/text_model.h"
#include "models/clip/vision_model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using clip::TextModel;

std::filesystem::path fixture_dir() { return testing::fixture("clip-zeroshot-tiny"); }

const SafetensorsFile& io() {
  static const SafetensorsFile f = SafetensorsFile::open(fixture_dir() / "io.safetensors");
  return f;
}

using testing::error_of;

class TextParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TextParity, TextEmbedsMatchOpenAI) {
  const TextModel m = TextModel::load(fixture_dir() / GetParam());
  EXPECT_EQ(m.config().hidden_size, 48);
  EXPECT_EQ(m.config().num_heads, 4);  // from config.json (OpenAI's width/64 rule would give 0)
  EXPECT_EQ(m.config().projection_dim, 24);
  const clip::TextOutputs out = m.forward(io().get("input_ids"));
  EXPECT_LE(testing::rel_error(out.text_embeds, io().get("text_embeds")), 1e-4) << m.description();
  // Pooled at the end token: the argmax of each row of ids.
  const Tensor ids = io().get("input_ids");
  for (int64_t r = 0; r < ids.dim(0); ++r) {
    EXPECT_EQ(ids.data<int64_t>()[r * ids.dim(1) + out.pooled_positions[r]], 49407) << r;
  }
  ASSERT_TRUE(m.logit_scale().has_value());
  EXPECT_NEAR(*m.logit_scale(), std::log(100.0), 1e-4);
}

TEST_P(TextParity, ImageTowerOfTheWholeModel) {
  const clip::VisionModel v = clip::VisionModel::load(fixture_dir() / GetParam());
  const clip::VisionOutputs out = v.forward(io().get("pixel_values"));
  EXPECT_LE(testing::rel_error(out.image_embeds, io().get("image_embeds")), 1e-4) << v.description();
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, TextParity, ::testing::Values("model.safetensors", "openai_state_dict.pt"),
                         [](const auto& info) { return info.param == "model.safetensors" ? "HF" : "OpenAI"; });

TEST(TextModel, EachTextIndependentOfItsBatchAndPadding) {
  const TextModel m = TextModel::load(fixture_dir());
  const Tensor ids = io().get("input_ids");
  const clip::TextOutputs all = m.forward(ids);
  // Row 3 alone, and with its padding cut to 12 tokens: the same embedding (causal mask).
  std::vector<int64_t> row(ids.data<int64_t>() + 3 * 77, ids.data<int64_t>() + 4 * 77);
  const clip::TextOutputs one = m.forward(std::vector<std::vector<int64_t>>{row});
  row.resize(12);
  const clip::TextOutputs cut = m.forward(std::vector<std::vector<int64_t>>{row});
  const std::vector<float> a = all.text_embeds.to_f32_vector();
  const std::vector<float> want(a.begin() + 3 * 24, a.begin() + 4 * 24);
  EXPECT_LE(testing::rel_error(one.text_embeds.to_f32_vector(), want), 1e-6);
  EXPECT_LE(testing::rel_error(cut.text_embeds.to_f32_vector(), want), 1e-6);
}

TEST(TextModel, CausalMaskMatters) {
  // Changing a token after the end token changes nothing; before it, the embedding.
  const TextModel m = TextModel::load(fixture_dir());
  std::vector<int64_t> ids = {49406, 320, 1125, 49407, 0, 0};
  const auto base = m.forward(std::vector<std::vector<int64_t>>{ids}).text_embeds.to_f32_vector();
  ids[5] = 1929;
  EXPECT_EQ(m.forward(std::vector<std::vector<int64_t>>{ids}).text_embeds.to_f32_vector(), base);
  ids[2] = 1929;
  EXPECT_GT(testing::rel_error(m.forward(std::vector<std::vector<int64_t>>{ids}).text_embeds.to_f32_vector(), base),
            1e-3);
}

TEST(TextModel, ConfigFromShapesWithoutConfigJson) {
  // The OpenAI file alone (copied away from config.json): the shapes give
  // everything but the head count, which OpenAI's rule cannot give for width 48.
  testing::TempDir dir;
  std::filesystem::copy_file(fixture_dir() / "openai_state_dict.pt", dir / "clip.pt");
  const std::string e = error_of([&] { TextModel::load(dir / "clip.pt"); });
  EXPECT_NE(e.find("no head count"), std::string::npos) << e;
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  // A width-64 OpenAI text tower (random weights) infers fully: heads = 64 / 64.
  NamedTensors t;
  auto add = [&](const std::string& name, Shape shape) {
    Tensor x = Tensor::empty(DType::F32, std::move(shape));
    float* d = x.mutable_data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) d[i] = 0.02f * static_cast<float>((i * 7919) % 101 - 50) / 50.0f;
    t.emplace_back(name, x);
  };
  add("token_embedding.weight", {600, 64});
  add("positional_embedding", {16, 64});
  add("transformer.resblocks.0.attn.in_proj_weight", {192, 64});
  add("transformer.resblocks.0.attn.in_proj_bias", {192});
  add("transformer.resblocks.0.attn.out_proj.weight", {64, 64});
  add("transformer.resblocks.0.attn.out_proj.bias", {64});
  add("transformer.resblocks.0.mlp.c_fc.weight", {128, 64});
  add("transformer.resblocks.0.mlp.c_fc.bias", {128});
  add("transformer.resblocks.0.mlp.c_proj.weight", {64, 128});
  add("transformer.resblocks.0.mlp.c_proj.bias", {64});
  for (const char* ln : {"transformer.resblocks.0.ln_1.", "transformer.resblocks.0.ln_2.", "ln_final."}) {
    add(std::string(ln) + "weight", {64});
    add(std::string(ln) + "bias", {64});
  }
  add("text_projection", {64, 32});
  write_safetensors(dir / "text.safetensors", t, {});
  const TextModel m = TextModel::load(dir / "text.safetensors");
  const clip::TextConfig& c = m.config();
  EXPECT_EQ(c.vocab_size, 600);
  EXPECT_EQ(c.max_positions, 16);
  EXPECT_EQ(c.num_layers, 1);
  EXPECT_EQ(c.num_heads, 1);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.projection_dim, 32);
  EXPECT_EQ(c.eos_token_id, 599);
  EXPECT_FALSE(m.logit_scale().has_value());
  const clip::TextOutputs out = m.forward(std::vector<std::vector<int64_t>>{{598, 5, 599, 0}});
  EXPECT_EQ(out.pooled_positions[0], 2);
  EXPECT_EQ(out.text_embeds.shape(), (Shape{1, 32}));
}

TEST(TextModel, ConfigFromHfJson) {
  const JsonObject j(nlohmann::json::parse(R"({"projection_dim": 768, "text_config": {"hidden_size": 768,
      "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu"}})"),
                     "config.json");
  const clip::TextConfig c = clip::text_config_from_hf(j);
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.num_heads, 12);
  EXPECT_EQ(c.num_layers, 12);       // HF default
  EXPECT_EQ(c.projection_dim, 768);  // the CLIPModel's
  EXPECT_EQ(c.activation, clip::Activation::Gelu);
  const JsonObject bad(nlohmann::json::parse(R"({"text_config": {"hidden_size": 50, "num_attention_heads": 4}})"),
                       "config.json");
  EXPECT_NE(error_of([&] { clip::text_config_from_hf(bad); }).find("not a multiple"), std::string::npos);
}

TEST(TextModel, RefusesBrokenCheckpoints) {
  testing::TempDir dir;
  const auto src = SafetensorsFile::open(fixture_dir() / "model.safetensors");
  std::filesystem::copy_file(fixture_dir() / "config.json", dir / "config.json");
  auto write_without = [&](const std::string& drop, const std::string& reshape = "") {
    NamedTensors tensors;
    for (const auto& e : src.entries()) {
      if (e.name == drop) continue;
      Tensor t = src.get(e.name);
      if (e.name == reshape) t = t.rows(0, t.dim(0) - 1);
      tensors.emplace_back(e.name, t);
    }
    write_safetensors(dir / "model.safetensors", tensors, {});
  };
  write_without("text_model.encoder.layers.1.mlp.fc2.weight");
  std::string e = error_of([&] { TextModel::load(dir.path()); });
  EXPECT_NE(e.find("missing tensor text_model.encoder.layers.1.mlp.fc2.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("CLIP text tower"), std::string::npos) << e;
  write_without("", "text_model.embeddings.position_embedding.weight");
  e = error_of([&] { TextModel::load(dir.path()); });
  EXPECT_NE(e.find("text_model.embeddings.position_embedding.weight has shape [76, 48]"), std::string::npos) << e;
  write_without("text_model.embeddings.token_embedding.weight");
  e = error_of([&] { TextModel::load(dir.path()); });
  EXPECT_NE(e.find("no CLIP text tower"), std::string::npos) << e;

  const TextModel m = TextModel::load(fixture_dir());
  e = error_of([&] { m.forward(std::vector<std::vector<int64_t>>{{49406, 49408}}); });
  EXPECT_NE(e.find("outside the 49408-token vocabulary"), std::string::npos) << e;
  e = error_of([&] { m.forward(std::vector<std::vector<int64_t>>{std::vector<int64_t>(78, 1)}); });
  EXPECT_NE(e.find("takes 1 to 77"), std::string::npos) << e;
}

}  // namespace
}  // namespace tinyemo
