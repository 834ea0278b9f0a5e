// Config parsing and weight binding: the published model shapes, and clear
// refusals of unknown architectures, inconsistent configs and bad weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "core/matmul.h"
#include "io/safetensors.h"
#include "models/lm/arch/arch.h"
#include "models/lm/model.h"
#include "models/lm/presets.h"
#include "models/lm/session.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

int64_t parameters_of(const lm::LmConfig& c) {
  int64_t n = 0;
  for (const auto& [name, shape] : lm::lm_weight_shapes(c)) n += shape_numel(shape);
  return n;
}

lm::LmConfig preset(const std::string& name) {
  const JsonObject json(lm::lm_preset_config(name), name);
  lm::LmConfig c = lm::parse_lm_config(json);
  if (c.arch == lm::LmArch::OpenElm) {
    const auto ffn = lm::openelm_ffn_dims(json);
    for (size_t i = 0; i < ffn.size(); ++i) c.layers[i].ffn_dim = ffn[i];
  }
  return c;
}

TEST(LmPresets, PublishedParameterCounts) {
  EXPECT_EQ(parameters_of(preset("tinyllama-1.1b")), 1100048384);  // TinyLlama-1.1B
  EXPECT_EQ(parameters_of(preset("phi-2")), 2779683840);           // microsoft/phi-2
  EXPECT_EQ(parameters_of(preset("qwen2-0.5b")), 494032768);       // Qwen/Qwen2-0.5B (q/k/v biases, tied)
  EXPECT_EQ(parameters_of(preset("gemma-2b")), 2506172416);        // google/gemma-2b (tied)
}

TEST(LmPresets, Qwen2BiasesOnQkvOnly) {
  const lm::LmConfig c = preset("qwen2-0.5b");
  EXPECT_EQ(c.arch, lm::LmArch::Qwen2);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.output_proj_bias || c.mlp_bias);
  EXPECT_TRUE(c.tied_output);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.embedding_scale, 1.0f);
  EXPECT_EQ(c.norm_weight_offset, 0.0);
}

TEST(LmPresets, GemmaScalesInputsAndNormsAndHasItsOwnHeadWidth) {
  const lm::LmConfig c = preset("gemma-2b");
  EXPECT_EQ(c.arch, lm::LmArch::Gemma);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.layers[0].n_kv_heads, 1);
  EXPECT_EQ(c.embedding_scale, static_cast<float>(std::sqrt(2048.0)));
  EXPECT_EQ(c.norm_weight_offset, 1.0);
  EXPECT_EQ(c.activation, lm::Activation::GeluTanh);
  EXPECT_TRUE(c.tied_output && c.gated_mlp);
  EXPECT_FALSE(c.attention_bias || c.output_proj_bias);
}

TEST(LmPresets, OpenElmHeadsFollowTheMultipliersAsPublished) {
  // apple/OpenELM-270M's config.json lists these per-layer head counts.
  const lm::LmConfig c = preset("openelm-270m");
  std::vector<int64_t> q, kv;
  for (const auto& l : c.layers) {
    q.push_back(l.n_heads);
    kv.push_back(l.n_kv_heads);
  }
  EXPECT_EQ(q, (std::vector<int64_t>{12, 12, 12, 12, 12, 16, 16, 16, 16, 16, 16, 16, 20, 20, 20, 20}));
  EXPECT_EQ(kv, (std::vector<int64_t>{3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5}));
  EXPECT_EQ(c.layers.front().ffn_dim, 768);    // make_divisible(0.5 * 1280, 256)
  EXPECT_EQ(c.layers.back().ffn_dim, 5120);    // 4.0 * 1280
  EXPECT_TRUE(c.tied_output && c.qk_norm);
}

TEST(LmPresets, PhiPartialRotary) {
  const lm::LmConfig c = preset("phi-2");
  EXPECT_EQ(c.head_dim, 80);
  EXPECT_EQ(c.rotary_dim, 32);  // int(80 * 0.4)
  EXPECT_TRUE(c.parallel_block);
}

// The family table: one entry per LmArch value, found by its class name, with
// distinct names; every family has a preset that parses and lays out.
TEST(LmArchitectures, OneEntryPerFamily) {
  std::set<std::string_view> names, classes, presets_seen;
  for (const lm::arch::Architecture* a : lm::arch::all()) {
    EXPECT_EQ(&lm::arch::of(a->id), a);
    EXPECT_EQ(lm::arch::find(a->hf_class), a);
    EXPECT_TRUE(names.insert(a->name).second) << a->name;
    EXPECT_TRUE(classes.insert(a->hf_class).second) << a->hf_class;
    EXPECT_EQ(lm::lm_arch_name(a->id), a->name);
  }
  EXPECT_EQ(lm::arch::find("GPT2LMHeadModel"), nullptr);
  for (const std::string& p : lm::lm_preset_names()) {
    const lm::LmConfig c = preset(p);
    presets_seen.insert(lm::lm_arch_name(c.arch));
    EXPECT_FALSE(lm::lm_weight_shapes(c).empty()) << p;
  }
  EXPECT_EQ(presets_seen, names);
}

std::string refusal(nlohmann::json config) {
  try {
    lm::parse_lm_config(JsonObject(config, "dir/config.json"));
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

void expect_refused(const nlohmann::json& config, const std::string& needle) {
  const std::string e = refusal(config);
  EXPECT_NE(e.find(needle), std::string::npos) << "got: " << e;
  EXPECT_NE(e.find("dir/config.json"), std::string::npos) << e;
}

TEST(LmConfig, RefusesUnknownAndInconsistentConfigs) {
  const nlohmann::json llama = lm::lm_preset_config("tinyllama-1.1b");
  EXPECT_EQ(refusal(llama), "");
  auto with = [](nlohmann::json j, const std::string& key, nlohmann::json v) {
    if (v.is_null()) {
      j.erase(key);
    } else {
      j[key] = v;
    }
    return j;
  };
  expect_refused(with(llama, "architectures", {"GPT2LMHeadModel"}), "GPT2LMHeadModel");
  expect_refused(with(llama, "architectures", nullptr), "architectures");
  expect_refused(with(llama, "num_key_value_heads", 5), "num_key_value_heads");
  expect_refused(with(llama, "num_attention_heads", 30), "num_attention_heads");
  expect_refused(with(llama, "hidden_size", nullptr), "hidden_size");
  expect_refused(with(llama, "hidden_size", "wide"), "hidden_size");
  expect_refused(with(llama, "vocab_size", 0), "vocab_size");
  expect_refused(with(llama, "hidden_act", "relu6"), "hidden_act");
  expect_refused(with(llama, "rope_scaling", {{"type", "yarn"}, {"factor", 2.0}}), "yarn");
  expect_refused(with(llama, "rope_scaling", {{"rope_type", "longrope"}, {"factor", 8.0}}), "longrope");
  expect_refused(with(llama, "rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                                              {"high_freq_factor", 1.0}}),
                 "high_freq_factor");
  EXPECT_EQ(refusal(with(llama, "rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}})), "");
  expect_refused(with(llama, "rope_scaling", {{"type", "linear"}, {"factor", -1.0}}), "factor");
  EXPECT_EQ(refusal(with(llama, "rope_scaling", {{"type", "linear"}, {"factor", 4.0}})), "");

  const nlohmann::json phi = lm::lm_preset_config("phi-2");
  expect_refused(with(phi, "partial_rotary_factor", 1.5), "partial_rotary_factor");
  expect_refused(with(phi, "partial_rotary_factor", 0.01), "rotary dimension");  // int(80 * 0.01) = 0
  expect_refused(with(phi, "model_type", "phi-msft"), "phi-msft");

  nlohmann::json elm = lm::lm_preset_config("openelm-270m");
  elm["num_query_heads"] = {12, 12};
  elm["num_kv_heads"] = {3, 3};
  expect_refused(elm, "num_transformer_layers");
  elm = lm::lm_preset_config("openelm-270m");
  elm["normalization_layer_name"] = "layer_norm";
  expect_refused(elm, "normalization_layer_name");
}

nlohmann::json with(nlohmann::json j, const std::string& key, const nlohmann::json& v) {
  j[key] = v;
  return j;
}
nlohmann::json without(nlohmann::json j, const std::string& key) {
  j.erase(key);
  return j;
}

TEST(LmConfig, Qwen2SlidingWindowIsRefusedWhereALayerWouldUseIt) {
  const nlohmann::json q = lm::lm_preset_config("qwen2-0.5b");
  // use_sliding_window false: sliding_window / max_window_layers change nothing.
  EXPECT_EQ(refusal(with(with(q, "sliding_window", 4096), "max_window_layers", 21)), "");
  const nlohmann::json sliding = with(q, "use_sliding_window", true);
  expect_refused(with(sliding, "max_window_layers", 21), "use_sliding_window");
  EXPECT_NE(refusal(with(sliding, "max_window_layers", 21)).find("layer 21"), std::string::npos);
  // Layers below max_window_layers (Qwen2Config's default: 28) use full attention.
  EXPECT_EQ(refusal(sliding), "");
  EXPECT_EQ(refusal(with(sliding, "max_window_layers", 24)), "");
  std::vector<std::string> types(24, "full_attention");
  EXPECT_EQ(refusal(with(sliding, "layer_types", types)), "");
  types[5] = "sliding_attention";
  expect_refused(with(sliding, "layer_types", types), "layer 5");
  types[5] = "chunked_attention";
  expect_refused(with(sliding, "layer_types", types), "chunked_attention");
  types.pop_back();
  expect_refused(with(sliding, "layer_types", types), "layer_types");
  expect_refused(with(q, "model_type", "qwen2_moe"), "qwen2_moe");
  // Qwen2Config's tie_word_embeddings default is false.
  EXPECT_FALSE(lm::parse_lm_config(JsonObject(without(q, "tie_word_embeddings"), "q")).tied_output);
}

TEST(LmConfig, GemmaActivationHeadWidthAndTying) {
  const nlohmann::json g = lm::lm_preset_config("gemma-2b");
  auto parsed = [](const nlohmann::json& j) { return lm::parse_lm_config(JsonObject(j, "g")); };
  expect_refused(without(g, "head_dim"), "head_dim");
  expect_refused(with(g, "head_dim", 0), "head_dim");
  expect_refused(with(g, "hidden_activation", "relu6"), "hidden_activation");
  expect_refused(with(g, "model_type", "gemma2"), "gemma2");
  // hidden_act is ignored; without hidden_activation (or with null) the tanh GELU is used.
  EXPECT_EQ(parsed(with(without(g, "hidden_activation"), "hidden_act", "gelu")).activation, lm::Activation::GeluTanh);
  EXPECT_EQ(parsed(with(g, "hidden_activation", nullptr)).activation, lm::Activation::GeluTanh);
  EXPECT_EQ(parsed(with(with(g, "hidden_activation", "gelu"), "hidden_act", "gelu_pytorch_tanh")).activation,
            lm::Activation::GeluErf);
  // GemmaConfig ties by default; attention_bias covers q/k/v and o.
  EXPECT_TRUE(parsed(without(g, "tie_word_embeddings")).tied_output);
  EXPECT_FALSE(parsed(with(g, "tie_word_embeddings", false)).tied_output);
  const lm::LmConfig biased = parsed(with(g, "attention_bias", true));
  EXPECT_TRUE(biased.attention_bias && biased.output_proj_bias);
  // The input scale follows hidden_size.
  EXPECT_EQ(parsed(with(g, "hidden_size", 3072)).embedding_scale, static_cast<float>(std::sqrt(3072.0)));
}

// A copy of a fixture folder (llama-tiny unless named) whose weights `edit` may change.
struct EditedModel {
  testing::TempDir dir;
  explicit EditedModel(const std::function<void(NamedTensors&)>& edit, const std::string& config_override = "",
                       const std::string& fixture = "llama-tiny") {
    const auto src = testing::fixture(fixture);
    write_file_atomic(dir / "config.json",
                      config_override.empty() ? read_file(src / "config.json") : config_override);
    const auto st = SafetensorsFile::open(src / "model.safetensors");
    NamedTensors tensors;
    for (const auto& e : st.entries()) tensors.emplace_back(e.name, st.get(e.name));
    edit(tensors);
    write_safetensors(dir / "model.safetensors", tensors);
  }
};

std::string load_error(const std::filesystem::path& dir) {
  try {
    lm::LmModel::load(dir);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(LmWeights, MissingTensorIsNamed) {
  EditedModel m([](NamedTensors& t) {
    std::erase_if(t, [](const auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; });
  });
  const std::string e = load_error(m.dir.path());
  EXPECT_NE(e.find("missing tensor \"model.layers.1.mlp.up_proj.weight\""), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
}

TEST(LmWeights, WrongShapeIsNamed) {
  EditedModel m([](NamedTensors& t) {
    for (auto& [name, tensor] : t)
      if (name == "model.layers.0.self_attn.k_proj.weight") tensor = Tensor::zeros(DType::F32, {64, 64});
  });
  const std::string e = load_error(m.dir.path());
  EXPECT_NE(e.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[64, 64]"), std::string::npos) << e;
  EXPECT_NE(e.find("[32, 64]"), std::string::npos) << e;
}

TEST(LmWeights, WrongDtypeIsNamed) {
  EditedModel m([](NamedTensors& t) {
    for (auto& [name, tensor] : t)
      if (name == "model.norm.weight") tensor = Tensor::zeros(DType::I64, {64});
  });
  const std::string e = load_error(m.dir.path());
  EXPECT_NE(e.find("model.norm.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("i64"), std::string::npos) << e;
}

TEST(LmWeights, Qwen2AttentionBiasesAreRequired) {
  EditedModel m(
      [](NamedTensors& t) {
        std::erase_if(t, [](const auto& p) { return p.first == "model.layers.1.self_attn.k_proj.bias"; });
      },
      "", "qwen2-tiny");
  const std::string e = load_error(m.dir.path());
  EXPECT_NE(e.find("missing tensor \"model.layers.1.self_attn.k_proj.bias\""), std::string::npos) << e;
  EXPECT_NE(e.find("[32]"), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("Qwen2ForCausalLM"), std::string::npos) << e;
}

TEST(LmWeights, GemmaUntiedNeedsAnOutputMatrix) {
  nlohmann::json config = nlohmann::json::parse(read_file(testing::fixture("gemma-tiny/config.json")));
  config["tie_word_embeddings"] = false;
  EditedModel m([](NamedTensors&) {}, config.dump(), "gemma-tiny");
  const std::string e = load_error(m.dir.path());
  EXPECT_NE(e.find("missing tensor \"lm_head.weight\""), std::string::npos) << e;
}

// Gemma's norms hold 1 + the stored weight for compute; tensors() keeps the
// stored weight (what GGUF export writes and the loader adds 1 to again).
TEST(LmWeights, GemmaNormsScaleByOnePlusTheStoredWeight) {
  const lm::LmModel m = lm::LmModel::load(testing::fixture("gemma-tiny"));
  const auto st = SafetensorsFile::open(testing::fixture("gemma-tiny/model.safetensors"));
  const Tensor stored = st.get("model.norm.weight");
  const Tensor listed = std::find_if(m.tensors().begin(), m.tensors().end(), [](const auto& p) {
                          return p.first == "model.norm.weight";
                        })->second;
  for (int64_t i = 0; i < stored.numel(); ++i) {
    EXPECT_EQ(m.final_norm().weight.data<float>()[i], 1.0f + stored.data<float>()[i]);
    EXPECT_EQ(listed.data<float>()[i], stored.data<float>()[i]);
  }
  EXPECT_EQ(m.layers()[1].mlp_norm.weight.data<float>()[3],
            1.0f + st.get("model.layers.1.post_attention_layernorm.weight").data<float>()[3]);
}

TEST(LmWeights, F16CheckpointStaysF16) {
  EditedModel m([](NamedTensors& t) {
    for (auto& [name, tensor] : t) tensor = tensor.to(DType::F16);
  });
  const lm::LmModel model = lm::LmModel::load(m.dir.path());
  EXPECT_EQ(model.layers()[1].up.weight.dtype(), DType::F16);
  EXPECT_EQ(model.final_norm().weight.dtype(), DType::F32);
  const auto io = SafetensorsFile::open(testing::fixture("llama-tiny/io.safetensors"));
  const Tensor ids = io.get("input_ids").to(DType::I32);
  lm::LmSession s(model);
  const Tensor got = s.forward(std::span<const int32_t>(ids.data<int32_t>(), ids.numel()), true);
  EXPECT_LE(testing::rel_error(got, io.get("logits")), 1e-2);
}

TEST(LmWeights, ShardedCheckpointLoadsLikeOneFile) {
  testing::TempDir dir;
  const auto src = testing::fixture("openelm-tiny");
  write_file_atomic(dir / "config.json", read_file(src / "config.json"));
  const auto st = SafetensorsFile::open(src / "model.safetensors");
  NamedTensors a, b;
  nlohmann::json map;
  for (size_t i = 0; i < st.entries().size(); ++i) {
    const auto& name = st.entries()[i].name;
    (i % 2 ? a : b).emplace_back(name, st.get(name));
    map[name] = i % 2 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  write_safetensors(dir / "model-00001-of-00002.safetensors", a);
  write_safetensors(dir / "model-00002-of-00002.safetensors", b);
  write_file_atomic(dir / "model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump());
  const lm::LmModel sharded = lm::LmModel::load(dir.path());
  const lm::LmModel single = lm::LmModel::load(src);
  ASSERT_EQ(sharded.tensors().size(), single.tensors().size());

  // Shard names may not leave the folder.
  map[st.entries()[0].name] = "../model.safetensors";
  write_file_atomic(dir / "model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump());
  EXPECT_NE(load_error(dir.path()).find("plain file name"), std::string::npos);
}

// Matrices are copied into the compute layout's arena (f16 decoded 1.06-1.17x
// faster from it than from the mapped file: docs/perf/lm-decode.md); a model
// loaded for writing back (compute_layout off) keeps views of the mapped file.
TEST(LmWeights, MatricesMoveToTheArenaAndConvertOnRequest) {
  const lm::LmModel m = lm::LmModel::load(testing::fixture("llama-tiny"));
  EXPECT_TRUE(m.layers()[0].q.weight.writable());  // an owned copy, not the mapped file
  EXPECT_EQ(m.layers()[0].q.weight.dtype(), DType::F32);
  lm::LoadOptions mapped;
  mapped.compute_layout = false;
  EXPECT_FALSE(lm::LmModel::load(testing::fixture("llama-tiny"), mapped).layers()[0].q.weight.writable());
  lm::LoadOptions o;
  o.weight_dtype = DType::Q4_0;
  const lm::LmModel q = lm::LmModel::load(testing::fixture("llama-tiny"), o);
  const Tensor& wq = q.layers()[0].q.weight;
  EXPECT_EQ(dtype_of_rows(wq.dtype()), DType::Q4_0);
  EXPECT_EQ(q.final_norm().weight.dtype(), DType::F32);
  EXPECT_LT(q.weight_bytes_per_token(), m.weight_bytes_per_token() / 5);
  // Quantised matrices are rearranged for linear() unless asked not to.
  o.compute_layout = false;
  const lm::LmModel rows = lm::LmModel::load(testing::fixture("llama-tiny"), o);
  EXPECT_EQ(rows.layers()[0].q.weight.dtype(), DType::Q4_0);
  EXPECT_EQ(wq.dtype(), prepare_linear_weight(rows.layers()[0].q.weight).dtype());
  EXPECT_EQ(q.weight_bytes_per_token(), rows.weight_bytes_per_token());
}

}  // namespace
}  // namespace tinyemo
