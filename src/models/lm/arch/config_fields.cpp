// config.json readers the families share (declared in arch.h).
#include <cmath>

#include "models/lm/arch/arch.h"

namespace tinyemo::lm::arch::fields {

int64_t integer(const JsonObject& c, const std::string& key, const nlohmann::json& v) {
  TE_CHECK(v.is_number_integer() && (!v.is_number_unsigned() || v.get<uint64_t>() <= (1ull << 62)),
           "{}: field \"{}\" must hold integers, found {}", c.where(), key, v.dump());
  return v.get<int64_t>();
}

int64_t integer(const JsonObject& c, const std::string& key) {
  TE_CHECK(c.has(key), "{}: missing field \"{}\"", c.where(), key);
  return integer(c, key, c.json().at(key));
}

std::vector<int64_t> integers(const JsonObject& c, const std::string& key) {
  TE_CHECK(c.has(key) && c.json().at(key).is_array(), "{}: field \"{}\" must be a list of integers", c.where(), key);
  std::vector<int64_t> out;
  for (const auto& v : c.json().at(key)) out.push_back(integer(c, key, v));
  return out;
}

int64_t positive(const JsonObject& c, const std::string& key, int64_t max) {
  const auto v = integer(c, key);
  TE_CHECK(v > 0 && v <= max, "{}: field \"{}\" = {} is outside [1, {}]", c.where(), key, v, max);
  return v;
}

double positive_float(const JsonObject& c, const std::string& key, double fallback) {
  const double v = c.get_or<double>(key, fallback);
  TE_CHECK(v > 0.0 && std::isfinite(v), "{}: field \"{}\" must be a positive number, got {}", c.where(), key, v);
  return v;
}

Activation activation(const JsonObject& c, const std::string& key) {
  const auto name = c.get<std::string>(key);
  if (name == "silu" || name == "swish") return Activation::Silu;
  // gelu_fast is the same tanh approximation as gelu_new, written differently.
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::GeluTanh;
  if (name == "gelu") return Activation::GeluErf;
  fail("{}: field \"{}\" = \"{}\" is not a supported activation (silu, swish, gelu_new, gelu_pytorch_tanh, gelu)",
       c.where(), key, name);
}

// rope_scaling: {"type" or "rope_type": ..., "factor": f, ...}. "default" and
// "dynamic" change nothing within max_position_embeddings (dynamic NTK only
// rescales past it, and tinyemo refuses longer sequences); "linear" and "llama3"
// rescale the frequencies. yarn / longrope also scale the attention and are refused.
void rope_scaling(const JsonObject& c, LmConfig* cfg) {
  if (!c.has("rope_scaling")) return;
  const JsonObject s = c.object("rope_scaling");
  const std::string type = s.has("rope_type") ? s.get<std::string>("rope_type") : s.get<std::string>("type");
  RopeScaling& r = cfg->rope_scaling;
  if (type == "default") return;
  r.factor = positive_float(s, "factor", 1.0);
  if (type == "dynamic") return;
  if (type == "linear") {
    r.kind = RopeScaling::Kind::Linear;
    return;
  }
  TE_CHECK(type == "llama3", "{}: rope_scaling type \"{}\" is not supported (linear, llama3, dynamic, default)",
           c.where(), type);
  r.kind = RopeScaling::Kind::Llama3;
  r.low_freq_factor = positive_float(s, "low_freq_factor", 1.0);
  r.high_freq_factor = positive_float(s, "high_freq_factor", 4.0);
  r.original_max_position = positive_float(s, "original_max_position_embeddings", 8192.0);
  TE_CHECK(r.high_freq_factor > r.low_freq_factor, "{}: rope_scaling high_freq_factor must exceed low_freq_factor",
           c.where());
}

void expect_model_type(const JsonObject& c, const std::string& want) {
  const auto model_type = c.get_or<std::string>("model_type", want);
  TE_CHECK(model_type == want, "{}: model_type \"{}\" does not go with {} (model_type \"{}\" expected)", c.where(),
           model_type, c.get<std::vector<std::string>>("architectures").at(0), want);
}

void hf_decoder(const JsonObject& c, LmConfig* cfg) {
  cfg->hidden = positive(c, "hidden_size");
  const int64_t layers = positive(c, "num_hidden_layers", kMaxLayers);
  const int64_t heads = positive(c, "num_attention_heads");
  const int64_t kv_heads = c.has("num_key_value_heads") ? positive(c, "num_key_value_heads") : heads;
  TE_CHECK(heads % kv_heads == 0, "{}: num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
           c.where(), heads, kv_heads);
  if (c.has("head_dim")) {
    cfg->head_dim = positive(c, "head_dim");
  } else {
    TE_CHECK(cfg->hidden % heads == 0, "{}: hidden_size ({}) is not a multiple of num_attention_heads ({})",
             c.where(), cfg->hidden, heads);
    cfg->head_dim = cfg->hidden / heads;
  }
  const int64_t ffn = positive(c, "intermediate_size");
  cfg->layers.assign(static_cast<size_t>(layers), LmLayerConfig{heads, kv_heads, ffn});
  cfg->vocab = positive(c, "vocab_size");
  cfg->max_context = positive(c, "max_position_embeddings");
  cfg->rope_theta = positive_float(c, "rope_theta", 10000.0);
  cfg->rotary_dim = cfg->head_dim;
  rope_scaling(c, cfg);
}

}  // namespace tinyemo::lm::arch::fields
