// The vision side of the multimodal models: hidden_states[vision_feature_layer]
// at every index (CLIP and SigLIP towers against tools/vision_hidden_states_reference.py),
// the forward stopping after the selected block, patch / cls_patch selection,
// and the Hugging Face image processors (CLIP, SigLIP, TinyLLaVA's "pad")
// against tools/image_processor_reference.py.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/file.h"
#include "io/safetensors.h"
#include "models/clip/image_processor.h"
#include "models/clip/preprocess.h"
#include "models/clip/vision_model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using clip::VisionModel;

std::filesystem::path mm_data(const std::string& name) { return testing::source_dir() / "tests/data/mm" / name; }

class HiddenStates : public ::testing::TestWithParam<std::string> {};

// Every index, positive and negative, against the reference; the forward that
// stops after the block equals the one that runs them all.
TEST_P(HiddenStates, EveryFeatureLayerMatchesTheReference) {
  const VisionModel m = VisionModel::load(mm_data(GetParam()));
  const auto io = SafetensorsFile::open(mm_data(GetParam()) / "io.safetensors");
  const Tensor pixels = io.get("pixel_values"), hidden = io.get("hidden_states");
  const int64_t n = m.config().num_layers;
  ASSERT_EQ(hidden.dim(0), n + 1);
  for (int64_t layer = -(n + 1); layer <= n; ++layer) {
    const int64_t index = layer < 0 ? layer + n + 1 : layer;
    const auto stopped = m.forward(pixels, {.hidden_states = false}, clip::FeatureRequest{.layer = layer, .pooled = false});
    EXPECT_LE(testing::rel_error(stopped.feature_hidden_state, hidden.row(index)), 1e-5) << GetParam() << " " << layer;
    EXPECT_FALSE(stopped.pooled_output.defined());
    EXPECT_FALSE(stopped.last_hidden_state.defined());
    const auto full = m.forward(pixels, {.hidden_states = true}, clip::FeatureRequest{.layer = layer, .pooled = true});
    EXPECT_EQ(testing::rel_error(full.feature_hidden_state, stopped.feature_hidden_state), 0.0) << layer;
    EXPECT_LE(testing::rel_error(full.last_hidden_state, hidden.row(n)), 1e-5);
    EXPECT_LE(testing::rel_error(full.penultimate_hidden_state, hidden.row(n - 1)), 1e-5);
  }
  EXPECT_THROW(m.forward(pixels, {}, clip::FeatureRequest{.layer = n + 1, .pooled = false}), Error);
  EXPECT_THROW(m.forward(pixels, {}, clip::FeatureRequest{.layer = -(n + 2), .pooled = false}), Error);
}

INSTANTIATE_TEST_SUITE_P(Towers, HiddenStates, ::testing::Values("clip-tower", "siglip-tower"));

TEST(SiglipTower, ConfigAndLayout) {
  const VisionModel m = VisionModel::load(mm_data("siglip-tower"));
  EXPECT_EQ(m.config().family, clip::VisionFamily::Siglip);
  EXPECT_EQ(m.config().num_positions(), 9);  // 23 / 7 = 3 patches a side, no class token
  EXPECT_FLOAT_EQ(m.config().layer_norm_eps, 1e-6f);
  EXPECT_EQ(m.config().activation, clip::Activation::GeluTanh);
  EXPECT_EQ(m.weights().patch_bias.size(), 24u);
  EXPECT_TRUE(m.weights().class_embedding.empty());
  EXPECT_TRUE(m.weights().pre_ln_weight.empty());
  // SigLIP's pooled output is its attention head, which this tower does not run.
  const auto io = SafetensorsFile::open(mm_data("siglip-tower") / "io.safetensors");
  const auto out = m.forward(io.get("pixel_values"));
  EXPECT_FALSE(out.pooled_output.defined());
  EXPECT_FALSE(out.image_embeds.defined());
}

TEST(SiglipTower, DefaultsAndRefusals) {
  const clip::VisionConfig d =
      clip::vision_config_from_hf_vision(JsonObject(nlohmann::json{{"model_type", "siglip_vision_model"}}, "cfg"));
  EXPECT_EQ(d.hidden_size, 768);
  EXPECT_EQ(d.patch_size, 16);
  EXPECT_EQ(d.image_size, 224);
  EXPECT_FLOAT_EQ(d.layer_norm_eps, 1e-6f);
  EXPECT_EQ(d.activation, clip::Activation::GeluTanh);
  EXPECT_EQ(d.num_positions(), 196);
  const clip::VisionConfig c =
      clip::vision_config_from_hf_vision(JsonObject(nlohmann::json{{"model_type", "clip_vision_model"}}, "cfg"));
  EXPECT_EQ(c.num_positions(), 50);
  EXPECT_EQ(c.projection_dim, 0);
  try {
    clip::vision_config_from_hf_vision(JsonObject(nlohmann::json{{"model_type", "dinov2"}}, "cfg: vision_config"));
    ADD_FAILURE() << "dinov2 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dinov2"), std::string::npos) << e.what();
  }
}

TEST(SiglipTower, MissingPatchBiasIsNamed) {
  testing::TempDir dir;
  const auto src = SafetensorsFile::open(mm_data("siglip-tower") / "model.safetensors");
  NamedTensors kept;
  for (const auto& e : src.entries()) {
    if (e.name != "vision_model.embeddings.patch_embedding.bias") kept.emplace_back(e.name, src.get(e.name));
  }
  write_safetensors(dir / "model.safetensors", kept);
  write_file_atomic(dir / "config.json", read_file(mm_data("siglip-tower") / "config.json"));
  try {
    VisionModel::load(dir.path());
    ADD_FAILURE() << "loaded without the patch bias";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("patch_embedding.bias"), std::string::npos) << e.what();
  }
}

TEST(FeatureSelect, PatchDropsTokenZeroClsPatchKeepsIt) {
  Tensor hidden = Tensor::empty(DType::F32, {2, 3, 2});
  for (int64_t i = 0; i < hidden.numel(); ++i) hidden.mutable_data<float>()[i] = static_cast<float>(i);
  const Tensor patch = clip::select_feature_tokens(hidden, 1, clip::FeatureSelect::Patch);
  EXPECT_EQ(shape_str(patch.shape()), "[2, 2]");
  EXPECT_EQ(patch.data<float>()[0], 8.0f);  // image 1, token 1
  const Tensor all = clip::select_feature_tokens(hidden, 0, clip::FeatureSelect::ClsPatch);
  EXPECT_EQ(shape_str(all.shape()), "[3, 2]");
  EXPECT_EQ(all.data<float>()[0], 0.0f);
  EXPECT_EQ(clip::parse_feature_select("cls_patch", "cfg"), clip::FeatureSelect::ClsPatch);
  EXPECT_THROW(clip::parse_feature_select("full", "cfg"), Error);
  Tensor one = Tensor::empty(DType::F32, {1, 1, 2});
  EXPECT_THROW(clip::select_feature_tokens(one, 0, clip::FeatureSelect::Patch), Error);
}

// The processors against tools/image_processor_reference.py, every case in its file.
TEST(ImageProcessor, MatchesHuggingFaceSemantics) {
  const auto ref = SafetensorsFile::open(mm_data("image_processor.safetensors"));
  const auto cases = nlohmann::json::parse(ref.metadata().at("cases"));
  ASSERT_GE(cases.size(), 15u);
  for (const auto& [key, c] : cases.items()) {
    const Image image = load_image(testing::source_dir() / "tests/data/clip/images" / c["image"].get<std::string>());
    const clip::ImageProcessorConfig p = clip::image_processor_from_hf(JsonObject(c["processor"], key));
    Image input = image;
    if (c["image_aspect_ratio"] == "pad") {
      std::array<uint8_t, 3> background{};
      for (int ch = 0; ch < 3; ++ch) background[ch] = static_cast<uint8_t>(static_cast<int>(p.image_mean[ch] * 255));
      input = clip::expand_to_square(clip::convert_to_rgb_like_pillow(image), background);
    }
    const Tensor got = clip::hf_preprocess(input, p);
    const Tensor want = ref.get(key);
    ASSERT_EQ(shape_str(got.shape()), shape_str(want.shape())) << key;
    EXPECT_LE(testing::max_abs_diff(got.to_f32_vector(), want.to_f32_vector()), 1e-6) << key;
  }
}

TEST(ImageProcessor, DefaultsFollowTheTower) {
  clip::VisionConfig siglip;
  siglip.family = clip::VisionFamily::Siglip;
  siglip.image_size = 384;
  const auto s = clip::default_image_processor(siglip);
  EXPECT_EQ(s.type, "SiglipImageProcessor");
  EXPECT_EQ(s.height, 384);
  EXPECT_FALSE(s.do_center_crop);
  EXPECT_DOUBLE_EQ(s.image_mean[1], 0.5);
  clip::VisionConfig clip_tower;
  clip_tower.image_size = 336;
  const auto c = clip::default_image_processor(clip_tower);
  EXPECT_EQ(c.shortest_edge, 336);
  EXPECT_TRUE(c.do_center_crop);
  int64_t w = 0, h = 0;
  c.output_size(640, 480, &w, &h);
  EXPECT_EQ(w, 336);
  EXPECT_EQ(h, 336);
  // Refused by name: other processors and resampling filters.
  EXPECT_THROW(clip::image_processor_from_hf(JsonObject(nlohmann::json{{"image_processor_type", "BitImageProcessor"}},
                                                        "preprocessor_config.json")),
               Error);
  EXPECT_THROW(clip::image_processor_from_hf(JsonObject(
                   nlohmann::json{{"image_processor_type", "SiglipImageProcessor"}, {"resample", 2}}, "p.json")),
               Error);
}

TEST(ImageProcessor, ExpandToSquareCentresOnTheBackground) {
  Image tall;
  tall.width = 1;
  tall.height = 3;
  tall.pixels = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const Image sq = clip::expand_to_square(tall, {10, 20, 30});
  ASSERT_EQ(sq.width, 3);
  // Column 1 ((3 - 1) / 2) holds the image, the others the background.
  EXPECT_EQ(std::vector<uint8_t>(sq.pixels.begin(), sq.pixels.begin() + 9),
            (std::vector<uint8_t>{10, 20, 30, 1, 2, 3, 10, 20, 30}));
  Image wide;
  wide.width = 4;
  wide.height = 1;
  wide.pixels.assign(12, 200);
  const Image sq2 = clip::expand_to_square(wide, {0, 0, 0});
  ASSERT_EQ(sq2.height, 4);
  EXPECT_EQ(sq2.pixels[0], 0);             // row 0: background
  EXPECT_EQ(sq2.pixels[1 * 4 * 3], 200);  // row (4 - 1) / 2 = 1: the image
  EXPECT_EQ(sq2.pixels[2 * 4 * 3], 0);
}

// Memory follows the output, not what a thin image would become at full size.
TEST(ImageProcessor, ThinImagesStayBounded) {
  Image thin;
  thin.width = 30000;
  thin.height = 2;
  thin.pixels.assign(static_cast<size_t>(30000 * 2 * 3), 90);
  clip::VisionConfig clip_tower;
  clip_tower.image_size = 24;
  // Shorter side 2 -> 24 makes it 360000 wide; only the 24 x 24 crop is computed.
  const Tensor t = clip::hf_preprocess(thin, clip::default_image_processor(clip_tower));
  EXPECT_EQ(shape_str(t.shape()), "[3, 24, 24]");
  EXPECT_NEAR(t.data<float>()[0], (90.0f / 255.0f - 0.48145466f) / 0.26862954f, 1e-5);
  // expand2square would make 30000 x 30000: refused.
  try {
    clip::expand_to_square(thin, {0, 0, 0});
    ADD_FAILURE() << "squared a 30000 x 2 image";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("30000 x 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(clip::image_processor_from_hf(JsonObject(
                   nlohmann::json{{"image_processor_type", "SiglipImageProcessor"},
                                  {"size", {{"height", 1 << 20}, {"width", 8}}}},
                   "p.json")),
               Error);
}

}  // namespace
}  // namespace tinyemo
