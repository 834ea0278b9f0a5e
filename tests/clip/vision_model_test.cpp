// CLIP vision tower parity with the OpenAI reference outputs in
// ../shared/fixtures/clip-vision-{tiny,small}: F32 weights (HF safetensors and
// the OpenAI .pt state dict) within 1e-4 relative on every output, F16 within
// 1e-2; config handling; refusal of broken checkpoints.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "io/file.h"
#include "io/pytorch.h"
#include "io/safetensors.h"
#include "models/clip/vision_model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using clip::VisionModel;

const char* const kOutputs[] = {"image_embeds", "pooled_output", "last_hidden_state", "penultimate_hidden_state"};

const Tensor& output(const clip::VisionOutputs& o, const std::string& name) {
  if (name == "image_embeds") return o.image_embeds;
  if (name == "pooled_output") return o.pooled_output;
  if (name == "last_hidden_state") return o.last_hidden_state;
  return o.penultimate_hidden_state;
}

void expect_error_mentions(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

// Every output the reference file holds (a tower without projection has no image_embeds).
void expect_parity_with(const VisionModel& model, const std::filesystem::path& io_file, double tolerance) {
  const auto io = SafetensorsFile::open(io_file);
  const clip::VisionOutputs out = model.forward(io.get("pixel_values"));
  int checked = 0;
  for (const char* name : kOutputs) {
    if (!io.contains(name)) {
      EXPECT_FALSE(output(out, name).defined()) << name;
      continue;
    }
    const double err = testing::rel_error(output(out, name), io.get(name));
    EXPECT_LE(err, tolerance) << io_file << " " << name << " (" << model.description() << ")";
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

void expect_parity(const VisionModel& model, const std::string& fixture, double tolerance) {
  expect_parity_with(model, testing::fixture(fixture + "/io.safetensors"), tolerance);
}

class FixtureParity : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureParity, HuggingFaceF32Directory) {
  expect_parity(VisionModel::load(testing::fixture(GetParam())), GetParam(), 1e-4);
}

TEST_P(FixtureParity, HuggingFaceF16File) {
  const VisionModel m = VisionModel::load(testing::fixture(GetParam() + "/model.f16.safetensors"));
  EXPECT_EQ(m.weight_dtype(), DType::F16);  // kept 16-bit, not widened
  expect_parity(m, GetParam(), 1e-2);
}

TEST_P(FixtureParity, OpenAIStateDictEqualsHuggingFace) {
  const VisionModel openai = VisionModel::load(testing::fixture(GetParam() + "/openai_visual_state_dict.pt"));
  expect_parity(openai, GetParam(), 1e-4);
  const VisionModel hf = VisionModel::load(testing::fixture(GetParam()));
  const auto io = SafetensorsFile::open(testing::fixture(GetParam() + "/io.safetensors"));
  const auto a = openai.forward(io.get("pixel_values")), b = hf.forward(io.get("pixel_values"));
  for (const char* name : kOutputs) EXPECT_LE(testing::rel_error(output(a, name), output(b, name)), 1e-6) << name;
}

TEST_P(FixtureParity, SingleImageAndThreadCountsGiveSameResult) {
  const VisionModel m = VisionModel::load(testing::fixture(GetParam()));
  const auto io = SafetensorsFile::open(testing::fixture(GetParam() + "/io.safetensors"));
  const Tensor pixels = io.get("pixel_values");
  const auto batched = m.forward(pixels);
  const auto one = m.forward(pixels.row(1));
  EXPECT_EQ(shape_str(one.image_embeds.shape()), fmt::format("[1, {}]", m.config().projection_dim));
  EXPECT_LE(testing::rel_error(one.image_embeds.row(0), batched.image_embeds.row(1)), 1e-6);
  const int threads = num_threads();
  set_num_threads(1);
  const auto serial = m.forward(pixels);
  set_num_threads(threads);
  EXPECT_LE(testing::rel_error(serial.last_hidden_state, batched.last_hidden_state), 1e-6);
}

// Weights packed once at load (what `auto` picks for f32 checkpoints): the
// reference's tolerance; bf16 products (weights and activations rounded to
// bf16): within the 16-bit files' tolerance. From f16 weights, F32 panels give
// what the f16 file gives as stored.
TEST_P(FixtureParity, PackedWeightsKeepParity) {
  VisionModel f32 = VisionModel::load(testing::fixture(GetParam()));
  clip::apply_compute(f32, "auto", "test");
  ASSERT_EQ(f32.compute(), LinearCompute::F32);
  EXPECT_EQ(f32.weights().layers[0].fc1.dtype(), DType::F32x32);
  EXPECT_EQ(f32.weight_dtype(), DType::F32);
  expect_parity(f32, GetParam(), 1e-4);
  if (has_native_bf16_linear()) {
    VisionModel bf16 = VisionModel::load(testing::fixture(GetParam()));
    clip::apply_compute(bf16, "bf16", "test");
    EXPECT_EQ(bf16.weights().layers[0].fc1.dtype(), DType::BF16x32);
    EXPECT_NE(bf16.description().find("bf16 compute"), std::string::npos) << bf16.description();
    expect_parity(bf16, GetParam(), 1e-2);
  }
  VisionModel f16 = VisionModel::load(testing::fixture(GetParam() + "/model.f16.safetensors"));
  clip::apply_compute(f16, "auto", "test");  // 16-bit weights stay as stored
  EXPECT_FALSE(f16.compute().has_value());
  VisionModel f16_packed = VisionModel::load(testing::fixture(GetParam() + "/model.f16.safetensors"));
  clip::apply_compute(f16_packed, "f32", "test");
  const auto io = SafetensorsFile::open(testing::fixture(GetParam() + "/io.safetensors"));
  const auto a = f16.forward(io.get("pixel_values")), b = f16_packed.forward(io.get("pixel_values"));
  for (const char* name : kOutputs) EXPECT_LE(testing::rel_error(output(a, name), output(b, name)), 1e-5) << name;
  expect_error_mentions([&] { clip::apply_compute(f16, "int8", "--compute"); }, {"--compute", "int8"});
  expect_error_mentions([&] { f32.pack_weights(LinearCompute::BF16); }, {"packed already"});
}

INSTANTIATE_TEST_SUITE_P(Clip, FixtureParity, ::testing::Values("clip-vision-tiny", "clip-vision-small"));

// Shapes the shared fixtures lack (tools/clip_vision_reference.py): exact GELU,
// eps 1e-6, MLP not 4x hidden, image size not a multiple of the patch, flat
// CLIPVisionModelWithProjection config; one block, BF16, no projection.
TEST(ClipParity, OddShapesAndExactGelu) {
  const auto dir = testing::source_dir() / "tests/data/clip/odd-vision";
  const VisionModel m = VisionModel::load(dir);
  EXPECT_EQ(m.config().activation, clip::Activation::Gelu);
  EXPECT_EQ(m.config().num_positions(), 17);
  expect_parity_with(m, dir / "io.safetensors", 1e-4);
}

TEST(ClipParity, OneBlockBf16WithoutProjection) {
  const auto dir = testing::source_dir() / "tests/data/clip/one-layer-bf16";
  const VisionModel m = VisionModel::load(dir);
  EXPECT_EQ(m.weight_dtype(), DType::BF16);
  EXPECT_EQ(m.config().projection_dim, 0);
  // The reference ran on the same bf16-rounded weights in f32: only f32 rounding differs.
  expect_parity_with(m, dir / "io.safetensors", 1e-4);
}

// Checkpoint layouts built from the small fixture's weights: each must give the
// fixture's outputs.
class CheckpointLayouts : public ::testing::Test {
 protected:
  static NamedTensors fixture_tensors(DType dtype = DType::F32) {
    const auto src = SafetensorsFile::open(testing::fixture("clip-vision-small/model.safetensors"));
    NamedTensors out;
    for (const auto& e : src.entries()) {
      const Tensor t = src.get(e.name);
      out.emplace_back(e.name, t.dtype() == DType::F32 ? t.to(dtype) : t);
    }
    return out;
  }
  void copy_config() const {
    write_file_atomic(dir_ / "config.json", read_file(testing::fixture("clip-vision-small/config.json")));
  }
  testing::TempDir dir_;
};

TEST_F(CheckpointLayouts, ShardedIndex) {
  NamedTensors all = fixture_tensors(), first, second;
  nlohmann::json map;
  for (size_t i = 0; i < all.size(); ++i) {
    (i % 2 ? second : first).push_back(all[i]);
    map[all[i].first] = i % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  }
  write_safetensors(dir_ / "model-00001-of-00002.safetensors", first);
  write_safetensors(dir_ / "model-00002-of-00002.safetensors", second);
  write_file_atomic(dir_ / "model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump());
  copy_config();
  expect_parity(VisionModel::load(dir_.path()), "clip-vision-small", 1e-4);
  // A shard that lacks a tensor the index promises is named.
  write_safetensors(dir_ / "model-00002-of-00002.safetensors", NamedTensors(second.begin() + 1, second.end()));
  expect_error_mentions([&] { VisionModel::load(dir_.path()); }, {"model-00002-of-00002.safetensors", second[0].first});
}

TEST_F(CheckpointLayouts, Bf16FileWithTextTowerAndNoPositionIds) {
  NamedTensors t;
  for (auto& [name, tensor] : fixture_tensors(DType::BF16)) {
    if (name != "vision_model.embeddings.position_ids") t.emplace_back(name, tensor);
  }
  t.emplace_back("text_model.embeddings.token_embedding.weight", Tensor::zeros(DType::BF16, {10, 8}));
  t.emplace_back("text_projection.weight", Tensor::zeros(DType::BF16, {48, 8}));
  t.emplace_back("logit_scale", Tensor::zeros(DType::F32, {}));
  write_safetensors(dir_ / "model.safetensors", t);
  copy_config();
  const VisionModel m = VisionModel::load(dir_.path());
  EXPECT_EQ(m.weight_dtype(), DType::BF16);
  expect_parity(m, "clip-vision-small", 1e-2);
}

TEST_F(CheckpointLayouts, VisionModelWithoutProjection) {
  NamedTensors t;
  for (auto& [name, tensor] : fixture_tensors()) {
    if (name != "visual_projection.weight") t.emplace_back(name, tensor);
  }
  write_safetensors(dir_ / "model.safetensors", t);
  auto config = nlohmann::json::parse(read_file(testing::fixture("clip-vision-small/config.json")))["vision_config"];
  config["architectures"] = {"CLIPVisionModel"};
  write_file_atomic(dir_ / "config.json", config.dump());
  const VisionModel m = VisionModel::load(dir_.path());
  EXPECT_EQ(m.config().projection_dim, 0);
  const auto io = SafetensorsFile::open(testing::fixture("clip-vision-small/io.safetensors"));
  const auto out = m.forward(io.get("pixel_values"));
  EXPECT_FALSE(out.image_embeds.defined());
  EXPECT_LE(testing::rel_error(out.pooled_output, io.get("pooled_output")), 1e-4);
}

TEST_F(CheckpointLayouts, OpenAIFullModelWithVisualPrefix) {
  // A whole-CLIP OpenAI state dict: vision under "visual.", text tower names unprefixed.
  NamedTensors t;
  for (auto& [name, tensor] : load_pytorch_tensors(testing::fixture("clip-vision-small/openai_visual_state_dict.pt"))) {
    t.emplace_back("visual." + name, tensor);
  }
  t.emplace_back("transformer.resblocks.0.attn.in_proj_weight", Tensor::zeros(DType::F32, {24, 8}));
  t.emplace_back("token_embedding.weight", Tensor::zeros(DType::F32, {10, 8}));
  save_pytorch_state_dict(dir_ / "ViT-tiny.pt", t);
  copy_config();
  expect_parity(VisionModel::load(dir_ / "ViT-tiny.pt"), "clip-vision-small", 1e-4);
}

TEST(ClipConfig, FromHuggingFaceConfig) {
  const auto cfg = clip::vision_config_from_hf(JsonObject::load(testing::fixture("clip-vision-small/config.json")));
  EXPECT_EQ(cfg.hidden_size, 96);
  EXPECT_EQ(cfg.num_heads, 6);
  EXPECT_EQ(cfg.num_layers, 3);
  EXPECT_EQ(cfg.patch_size, 32);
  EXPECT_EQ(cfg.projection_dim, 48);
  EXPECT_EQ(cfg.num_positions(), 50);
}

TEST(ClipConfig, VisionOnlyConfigAndDefaults) {
  // A CLIPVisionModelWithProjection config (no vision_config), fields left to HF defaults.
  const clip::VisionConfig cfg = clip::vision_config_from_hf(
      JsonObject(nlohmann::json{{"model_type", "clip_vision_model"}, {"hidden_size", 1024}, {"patch_size", 14},
                                {"num_hidden_layers", 24}, {"num_attention_heads", 16}, {"intermediate_size", 4096},
                                {"projection_dim", 768}},
                 "config.json"));
  EXPECT_EQ(cfg.image_size, 224);
  EXPECT_EQ(cfg.num_positions(), 257);
  EXPECT_EQ(cfg.projection_dim, 768);
  EXPECT_EQ(cfg.activation, clip::Activation::QuickGelu);
}

TEST(ClipConfig, NamedArchitecturesAndFlopCount) {
  const auto l14 = clip::named_vision_config("vit-l-14");
  // 24 blocks x (2*257*(4*1024^2 + 2*1024*4096) + 4*257^2*1024) + 2*256*1024*588 + 2*1024*768
  EXPECT_DOUBLE_EQ(l14.flop_per_image(), 24.0 * (2.0 * 257 * (4.0 * 1024 * 1024 + 2.0 * 1024 * 4096) +
                                                  4.0 * 257 * 257 * 1024) +
                                             2.0 * 256 * 1024 * 588 + 2.0 * 1024 * 768);
  EXPECT_NEAR(l14.flop_per_image() / 1e9, 162.0, 0.5);
  EXPECT_EQ(clip::named_vision_config("vit-l-14-336").num_positions(), 577);
  EXPECT_EQ(clip::named_vision_config("vit-b-16").num_positions(), 197);
  EXPECT_EQ(clip::named_vision_config("vit-b-32").num_positions(), 50);
  EXPECT_THROW(clip::named_vision_config("vit-h-14"), Error);
}

TEST(ClipConfig, InferredFromOpenAIShapes) {
  const auto tensors = clip::CheckpointTensors::read(testing::fixture("clip-vision-small/openai_visual_state_dict.pt"));
  const auto where = clip::locate_vision_tower(tensors);
  EXPECT_EQ(where.layout, clip::CheckpointLayout::OpenAI);
  const auto cfg = clip::infer_vision_config(tensors, where);
  EXPECT_EQ(cfg.hidden_size, 96);
  EXPECT_EQ(cfg.intermediate_size, 384);
  EXPECT_EQ(cfg.num_layers, 3);
  EXPECT_EQ(cfg.image_size, 224);
  EXPECT_EQ(cfg.patch_size, 32);
  EXPECT_EQ(cfg.projection_dim, 48);
  EXPECT_EQ(cfg.num_heads, 1);  // OpenAI's width // 64: the real head count needs config.json
}

// A copy of the small fixture with one tensor changed (or removed), as a
// directory with the fixture's config.json.
class BrokenCheckpoint : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& name, const Tensor* replacement) {
    const auto src = SafetensorsFile::open(testing::fixture("clip-vision-small/model.safetensors"));
    NamedTensors tensors;
    for (const auto& e : src.entries()) {
      if (e.name != name) {
        tensors.emplace_back(e.name, src.get(e.name));
      } else if (replacement != nullptr) {
        tensors.emplace_back(e.name, *replacement);
      }
    }
    write_safetensors(dir_ / "model.safetensors", tensors);
    write_file_atomic(dir_ / "config.json", read_file(testing::fixture("clip-vision-small/config.json")));
    return dir_.path();
  }
  testing::TempDir dir_;
};


TEST_F(BrokenCheckpoint, MissingTensorIsNamed) {
  const auto dir = write("vision_model.encoder.layers.1.mlp.fc2.weight", nullptr);
  expect_error_mentions([&] { VisionModel::load(dir); },
                        {"missing tensor vision_model.encoder.layers.1.mlp.fc2.weight", "model.safetensors"});
}

TEST_F(BrokenCheckpoint, MisShapedTensorIsNamed) {
  const Tensor wrong = Tensor::zeros(DType::F32, {383, 96});
  const auto dir = write("vision_model.encoder.layers.2.mlp.fc1.weight", &wrong);
  expect_error_mentions([&] { VisionModel::load(dir); },
                        {"vision_model.encoder.layers.2.mlp.fc1.weight", "[383, 96]", "[384, 96]", "config.json"});
}

TEST_F(BrokenCheckpoint, ConfigDisagreeingWithWeightsIsRefused) {
  const auto dir = write("", nullptr);  // unchanged weights
  auto config = nlohmann::json::parse(read_file(dir / "config.json"));
  config["vision_config"]["num_hidden_layers"] = 4;
  write_file_atomic(dir / "config.json", config.dump());
  expect_error_mentions([&] { VisionModel::load(dir); }, {"3 vision transformer blocks", "says 4"});
  config["vision_config"]["num_hidden_layers"] = 3;
  config["vision_config"]["hidden_size"] = 128;
  config["vision_config"]["num_attention_heads"] = 8;
  write_file_atomic(dir / "config.json", config.dump());
  expect_error_mentions([&] { VisionModel::load(dir); }, {"vision_model.embeddings", "config.json"});
}

TEST(ClipLoad, NonCheckpointIsRefused) {
  testing::TempDir dir;
  write_safetensors(dir / "model.safetensors", {{"something.else", Tensor::zeros(DType::F32, {2, 2})}});
  expect_error_mentions([&] { VisionModel::load(dir / "model.safetensors"); }, {"no CLIP vision tower"});
  EXPECT_THROW(VisionModel::load(dir / "missing"), Error);
}

TEST(ClipLoad, RandomModelRunsEveryArchitectureShape) {
  clip::VisionConfig cfg = clip::named_vision_config("vit-b-32");
  cfg.num_layers = 1;  // keep the test fast: shapes, not depth
  for (DType d : {DType::F32, DType::BF16}) {
    const VisionModel m = VisionModel::random(cfg, d, 7);
    const Tensor pixels = Tensor::zeros(DType::F32, {2, 3, 224, 224});
    const auto out = m.forward(pixels);
    EXPECT_EQ(shape_str(out.image_embeds.shape()), "[2, 512]");
    EXPECT_EQ(shape_str(out.last_hidden_state.shape()), "[2, 50, 768]");
    EXPECT_EQ(shape_str(out.penultimate_hidden_state.shape()), "[2, 50, 768]");
  }
}

}  // namespace
}  // namespace tinyemo
