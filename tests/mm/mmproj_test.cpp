// llama.cpp's mmproj GGUF (models/mm/mmproj.h): TinyLLaVA checkpoints written
// as an LM GGUF + mmproj pair and read back give the fixtures' image features,
// logits and greedy ids; the written keys, tensor names, shapes and dtypes are
// what llama.cpp's tools/mtmd/clip.cpp loads; what the llava graph cannot
// express is refused when writing, and hostile mmproj files are refused by name
// when reading.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "mm/mm_fixtures.h"
#include "models/lm/gguf_model.h"
#include "models/mm/mmproj.h"
#include "models/mm/model.h"
#include "models/mm/session.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using mm::TinyLlavaModel;
using testing::error_of;
using testing::ids_of;

// `model` written as llama.cpp's pair under `dir` (lm.gguf, mmproj.gguf).
void write_pair(const TinyLlavaModel& model, const std::filesystem::path& dir, DType matrices = DType::F32) {
  save_mmproj_gguf(model, dir / "mmproj.gguf", matrices);
  save_lm_gguf(model.lm(), dir / "lm.gguf", lm::GgufLayout::LlamaCpp);
}

TinyLlavaModel read_pair(const std::filesystem::path& dir, const std::string& conversation = "") {
  mm::MmLoadOptions o;
  o.mmproj = dir / "mmproj.gguf";
  o.conversation = conversation;
  return TinyLlavaModel::load(dir / "lm.gguf", o);
}

class PairRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(PairRoundTrip, ImageFeaturesLogitsAndGreedyIds) {
  const auto dir = testing::fixture(GetParam());
  testing::TempDir tmp;
  const TinyLlavaModel original = TinyLlavaModel::load(dir);
  write_pair(original, tmp / "");
  const TinyLlavaModel m = read_pair(tmp / "", original.conversation().name);
  EXPECT_EQ(m.config().feature_select, clip::FeatureSelect::Patch);
  EXPECT_EQ(m.vision().config().num_layers, 2);  // blocks up to hidden state -2 of 3

  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  const std::vector<Tensor> features = m.encode_images(io.get("pixel_values"));
  ASSERT_EQ(features.size(), 1u);
  EXPECT_LE(testing::rel_error(features[0], io.get("image_features")), 1e-4);
  EXPECT_LE(testing::rel_error(features[0], original.encode_images(io.get("pixel_values"))[0]), 1e-6);

  const std::vector<int32_t> ids = ids_of(io.get("input_ids"));
  mm::MmSession session(m);
  EXPECT_LE(testing::rel_error(session.logits(ids, features, true), io.get("logits")), 1e-4);
  lm::GenerateOptions g;
  g.max_new_tokens = io.get("greedy_ids").numel();
  g.sampling.greedy = true;
  EXPECT_EQ(session.generate(ids, features, g).generated.ids, ids_of(io.get("greedy_ids")));
}

INSTANTIATE_TEST_SUITE_P(TinyLlava, PairRoundTrip,
                         ::testing::Values("tinyllava-tiny", "tinyllava-openelm-tiny", "tinyllava-phi-tiny"));

TEST(Mmproj, F16MatricesWithinTheFixtureTolerance) {
  const auto dir = testing::fixture("tinyllava-tiny");
  testing::TempDir tmp;
  write_pair(TinyLlavaModel::load(dir), tmp / "", DType::F16);
  const GgufFile f = GgufFile::open(tmp / "mmproj.gguf");
  EXPECT_EQ(f.info("v.blk.0.attn_q.weight").dtype, DType::F16);
  EXPECT_EQ(f.info("mm.2.weight").dtype, DType::F16);
  EXPECT_EQ(f.info("v.blk.0.attn_q.bias").dtype, DType::F32);
  EXPECT_EQ(f.get_uint("general.file_type"), 1u);
  const TinyLlavaModel m = read_pair(tmp / "");
  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  EXPECT_LE(testing::rel_error(m.encode_images(io.get("pixel_values"))[0], io.get("image_features")), 1e-2);
}

// Shapes no fixture has: other feature layers of a 4-block CLIP tower, and a
// SigLIP tower with cls_patch (the only selection llama.cpp keeps for it).
class PairVariants : public ::testing::TestWithParam<testing::Variant> {};

TEST_P(PairVariants, SameImageFeaturesAsTheFolder) {
  testing::TempDir tmp;
  testing::write_variant(GetParam(), tmp / "folder");
  const TinyLlavaModel original = TinyLlavaModel::load(tmp / "folder");
  write_pair(original, tmp / "");
  const TinyLlavaModel m = read_pair(tmp / "");
  const int64_t n = original.vision().config().image_size;
  const Tensor pixels = testing::wavy({2, 3, n, n}, 1.5f, 0.3f);
  const auto want = original.encode_images(pixels), got = m.encode_images(pixels);
  ASSERT_EQ(got.size(), 2u);
  for (size_t b = 0; b < 2; ++b) {
    EXPECT_EQ(got[b].shape(), want[b].shape());
    EXPECT_LE(testing::rel_error(got[b], want[b]), 1e-6);
  }
  EXPECT_EQ(m.vision().config().activation, original.vision().config().activation);
  EXPECT_EQ(m.image_processor().image_mean, original.image_processor().image_mean);
}

INSTANTIATE_TEST_SUITE_P(Shapes, PairVariants,
                         ::testing::Values(testing::Variant{"clip-tower", 1, "patch", "mlp2x_gelu", 32},
                                           testing::Variant{"clip-tower", 4, "patch", "mlp2x_gelu", 24},
                                           testing::Variant{"clip-tower", -3, "patch", "mlp2x_gelu", 16},
                                           testing::Variant{"siglip-tower", -2, "cls_patch", "mlp2x_gelu", 32}));

// What llama.cpp's loader requires, taken from the release we compare with
// (tools/mtmd/clip-impl.h: KEY_* and TN_* names; tools/mtmd/clip.cpp:
// load_hparams reads the u32/f32 keys below without a default, so each is
// required; load_tensors requires attn_out, ffn_up, ffn_down of every block;
// PROJECTOR_TYPE_MLP reads mm.0 / mm.2 and clip_n_mmproj_embd dereferences
// mm.2.weight; is_ffn_swapped takes ffn_down as fc1 when its ne[0] is
// n_embd). Shapes here are PyTorch order: ggml's ne reversed.
TEST(Mmproj, KeysTensorsAndShapesAreWhatClipCppLoads) {
  testing::TempDir tmp;
  write_pair(TinyLlavaModel::load(testing::fixture("tinyllava-tiny")), tmp / "");
  const GgufFile f = GgufFile::open(tmp / "mmproj.gguf");
  EXPECT_EQ(f.get_string("general.architecture"), "clip");
  EXPECT_TRUE(f.get_bool("clip.has_vision_encoder"));
  EXPECT_TRUE(f.get_bool("clip.has_llava_projector"));
  EXPECT_EQ(f.get_string("clip.projector_type"), "mlp");
  EXPECT_FALSE(f.get_bool("clip.use_gelu"));  // quick_gelu: clip.cpp's FFN_GELU_QUICK
  for (const char* key : {"clip.vision.embedding_length", "clip.vision.attention.head_count",
                          "clip.vision.feed_forward_length", "clip.vision.block_count", "clip.vision.projection_dim",
                          "clip.vision.image_size", "clip.vision.patch_size"}) {
    ASSERT_TRUE(f.has(key)) << key;
    EXPECT_EQ(f.value(key).type, GgufType::U32) << key;
  }
  EXPECT_EQ(f.value("clip.vision.attention.layer_norm_epsilon").type, GgufType::F32);
  for (const char* key : {"clip.vision.image_mean", "clip.vision.image_std"}) {
    EXPECT_EQ(f.value(key).array_type, GgufType::F32) << key;
    EXPECT_EQ(f.get_float_array(key).size(), 3u) << key;
  }
  // The fixture: CLIP 48 wide, 192 MLP, 3 blocks, 4 heads, 28 px in 14 px patches; LM 64 wide.
  EXPECT_EQ(f.get_uint("clip.vision.embedding_length"), 48u);
  EXPECT_EQ(f.get_uint("clip.vision.feed_forward_length"), 192u);
  EXPECT_EQ(f.get_uint("clip.vision.attention.head_count"), 4u);
  EXPECT_EQ(f.get_uint("clip.vision.image_size"), 28u);
  EXPECT_EQ(f.get_uint("clip.vision.patch_size"), 14u);
  EXPECT_EQ(f.get_uint("clip.vision.projection_dim"), 64u);
  // vision_feature_layer -2 of 3 blocks: hidden state 2, two blocks written and run.
  EXPECT_EQ(f.get_uint("clip.vision.block_count"), 2u);
  EXPECT_EQ(f.get_int_array("clip.vision.feature_layer"), std::vector<int64_t>{2});

  const std::map<std::string, std::pair<Shape, DType>> want_top = {
      {"v.patch_embd.weight", {{48, 3, 14, 14}, DType::F32}}, {"v.class_embd", {{48}, DType::F32}},
      {"v.position_embd.weight", {{5, 48}, DType::F32}},      {"v.pre_ln.weight", {{48}, DType::F32}},
      {"v.pre_ln.bias", {{48}, DType::F32}},                  {"mm.0.weight", {{64, 48}, DType::F32}},
      {"mm.0.bias", {{64}, DType::F32}},                      {"mm.2.weight", {{64, 64}, DType::F32}},
      {"mm.2.bias", {{64}, DType::F32}}};
  std::map<std::string, std::pair<Shape, DType>> want = want_top;
  for (int i = 0; i < 2; ++i) {
    const std::string b = "v.blk." + std::to_string(i) + ".";
    for (const char* p : {"attn_q", "attn_k", "attn_v", "attn_out"}) {
      want[b + p + ".weight"] = {{48, 48}, DType::F32};
      want[b + p + ".bias"] = {{48}, DType::F32};
    }
    for (const char* p : {"ln1", "ln2"}) {
      want[b + p + ".weight"] = {{48}, DType::F32};
      want[b + p + ".bias"] = {{48}, DType::F32};
    }
    // fc1 as ffn_down: ne[0] == n_embd, so clip.cpp swaps it into ff_up.
    want[b + "ffn_down.weight"] = {{192, 48}, DType::F32};
    want[b + "ffn_down.bias"] = {{192}, DType::F32};
    want[b + "ffn_up.weight"] = {{48, 192}, DType::F32};
    want[b + "ffn_up.bias"] = {{48}, DType::F32};
  }
  EXPECT_EQ(f.tensors().size(), want.size());
  for (const auto& [name, shape_dtype] : want) {
    ASSERT_TRUE(f.contains(name)) << name;
    EXPECT_EQ(f.info(name).shape, shape_dtype.first) << name;
    EXPECT_EQ(f.info(name).dtype, shape_dtype.second) << name;
  }
  EXPECT_FALSE(f.contains("v.post_ln.weight"));  // the llava graph would apply it to the features
  EXPECT_EQ(f.alignment(), 32u);
}

// Writing refuses, by name, TinyLLaVA settings llama.cpp's llava graph would compute differently.
TEST(Mmproj, RefusesWhatTheLlavaGraphCannotExpress) {
  struct Case {
    testing::Variant variant;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{"clip-tower", -2, "patch", "linear", 32}, "connector_type \"linear\""},
      {{"clip-tower", -2, "patch", "mlp3x_gelu", 32}, "connector_type \"mlp3x_gelu\""},
      {{"clip-tower", -2, "patch", "mlp1x_gelu", 32}, "connector_type \"mlp1x_gelu\""},
      {{"siglip-tower", -2, "cls_patch", "identity", 24}, "connector_type \"identity\""},
      {{"clip-tower", -2, "cls_patch", "mlp2x_gelu", 32}, "\"cls_patch\""},
      {{"siglip-tower", -2, "patch", "mlp2x_gelu", 32}, "\"patch\" on a SigLIP tower"},
      {{"clip-tower", 0, "patch", "mlp2x_gelu", 32}, "vision_feature_layer 0"},
  };
  for (const Case& c : cases) {
    testing::TempDir tmp;
    testing::write_variant(c.variant, tmp / "folder");
    const TinyLlavaModel m = TinyLlavaModel::load(tmp / "folder");
    const std::string e = error_of([&] { save_mmproj_gguf(m, tmp / "mmproj.gguf", DType::F32); });
    EXPECT_NE(e.find(c.needle), std::string::npos) << c.needle << ": " << e;
    EXPECT_FALSE(std::filesystem::exists(tmp / "mmproj.gguf"));
  }
  // The exact (erf) GELU in the tower: use_gelu would run the tanh approximation.
  testing::TempDir tmp;
  testing::copy_tinyllava_fixture("tinyllava-tiny", tmp / "folder",
                                  [](nlohmann::json& c) { c["vision_config"]["hidden_act"] = "gelu"; }, false);
  const TinyLlavaModel m = TinyLlavaModel::load(tmp / "folder");
  EXPECT_NE(error_of([&] { save_mmproj_gguf(m, tmp / "mmproj.gguf", DType::F32); }).find("hidden_act \"gelu\""),
            std::string::npos);
  EXPECT_NE(error_of([&] { save_mmproj_gguf(m, tmp / "mmproj.gguf", DType::Q8_0); }).find("f32 or f16"),
            std::string::npos);
}

// A good pair, and its mmproj rewritten with one change.
class HostileMmproj : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new testing::TempDir();
    write_pair(TinyLlavaModel::load(testing::fixture("tinyllava-tiny")), *tmp_ / "");
  }
  static void TearDownTestSuite() { delete tmp_; }

  using Metadata = std::vector<std::pair<std::string, GgufValue>>;
  using Tensors = std::vector<std::pair<std::string, Tensor>>;
  // The error of reading the pair with the mmproj edited by `edit`.
  static std::string error_with(const std::function<void(Metadata&, Tensors&)>& edit) {
    const GgufFile good = GgufFile::open(*tmp_ / "mmproj.gguf");
    Metadata meta(good.metadata().begin(), good.metadata().end());
    Tensors tensors;
    for (const GgufTensorInfo& t : good.tensors()) tensors.emplace_back(t.name, good.get(t.name).clone());
    edit(meta, tensors);
    GgufWriter w;
    for (const auto& [k, v] : meta) w.set(k, v);
    for (const auto& [n, t] : tensors) w.add_tensor(n, t);
    w.write(*tmp_ / "bad.gguf");
    mm::MmLoadOptions o;
    o.mmproj = *tmp_ / "bad.gguf";
    return error_of([&] { TinyLlavaModel::load(*tmp_ / "lm.gguf", o); });
  }
  static void set_key(Metadata& m, const std::string& key, GgufValue v) {
    for (auto& [k, value] : m) {
      if (k == key) {
        value = std::move(v);
        return;
      }
    }
    m.emplace_back(key, std::move(v));
  }
  static void erase_key(Metadata& m, const std::string& key) {
    std::erase_if(m, [&](const auto& kv) { return kv.first == key; });
  }
  static Tensor& tensor(Tensors& t, const std::string& name) {
    for (auto& [n, tensor] : t) {
      if (n == name) return tensor;
    }
    throw std::runtime_error("no tensor " + name);
  }
  static testing::TempDir* tmp_;
};
testing::TempDir* HostileMmproj::tmp_ = nullptr;

TEST_F(HostileMmproj, TheUneditedFileLoads) { EXPECT_EQ(error_with([](Metadata&, Tensors&) {}), ""); }

TEST_F(HostileMmproj, MissingKey) {
  const std::string e = error_with([](Metadata& m, Tensors&) { erase_key(m, "clip.vision.block_count"); });
  EXPECT_NE(e.find("missing key clip.vision.block_count"), std::string::npos) << e;
  EXPECT_NE(e.find("bad.gguf"), std::string::npos) << e;
  const std::string p = error_with([](Metadata& m, Tensors&) { erase_key(m, "clip.projector_type"); });
  EXPECT_NE(p.find("clip.projector_type"), std::string::npos) << p;
  const std::string mean = error_with([](Metadata& m, Tensors&) { erase_key(m, "clip.vision.image_mean"); });
  EXPECT_NE(mean.find("clip.vision.image_mean"), std::string::npos) << mean;
}

TEST_F(HostileMmproj, UnknownProjectorTypeAndKeys) {
  const std::string e =
      error_with([](Metadata& m, Tensors&) { set_key(m, "clip.projector_type", GgufValue::string("ldp")); });
  EXPECT_NE(e.find("clip.projector_type \"ldp\""), std::string::npos) << e;
  const std::string k = error_with([](Metadata& m, Tensors&) {
    set_key(m, "clip.vision.image_grid_pinpoints", GgufValue::i32_array({336, 672}));
  });
  EXPECT_NE(k.find("clip.vision.image_grid_pinpoints"), std::string::npos) << k;
  const std::string a =
      error_with([](Metadata& m, Tensors&) { set_key(m, "general.architecture", GgufValue::string("llama")); });
  EXPECT_NE(a.find("general.architecture is not \"clip\""), std::string::npos) << a;
  const std::string silu =
      error_with([](Metadata& m, Tensors&) { set_key(m, "clip.use_silu", GgufValue::boolean(true)); });
  EXPECT_NE(silu.find("clip.use_silu"), std::string::npos) << silu;
}

TEST_F(HostileMmproj, WrongShapeAndDtype) {
  const std::string e = error_with([](Metadata&, Tensors& t) {
    tensor(t, "v.blk.1.attn_q.weight") = testing::wavy({48, 40}, 0.1f, 0.0f);
  });
  EXPECT_NE(e.find("v.blk.1.attn_q.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[48, 40]"), std::string::npos) << e;
  const std::string mm = error_with([](Metadata&, Tensors& t) { tensor(t, "mm.2.weight") = testing::wavy({64, 60}, 0.1f, 0.0f); });
  EXPECT_NE(mm.find("mm.2.weight"), std::string::npos) << mm;
  const std::string q = error_with([](Metadata&, Tensors& t) {
    tensor(t, "mm.2.weight") = testing::wavy({64, 64}, 0.1f, 0.0f).to(DType::Q8_0);
  });
  EXPECT_NE(q.find("mm.2.weight"), std::string::npos) << q;
  EXPECT_NE(q.find("q8_0"), std::string::npos) << q;
}

TEST_F(HostileMmproj, NonFiniteWeights) {
  const std::string e = error_with([](Metadata&, Tensors& t) {
    Tensor& w = tensor(t, "mm.2.weight");
    w.mutable_data<float>()[7] = std::numeric_limits<float>::quiet_NaN();
  });
  EXPECT_NE(e.find("mm.2.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("non-finite"), std::string::npos) << e;
  const std::string v = error_with([](Metadata&, Tensors& t) {
    tensor(t, "v.blk.0.ln1.bias").mutable_data<float>()[0] = std::numeric_limits<float>::infinity();
  });
  EXPECT_NE(v.find("v.blk.0.ln1.bias"), std::string::npos) << v;
  const std::string mean = error_with([](Metadata& m, Tensors&) {
    set_key(m, "clip.vision.image_std", GgufValue::f32_array({0.5f, 0.0f, 0.5f}));
  });
  EXPECT_NE(mean.find("clip.vision.image_std[1]"), std::string::npos) << mean;
}

TEST_F(HostileMmproj, MissingAndExtraTensors) {
  const std::string e = error_with([](Metadata&, Tensors& t) {
    std::erase_if(t, [](const auto& nt) { return nt.first.rfind("mm.2.", 0) == 0; });
  });
  EXPECT_NE(e.find("missing tensor \"mm.2.weight\""), std::string::npos) << e;
  const std::string b = error_with([](Metadata&, Tensors& t) {
    std::erase_if(t, [](const auto& nt) { return nt.first == "v.blk.1.ffn_up.bias"; });
  });
  EXPECT_NE(b.find("missing tensor \"v.blk.1.ffn_up.bias\""), std::string::npos) << b;
  const std::string post = error_with([](Metadata&, Tensors& t) {
    t.emplace_back("v.post_ln.weight", testing::wavy({48}, 1.0f, 0.0f));
  });
  EXPECT_NE(post.find("v.post_ln.weight"), std::string::npos) << post;
  const std::string extra = error_with([](Metadata&, Tensors& t) {
    t.emplace_back("v.blk.2.attn_q.weight", testing::wavy({48, 48}, 1.0f, 0.0f));
  });
  EXPECT_NE(extra.find("v.blk.2.attn_q.weight"), std::string::npos) << extra;
}

TEST_F(HostileMmproj, FeatureLayers) {
  const std::string many = error_with(
      [](Metadata& m, Tensors&) { set_key(m, "clip.vision.feature_layer", GgufValue::i32_array({1, 2})); });
  EXPECT_NE(many.find("clip.vision.feature_layer lists 2 layers"), std::string::npos) << many;
  const std::string deep = error_with(
      [](Metadata& m, Tensors&) { set_key(m, "clip.vision.feature_layer", GgufValue::i32_array({3})); });
  EXPECT_NE(deep.find("feature layer 3"), std::string::npos) << deep;
  const std::string huge = error_with(
      [](Metadata& m, Tensors&) { set_key(m, "clip.vision.block_count", GgufValue::u32(4000000000u)); });
  EXPECT_NE(huge.find("clip.vision.block_count"), std::string::npos) << huge;
}

// Without clip.vision.feature_layer, llama.cpp's llava graph runs block_count - 1 blocks.
TEST_F(HostileMmproj, WithoutFeatureLayerTheSecondToLastHiddenState) {
  const GgufFile good = GgufFile::open(*tmp_ / "mmproj.gguf");
  GgufWriter w;
  for (const auto& [k, v] : good.metadata()) {
    if (k != "clip.vision.feature_layer") w.set(k, v);
  }
  for (const GgufTensorInfo& t : good.tensors()) w.add_tensor(t.name, good.get(t.name));
  w.write(*tmp_ / "legacy.gguf");
  mm::MmLoadOptions o;
  o.mmproj = *tmp_ / "legacy.gguf";
  const TinyLlavaModel m = TinyLlavaModel::load(*tmp_ / "lm.gguf", o);
  EXPECT_EQ(m.config().vision_feature_layer, 1);
}

TEST(Mmproj, PairOptionsAndPooledOutput) {
  testing::TempDir tmp;
  write_pair(TinyLlavaModel::load(testing::fixture("tinyllava-tiny")), tmp / "");
  mm::MmLoadOptions o;
  o.mmproj = tmp / "mmproj.gguf";
  o.language_model = tmp / "lm.gguf";
  EXPECT_NE(error_of([&] { TinyLlavaModel::load(tmp / "lm.gguf", o); }).find("--language-model"), std::string::npos);
  const TinyLlavaModel m = read_pair(tmp / "");
  // No template in an mmproj: the LM model_type's default (llama), or the one asked for.
  EXPECT_EQ(m.conversation().name, "llama");
  EXPECT_EQ(read_pair(tmp / "", "phi").conversation().name, "phi");
  // The tower has no post-LayerNorm: the pooled output is refused.
  clip::VisionOutputs out;
  const std::string e = error_of([&] { m.vision_hidden_state(testing::wavy({1, 3, 28, 28}, 1.0f, 0.0f), &out); });
  EXPECT_NE(e.find("no post-LayerNorm"), std::string::npos) << e;
}

}  // namespace
}  // namespace tinyemo
