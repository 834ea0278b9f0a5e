// TinyLLaVA models: parity with the shared fixtures (image_features, logits
// over the spliced sequence, greedy ids), unseen layouts built here (other
// vision_feature_layer, cls_patch, connector depths, linear, identity, SigLIP
// and CLIP behind LLaMA, Qwen2 and Gemma) checked piece by piece, the reference's truncation, the
// cached-prefix session, and refusal of checkpoints whose parts disagree.
#include <gtest/gtest.h>

#include <cmath>

#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "mm/mm_fixtures.h"
#include "models/clip/checkpoint.h"
#include "models/lm/embeddings.h"
#include "models/lm/generate.h"
#include "models/lm/gguf_model.h"
#include "models/lm/session.h"
#include "models/mm/model.h"
#include "models/mm/session.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

using mm::TinyLlavaModel;
using testing::ids_of;

lm::GenerateOptions greedy(int64_t n) {
  lm::GenerateOptions g;
  g.max_new_tokens = n;
  g.sampling.greedy = true;
  return g;
}

void expect_error_mentions(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

class FixtureParity : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureParity, ImageFeaturesLogitsAndGreedyIds) {
  const auto dir = testing::fixture(GetParam());
  const TinyLlavaModel m = TinyLlavaModel::load(dir);
  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  const std::vector<int32_t> ids = ids_of(io.get("input_ids"));
  const std::vector<Tensor> features = m.encode_images(io.get("pixel_values"));
  ASSERT_EQ(features.size(), 1u);
  EXPECT_LE(testing::rel_error(features[0], io.get("image_features")), 1e-4);

  mm::MmSession session(m);
  const Tensor logits = session.logits(ids, features, /*all_positions=*/true);
  EXPECT_LE(testing::rel_error(logits, io.get("logits")), 1e-4);
  // The same logits fed through the cache row by row (the last row of each prefix).
  mm::MmSession cached(m);
  const Tensor last = cached.logits(ids, features, false);
  EXPECT_LE(testing::rel_error(last.row(0), io.get("logits").row(io.get("logits").dim(0) - 1)), 1e-4);

  const Tensor greedy_ref = io.get("greedy_ids");
  const auto g = session.generate(ids, features, greedy(greedy_ref.numel()));
  EXPECT_EQ(g.generated.ids, ids_of(greedy_ref));
  EXPECT_EQ(g.prompt_positions, io.get("logits").dim(0));
}

INSTANTIATE_TEST_SUITE_P(TinyLlava, FixtureParity,
                         ::testing::Values("tinyllava-tiny", "tinyllava-openelm-tiny", "tinyllava-phi-tiny"));

// SigLIP + Qwen2: the vision tower and the connector against the fixture's
// image_features (no LM needed), and the whole model once the LM engine runs Qwen2.
TEST(SiglipQwen2, ImageFeatures) {
  const auto dir = testing::fixture("tinyllava-siglip-qwen2-tiny");
  const mm::TinyLlavaConfig c = mm::parse_tinyllava_config(JsonObject::load(dir / "config.json"), dir);
  EXPECT_EQ(c.vision.family, clip::VisionFamily::Siglip);
  const auto tensors = clip::CheckpointTensors::read(dir / "model.safetensors");
  const auto vision = clip::VisionModel::from_checkpoint(
      c.vision, c.vision_config_where, tensors, {clip::CheckpointLayout::HuggingFace, "vision_tower._vision_tower."});
  const auto connector =
      mm::Connector::from_checkpoint(c.connector, c.vision.hidden_size, c.hidden_size, tensors, "connector._connector.", c.where);
  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  const auto out = vision.forward(io.get("pixel_values"), {.hidden_states = false},
                                  clip::FeatureRequest{.layer = -2, .pooled = false});
  // `patch` drops index 0 although SigLIP has no class token: 4 patches -> 3 rows.
  const Tensor rows = clip::select_feature_tokens(out.feature_hidden_state, 0, c.feature_select);
  EXPECT_EQ(rows.dim(0), 3);
  EXPECT_LE(testing::rel_error(connector.forward(rows), io.get("image_features")), 1e-4);
}

TEST(SiglipQwen2, WholeModelParity) {
  const auto dir = testing::fixture("tinyllava-siglip-qwen2-tiny");
  std::optional<TinyLlavaModel> m;
  try {
    m.emplace(TinyLlavaModel::load(dir));
  } catch (const Error& e) {
    if (std::string(e.what()).find("Qwen2ForCausalLM") != std::string::npos &&
        std::string(e.what()).find("not supported") != std::string::npos) {
      GTEST_SKIP() << "the LM engine does not run Qwen2 yet: " << e.what();
    }
    throw;
  }
  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  const std::vector<Tensor> features = m->encode_images(io.get("pixel_values"));
  EXPECT_LE(testing::rel_error(features[0], io.get("image_features")), 1e-4);
  mm::MmSession session(*m);
  const std::vector<int32_t> ids = ids_of(io.get("input_ids"));
  EXPECT_LE(testing::rel_error(session.logits(ids, features, true), io.get("logits")), 1e-4);
  EXPECT_EQ(session.generate(ids, features, greedy(io.get("greedy_ids").numel())).generated.ids,
            ids_of(io.get("greedy_ids")));
}

// The connector's function written out in double precision.
std::vector<float> connector_reference(const mm::Connector& c, const Tensor& rows) {
  std::vector<double> x(rows.data<float>(), rows.data<float>() + rows.numel());
  int64_t width = rows.dim(1);
  const int64_t n = rows.dim(0);
  for (size_t k = 0; k < c.layers().size(); ++k) {
    const Tensor w = c.layers()[k].weight.to(DType::F32);
    const int64_t out = w.dim(0);
    std::vector<double> y(static_cast<size_t>(n * out));
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t o = 0; o < out; ++o) {
        double s = c.layers()[k].bias[o];
        for (int64_t i = 0; i < width; ++i) s += x[r * width + i] * w.data<float>()[o * width + i];
        if (k + 1 < c.layers().size()) s = 0.5 * s * (1.0 + std::erf(s / std::sqrt(2.0)));
        y[r * out + o] = s;
      }
    }
    x = std::move(y);
    width = out;
  }
  return std::vector<float>(x.begin(), x.end());
}

class Variants : public ::testing::TestWithParam<testing::Variant> {};

// Every piece against its own reference: the tower's hidden state against
// tools/vision_hidden_states_reference.py, the connector against the formula,
// the logits against the LM fed the same rows directly, generation likewise.
TEST_P(Variants, PiecesCompose) {
  const testing::Variant v = GetParam();
  testing::TempDir dir;
  const mm::Connector connector = testing::write_variant(v, dir.path());
  const TinyLlavaModel m = TinyLlavaModel::load(dir.path());
  const auto io = SafetensorsFile::open(testing::mm_data(v.tower) / "io.safetensors");
  const Tensor hidden_states = io.get("hidden_states");
  const int64_t layers = hidden_states.dim(0) - 1;
  const int64_t index = v.feature_layer < 0 ? v.feature_layer + layers + 1 : v.feature_layer;
  const std::vector<Tensor> features = m.encode_images(io.get("pixel_values"));
  ASSERT_EQ(features.size(), 2u);
  const auto select = clip::parse_feature_select(v.select, "variant");
  for (int64_t b = 0; b < 2; ++b) {
    const Tensor ref_hidden = hidden_states.row(index).clone();
    const Tensor rows = clip::select_feature_tokens(ref_hidden, b, select);
    EXPECT_EQ(features[b].dim(0), hidden_states.dim(2) - (v.select == "patch" ? 1 : 0));
    EXPECT_LE(testing::rel_error(features[b].to_f32_vector(), connector_reference(connector, rows)), 1e-5)
        << v.tower << " " << v.connector << " image " << b;
  }
  // Two images in one prompt.
  const std::vector<int32_t> ids = {1, 5, -200, 7, 9, -200, 11, 3};
  mm::MmSession session(m);
  const Tensor logits = session.logits(ids, features, true);
  const Tensor rows = embed_with_inserted(m.lm(), ids, -200, features);
  lm::LmSession direct(m.lm());
  EXPECT_LE(testing::rel_error(logits, direct.forward(rows, true)), 1e-6);
  const auto g = session.generate(ids, features, greedy(5));
  EXPECT_EQ(g.generated.ids, generate(m.lm(), rows, {}, greedy(5)).ids);
}

INSTANTIATE_TEST_SUITE_P(
    Unseen, Variants,
    ::testing::Values(testing::Variant{"clip-tower", 1, "cls_patch", "mlp3x_gelu", 32},
                      testing::Variant{"clip-tower", -3, "patch", "mlp1x_gelu", 32},
                      testing::Variant{"clip-tower", 4, "patch", "linear", 24},
                      testing::Variant{"siglip-tower", -1, "patch", "linear", 32},
                      testing::Variant{"siglip-tower", 0, "cls_patch", "identity", 24},
                      testing::Variant{"siglip-tower", -2, "patch", "mlp2x_gelu", 16},
                      testing::Variant{"siglip-tower", -2, "patch", "mlp2x_gelu", 32, "qwen2"},
                      testing::Variant{"clip-tower", 2, "cls_patch", "mlp2x_gelu", 32, "gemma"}));

TEST(TinyLlavaModel, TruncatesLikeTheReference) {
  testing::TempDir dir;
  testing::copy_tinyllava_fixture("tinyllava-tiny", dir.path(), [](nlohmann::json& c) { c["tokenizer_model_max_length"] = 8; },
                                  false);
  const TinyLlavaModel m = TinyLlavaModel::load(dir.path());
  const auto io = SafetensorsFile::open(testing::fixture("tinyllava-tiny/io.safetensors"));
  const auto features = m.encode_images(io.get("pixel_values"));
  const auto ids = ids_of(io.get("input_ids"));
  const mm::SplicedInput in = m.splice(ids, features);
  EXPECT_EQ(in.spliced_length, 12);
  EXPECT_EQ(in.truncated, 4);
  EXPECT_EQ(in.embeddings.dim(0), 8);
  mm::MmSession s(m);
  // Causal: the first 8 positions' logits are the reference's.
  EXPECT_LE(testing::rel_error(s.logits(ids, features, true), io.get("logits").rows(0, 8).clone()), 1e-4);
}

TEST(TinyLlavaModel, PromptPastTheContextIsAnError) {
  testing::TempDir dir;
  testing::copy_tinyllava_fixture("tinyllava-tiny", dir.path(), [](nlohmann::json& c) {
    c["text_config"]["max_position_embeddings"] = 10;
    c["tokenizer_model_max_length"] = 64;
  }, false);
  const TinyLlavaModel m = TinyLlavaModel::load(dir.path());
  const auto io = SafetensorsFile::open(testing::fixture("tinyllava-tiny/io.safetensors"));
  const auto features = m.encode_images(io.get("pixel_values"));
  mm::MmSession s(m);
  expect_error_mentions([&] { s.generate(ids_of(io.get("input_ids")), features, greedy(2)); },
                        {"12 positions", "context of 10", "max_position_embeddings"});
}

TEST(MmSession, ReusesTheSharedPrefixAndMatchesAFreshSession) {
  const TinyLlavaModel m = TinyLlavaModel::load(testing::fixture("tinyllava-tiny"));
  const auto io = SafetensorsFile::open(testing::fixture("tinyllava-tiny/io.safetensors"));
  const Tensor pixels = io.get("pixel_values");
  Tensor other = pixels.clone();
  for (int64_t i = 0; i < other.numel(); ++i) other.mutable_data<float>()[i] *= -0.5f;
  const auto a = m.encode_images(pixels), b = m.encode_images(other);
  const auto ids = ids_of(io.get("input_ids"));
  mm::MmSession s(m);
  const auto first = s.generate(ids, a, greedy(4));
  EXPECT_EQ(first.reused_positions, 0);
  const auto second = s.generate(ids, b, greedy(4));
  EXPECT_EQ(second.reused_positions, 3);  // BOS and two tokens before the image
  mm::MmSession fresh(m);
  EXPECT_EQ(fresh.generate(ids, b, greedy(4)).generated.ids, second.generated.ids);
  // The same prompt again: everything but the last position is reused.
  const auto again = s.generate(ids, b, greedy(4));
  EXPECT_EQ(again.reused_positions, second.prompt_positions - 1);
  EXPECT_EQ(again.generated.ids, second.generated.ids);
  EXPECT_LE(testing::rel_error(s.logits(ids, b, false), fresh.logits(ids, b, false)), 1e-6);
}

TEST(LmSessionPrefix, TruncateAndCopyKeepTheCache) {
  const TinyLlavaModel m = TinyLlavaModel::load(testing::fixture("tinyllava-tiny"));
  const std::vector<int32_t> prefix = {1, 45, 77, 12}, tail = {99, 250};
  std::vector<int32_t> all = prefix;
  all.insert(all.end(), tail.begin(), tail.end());
  lm::LmSession whole(m.lm());
  const Tensor want = whole.forward(all);
  lm::LmSession s(m.lm());
  s.forward(prefix);
  const lm::LmSession snapshot = s;  // a copy of the cache
  s.forward(std::vector<int32_t>{7, 7, 7});
  s.truncate(4);
  const Tensor got = s.forward(tail);
  EXPECT_LE(testing::rel_error(got, want), 1e-5);
  lm::LmSession copy = snapshot;
  EXPECT_EQ(testing::rel_error(copy.forward(tail), got), 0.0);
  EXPECT_THROW(s.truncate(7), Error);
}

TEST(TinyLlavaModel, ImageCountMustMatchTheMarkers) {
  const TinyLlavaModel m = TinyLlavaModel::load(testing::fixture("tinyllava-tiny"));
  const auto io = SafetensorsFile::open(testing::fixture("tinyllava-tiny/io.safetensors"));
  const auto features = m.encode_images(io.get("pixel_values"));
  const std::vector<int32_t> two = {1, -200, 5, -200};
  expect_error_mentions([&] { m.splice(two, features); }, {"2 image placeholder", "1 image"});
  const std::vector<int32_t> none = {1, 5};
  expect_error_mentions([&] { m.splice(none, features); }, {"0 image placeholder", "1 image"});
  expect_error_mentions([&] { m.prompt_ids({{"<image>\nhi", std::nullopt}}); }, {"no tokenizer"});
}

// Checkpoints whose parts or config values disagree: refused naming both sides.
TEST(TinyLlavaModel, RefusesMismatchedParts) {
  testing::TempDir dir;
  const auto folder = dir / "m";
  auto load = [&] { TinyLlavaModel::load(folder); };

  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, nullptr, false);
  testing::edit_tensors(folder, [](NamedTensors& t) {
    for (auto& [name, tensor] : t) {
      if (name == "connector._connector.2.weight") tensor = Tensor::zeros(DType::F32, {72, 64});
      if (name == "connector._connector.2.bias") tensor = Tensor::zeros(DType::F32, {72});
    }
  });
  expect_error_mentions(load, {"connector._connector.2.weight", "72 outputs", "language model's hidden size is 64"});

  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, nullptr, false);
  testing::edit_tensors(folder, [](NamedTensors& t) {
    for (auto& [name, tensor] : t) {
      if (name == "connector._connector.0.weight") tensor = Tensor::zeros(DType::F32, {64, 40});
    }
  });
  expect_error_mentions(load, {"connector._connector.0.weight", "takes 40 inputs", "vision tower gives 48"});

  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["connector_type"] = "mlp3x_gelu"; },
                                  false);
  expect_error_mentions(load, {"connector._connector.4.weight", "mlp3x_gelu"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["connector_type"] = "linear"; },
                                  false);
  expect_error_mentions(load, {"connector._connector.weight"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["connector_type"] = "identity"; },
                                  false);
  expect_error_mentions(load, {"identity", "48", "64"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["connector_type"] = "mlp1x_gelu"; },
                                  false);
  expect_error_mentions(load, {"connector._connector.2.weight", "mlp1x_gelu", "does not have"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["connector_type"] = "resampler"; },
                                  false);
  expect_error_mentions(load, {"connector_type \"resampler\"", "config.json"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["hidden_size"] = 80; }, false);
  expect_error_mentions(load, {"hidden_size 80", "64"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["vision_hidden_size"] = 32; },
                                  false);
  expect_error_mentions(load, {"vision_hidden_size 32", "48"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["vision_feature_layer"] = -5; },
                                  false);
  expect_error_mentions(load, {"vision_feature_layer -5", "3-layer"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder,
                                  [](nlohmann::json& c) { c["vision_feature_select_strategy"] = "full"; }, false);
  expect_error_mentions(load, {"vision_feature_select_strategy \"full\""});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["image_aspect_ratio"] = "anyres"; },
                                  false);
  expect_error_mentions(load, {"image_aspect_ratio \"anyres\""});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["image_token_index"] = 32000; },
                                  false);
  expect_error_mentions(load, {"image_token_index 32000"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["conv_version"] = "vicuna"; },
                                  false);
  expect_error_mentions(load, {"vicuna", "config.json"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) { c["model_type"] = "llava"; }, false);
  expect_error_mentions(load, {"model_type \"llava\""});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) {
    c.erase("text_config");
    c["llm_model_name_or_path"] = "TinyLlama/TinyLlama-1.1B-Chat-v1.0";
  }, false);
  expect_error_mentions(load, {"text_config", "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "model hub"});
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [](nlohmann::json& c) {
    c["vision_config"]["model_type"] = "dinov2";
  }, false);
  expect_error_mentions(load, {"dinov2"});
}

// text_config and vision_config as TinyLLaVA Factory can also hold them:
// folders named by llm_model_name_or_path / vision_model_name_or_path.
// A NaN weight anywhere (vision tower, connector, language model) would make
// every answer NaN: each is refused on load, naming the tensor.
TEST(TinyLlavaModel, RefusesNonFiniteWeightsByName) {
  testing::TempDir dir;
  const auto folder = dir / "m";
  for (const std::string bad : {"vision_tower._vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight",
                                "connector._connector.2.bias", "language_model.model.layers.0.mlp.down_proj.weight"}) {
    testing::copy_tinyllava_fixture("tinyllava-tiny", folder, nullptr, false);
    testing::edit_tensors(folder, [&](NamedTensors& t) {
      for (auto& [name, tensor] : t) {
        if (name != bad) continue;
        std::vector<float> v = tensor.to_f32_vector();
        v[v.size() / 2] = std::nanf("");
        tensor = Tensor::from_vector<float>(tensor.shape(), v);
      }
    });
    expect_error_mentions([&] { TinyLlavaModel::load(folder); }, {bad, "non-finite"});
  }
}

TEST(TinyLlavaModel, SubConfigsFromLocalFolders) {
  testing::TempDir dir;
  const auto folder = dir / "m";
  nlohmann::json text, vision;
  testing::copy_tinyllava_fixture("tinyllava-tiny", folder, [&](nlohmann::json& c) {
    text = c["text_config"];
    vision = c["vision_config"];
    text.erase("architectures");  // filled in from model_type
    c.erase("text_config");
    c.erase("vision_config");
    c["llm_model_name_or_path"] = "llm";
    c["vision_model_name_or_path"] = (dir / "clip-vit").string();
  }, false);
  std::filesystem::create_directories(folder / "llm");
  write_file_atomic(folder / "llm/config.json", text.dump());
  std::filesystem::create_directories(dir / "clip-vit");
  vision.erase("model_type");  // picked by the tower's name, as VisionTowerFactory does
  write_file_atomic(dir / "clip-vit/config.json", vision.dump());
  const TinyLlavaModel m = TinyLlavaModel::load(folder);
  const auto io = SafetensorsFile::open(testing::fixture("tinyllava-tiny/io.safetensors"));
  EXPECT_LE(testing::rel_error(m.encode_images(io.get("pixel_values"))[0], io.get("image_features")), 1e-4);
  EXPECT_EQ(m.conversation().name, "llama");
}

TEST(TinyLlavaModel, QuantisedLanguageModel) {
  mm::MmLoadOptions o;
  o.lm.weight_dtype = DType::Q8_0;
  const TinyLlavaModel q = TinyLlavaModel::load(testing::fixture("tinyllava-tiny"), o);
  const TinyLlavaModel f = TinyLlavaModel::load(testing::fixture("tinyllava-tiny"));
  const auto io = SafetensorsFile::open(testing::fixture("tinyllava-tiny/io.safetensors"));
  const auto ids = ids_of(io.get("input_ids"));
  mm::MmSession sq(q), sf(f);
  const Tensor lq = sq.logits(ids, q.encode_images(io.get("pixel_values")), true);
  const Tensor lf = sf.logits(ids, f.encode_images(io.get("pixel_values")), true);
  EXPECT_LE(testing::rel_error(lf, io.get("logits")), 1e-4);
  const double err = testing::rel_error(lq, lf);
  EXPECT_GT(err, 0.0);  // it did run quantised
  EXPECT_LE(err, 5e-2);
}

// The language model from a GGUF file (tinyemo convert's) instead of language_model.*.
TEST(TinyLlavaModel, GgufLanguageModel) {
  testing::TempDir dir;
  const auto src = SafetensorsFile::open(testing::fixture("tinyllava-tiny/model.safetensors"));
  NamedTensors lm_tensors;
  for (const auto& e : src.entries()) {
    if (e.name.rfind("language_model.", 0) == 0) lm_tensors.emplace_back(e.name.substr(15), src.get(e.name));
  }
  std::filesystem::create_directories(dir / "lm");
  write_safetensors(dir / "lm/model.safetensors", lm_tensors);
  const auto config = nlohmann::json::parse(read_file(testing::fixture("tinyllava-tiny/config.json")));
  write_file_atomic(dir / "lm/config.json", config["text_config"].dump());
  save_lm_gguf(lm::LmModel::load(dir / "lm"), dir / "lm.gguf");

  mm::MmLoadOptions o;
  o.language_model = dir / "lm.gguf";
  const TinyLlavaModel m = TinyLlavaModel::load(testing::fixture("tinyllava-tiny"), o);
  const auto io = SafetensorsFile::open(testing::fixture("tinyllava-tiny/io.safetensors"));
  mm::MmSession s(m);
  EXPECT_LE(testing::rel_error(s.logits(ids_of(io.get("input_ids")), m.encode_images(io.get("pixel_values")), true),
                               io.get("logits")),
            1e-4);
  // An LM of another shape is refused naming both.
  o.language_model = testing::fixture("phi-tiny");
  expect_error_mentions([&] { TinyLlavaModel::load(testing::fixture("tinyllava-tiny"), o); },
                        {"phi-tiny", "text_config"});
}

TEST(TinyLlavaModel, PadAspectRatioExpandsWithTheMeanColour) {
  testing::TempDir dir;
  testing::copy_tinyllava_fixture("tinyllava-tiny", dir.path(), [](nlohmann::json& c) { c["image_aspect_ratio"] = "pad"; },
                                  false);
  const TinyLlavaModel m = TinyLlavaModel::load(dir.path());
  Image wide;  // 40 x 20: padded to 40 x 40 with 10 background rows above
  wide.width = 40;
  wide.height = 20;
  wide.pixels.assign(40 * 20 * 3, 250);
  const Tensor padded = m.preprocess(wide);
  ASSERT_EQ(shape_str(padded.shape()), "[3, 28, 28]");
  // The CLIP processor's mean colour (122, 116, 104) fills the top rows.
  const float red_top = padded.data<float>()[0];
  EXPECT_NEAR(red_top, (122.0f / 255.0f - 0.48145466f) / 0.26862954f, 1e-5);
  testing::copy_tinyllava_fixture("tinyllava-tiny", dir.path(), nullptr, false);
  const TinyLlavaModel square = TinyLlavaModel::load(dir.path());
  EXPECT_NEAR(square.preprocess(wide).data<float>()[0], (250.0f / 255.0f - 0.48145466f) / 0.26862954f, 1e-5);
}

}  // namespace
}  // namespace tinyemo
