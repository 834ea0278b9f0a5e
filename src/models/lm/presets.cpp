#include "models/lm/presets.h"

#include <cmath>
#include <map>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "io/json.h"
#include "models/lm/arch/arch.h"

namespace tinyemo::lm {

namespace {

// Values of the published config.json files (apple/OpenELM-270M, -450M,
// TinyLlama/TinyLlama-1.1B-Chat-v1.0, microsoft/phi-2, Qwen/Qwen2-0.5B,
// google/gemma-2b); OpenELM's per-layer head counts and FFN widths follow from
// the multipliers as its config code derives them. Gemma-2B's activation is
// given as hidden_activation, the field transformers reads for it.
const std::map<std::string, nlohmann::json>& presets() {
  static const std::map<std::string, nlohmann::json> p = [] {
    auto openelm = [](int64_t dim, int64_t layers) {
      return nlohmann::json{{"architectures", {"OpenELMForCausalLM"}},
                            {"model_type", "openelm"},
                            {"activation_fn_name", "swish"},
                            {"model_dim", dim},
                            {"head_dim", 64},
                            {"num_transformer_layers", layers},
                            {"num_gqa_groups", 4},
                            {"qkv_multipliers", {0.5, 1.0}},
                            {"ffn_multipliers", {0.5, 4.0}},
                            {"ffn_dim_divisor", 256},
                            {"ffn_with_glu", true},
                            {"normalization_layer_name", "rms_norm"},
                            {"normalize_qk_projections", true},
                            {"rope_freq_constant", 10000},
                            {"rope_max_length", 4096},
                            {"share_input_output_layers", true},
                            {"vocab_size", 32000},
                            {"max_context_length", 2048},
                            {"bos_token_id", 1},
                            {"eos_token_id", 2}};
    };
    std::map<std::string, nlohmann::json> m;
    m["openelm-270m"] = openelm(1280, 16);
    m["openelm-450m"] = openelm(1536, 20);
    m["tinyllama-1.1b"] = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"hidden_act", "silu"},
                           {"hidden_size", 2048},
                           {"intermediate_size", 5632},
                           {"num_hidden_layers", 22},
                           {"num_attention_heads", 32},
                           {"num_key_value_heads", 4},
                           {"rms_norm_eps", 1e-5},
                           {"rope_theta", 10000.0},
                           {"vocab_size", 32000},
                           {"max_position_embeddings", 2048},
                           {"tie_word_embeddings", false},
                           {"bos_token_id", 1},
                           {"eos_token_id", 2}};
    m["phi-2"] = {{"architectures", {"PhiForCausalLM"}},
                  {"model_type", "phi"},
                  {"hidden_act", "gelu_new"},
                  {"hidden_size", 2560},
                  {"intermediate_size", 10240},
                  {"num_hidden_layers", 32},
                  {"num_attention_heads", 32},
                  {"num_key_value_heads", 32},
                  {"partial_rotary_factor", 0.4},
                  {"qk_layernorm", false},
                  {"layer_norm_eps", 1e-5},
                  {"rope_theta", 10000.0},
                  {"vocab_size", 51200},
                  {"max_position_embeddings", 2048},
                  {"tie_word_embeddings", false},
                  {"bos_token_id", 50256},
                  {"eos_token_id", 50256}};
    m["qwen2-0.5b"] = {{"architectures", {"Qwen2ForCausalLM"}},
                       {"model_type", "qwen2"},
                       {"hidden_act", "silu"},
                       {"hidden_size", 896},
                       {"intermediate_size", 4864},
                       {"num_hidden_layers", 24},
                       {"num_attention_heads", 14},
                       {"num_key_value_heads", 2},
                       {"rms_norm_eps", 1e-6},
                       {"rope_theta", 1000000.0},
                       {"vocab_size", 151936},
                       {"max_position_embeddings", 32768},
                       {"tie_word_embeddings", true},
                       {"use_sliding_window", false},
                       {"bos_token_id", 151643},
                       {"eos_token_id", 151643}};
    m["gemma-2b"] = {{"architectures", {"GemmaForCausalLM"}},
                     {"model_type", "gemma"},
                     {"hidden_activation", "gelu_pytorch_tanh"},
                     {"hidden_size", 2048},
                     {"intermediate_size", 16384},
                     {"num_hidden_layers", 18},
                     {"num_attention_heads", 8},
                     {"num_key_value_heads", 1},
                     {"head_dim", 256},
                     {"rms_norm_eps", 1e-6},
                     {"rope_theta", 10000.0},
                     {"vocab_size", 256000},
                     {"max_position_embeddings", 8192},
                     {"tie_word_embeddings", true},
                     {"bos_token_id", 2},
                     {"eos_token_id", 1},
                     {"pad_token_id", 0}};
    return m;
  }();
  return p;
}

// Generates each tensor when asked; element i of a tensor depends only on the
// seed, the name and i (so the weights do not depend on the thread count).
class RandomWeights : public WeightSource {
 public:
  RandomWeights(const LmConfig& config, uint64_t seed) : seed_(seed) {
    for (auto& [name, shape] : lm_weight_shapes(config)) shapes_[name] = shape;
  }
  bool contains(const std::string& name) const override { return shapes_.count(name) != 0; }
  std::string where(const std::string&) const override { return "random weights"; }

  Tensor get(const std::string& name) const override {
    const Shape& shape = shapes_.at(name);
    Tensor t = Tensor::empty(DType::F32, shape);
    float* p = t.mutable_data<float>();
    const int64_t n = t.numel();
    if (shape.size() == 1) {
      std::fill(p, p + n, name.ends_with(".bias") ? 0.0f : 1.0f);
      return t;
    }
    // Uniform on [-a, a] with variance 1 / fan_in.
    const float a = std::sqrt(3.0f / static_cast<float>(shape[1]));
    const uint64_t stream = splitmix64_mix((seed_ ^ std::hash<std::string>{}(name)) + kSplitmixGamma);
    parallel_for(n, 1 << 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const uint64_t r = splitmix64_mix(stream + static_cast<uint64_t>(i) + kSplitmixGamma);
        p[i] = a * (static_cast<float>(r >> 40) * 0x1.0p-23f - 1.0f);
      }
    });
    return t;
  }

 private:
  uint64_t seed_;
  std::map<std::string, Shape> shapes_;
};

}  // namespace

const std::vector<std::string>& lm_preset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& [name, config] : presets()) v.push_back(name);
    return v;
  }();
  return names;
}

nlohmann::json lm_preset_config(std::string_view name) {
  const auto it = presets().find(std::string(name));
  if (it == presets().end()) {
    std::string known;
    for (const auto& n : lm_preset_names()) known += (known.empty() ? "" : ", ") + n;
    fail("unknown LM architecture \"{}\" (known: {})", name, known);
  }
  return it->second;
}

LmModel random_lm(const nlohmann::json& hf_config, DType dtype, uint64_t seed) {
  const JsonObject json(hf_config, "random-weight model config");
  LmConfig config = parse_lm_config(json);
  if (const auto ffn_dims = arch::of(config.arch).ffn_dims) {
    const std::vector<int64_t> ffn = ffn_dims(json);
    for (size_t i = 0; i < ffn.size(); ++i) config.layers[i].ffn_dim = ffn[i];
  }
  const RandomWeights weights(config, seed);
  LoadOptions options;
  options.weight_dtype = dtype;
  return LmModel::bind(std::move(config), hf_config, weights, options);
}

}  // namespace tinyemo::lm
