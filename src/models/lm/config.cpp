#include "models/lm/config.h"

#include <algorithm>
#include <climits>
#include <cmath>

namespace tinyemo {

namespace {

Activation parse_activation(const JsonObject& c, const std::string& key) {
  const auto name = c.get<std::string>(key);
  if (name == "silu" || name == "swish") return Activation::Silu;
  // gelu_fast is the same tanh approximation as gelu_new, written differently.
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::GeluTanh;
  if (name == "gelu") return Activation::GeluErf;
  fail("{}: field \"{}\" = \"{}\" is not a supported activation (silu, swish, gelu_new, gelu_pytorch_tanh, gelu)",
       c.where(), key, name);
}

// An integer field (or list of them). JSON numbers that are not integers (1.5,
// 1e30) are refused here rather than converted with a truncating cast.
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
int32_t token_id(const JsonObject& c, const std::string& key, const nlohmann::json& v) {
  const int64_t id = integer(c, key, v);
  TE_CHECK(id >= -1 && id <= INT32_MAX, "{}: field \"{}\" = {} is not a token id", c.where(), key, id);
  return static_cast<int32_t>(id);
}

// A positive integer field no larger than `max` (a bound that keeps a damaged
// or hostile config from sizing huge allocations).
int64_t positive(const JsonObject& c, const std::string& key, int64_t max = int64_t{1} << 30) {
  const auto v = integer(c, key);
  TE_CHECK(v > 0 && v <= max, "{}: field \"{}\" = {} is outside [1, {}]", c.where(), key, v, max);
  return v;
}
constexpr int64_t kMaxLayers = 4096;

double positive_float(const JsonObject& c, const std::string& key, double fallback) {
  const double v = c.get_or<double>(key, fallback);
  TE_CHECK(v > 0.0 && std::isfinite(v), "{}: field \"{}\" must be a positive number, got {}", c.where(), key, v);
  return v;
}

void read_special_ids(const JsonObject& c, LmConfig* cfg) {
  if (c.has("bos_token_id")) cfg->bos_id = token_id(c, "bos_token_id", c.json().at("bos_token_id"));
  if (c.has("eos_token_id")) {
    // One id or a list (LLaMA-3 style); ids past the vocabulary are kept (small
    // test models carry the real tokenizer's ids) and can never be generated.
    const auto& e = c.json().at("eos_token_id");
    if (e.is_array()) {
      for (const auto& v : e) cfg->eos_ids.push_back(token_id(c, "eos_token_id", v));
    } else {
      cfg->eos_ids = {token_id(c, "eos_token_id", e)};
    }
  }
}

// rope_scaling: {"type" or "rope_type": ..., "factor": f, ...}. "default" and
// "dynamic" change nothing within max_position_embeddings (dynamic NTK only
// rescales past it, and tinyemo refuses longer sequences); "linear" and "llama3"
// rescale the frequencies. yarn / longrope also scale the attention and are refused.
void read_rope_scaling(const JsonObject& c, LmConfig* cfg) {
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

// What the Hugging Face decoders (LlamaConfig, PhiConfig, Qwen2Config,
// GemmaConfig) share: sizes, heads, context, RoPE. The activation and the tied
// output have per-family defaults and are read by the callers.
void parse_hf_decoder(const JsonObject& c, LmConfig* cfg) {
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
  read_rope_scaling(c, cfg);
}

// model_type, when present, must be the one the class is written for.
void check_model_type(const JsonObject& c, const std::string& want) {
  const auto model_type = c.get_or<std::string>("model_type", want);
  TE_CHECK(model_type == want, "{}: model_type \"{}\" does not go with {} (model_type \"{}\" expected)", c.where(),
           model_type, c.get<std::vector<std::string>>("architectures")[0], want);
}

void parse_llama(const JsonObject& c, LmConfig* cfg) {
  parse_hf_decoder(c, cfg);
  cfg->activation = parse_activation(c, "hidden_act");
  cfg->tied_output = c.get_or<bool>("tie_word_embeddings", false);
  cfg->norm = NormKind::Rms;
  cfg->norm_eps = positive_float(c, "rms_norm_eps", 1e-6);
  cfg->gated_mlp = true;
  cfg->attention_bias = c.get_or<bool>("attention_bias", false);
  cfg->output_proj_bias = cfg->attention_bias;
  cfg->mlp_bias = c.get_or<bool>("mlp_bias", false);
}

// Qwen2ForCausalLM: LLaMA with biases on q/k/v (always, not configurable) and
// none on o_proj. Sliding-window attention is used only when
// use_sliding_window is true, and then on the layers that layer_types marks
// "sliding_attention" (by default layers >= max_window_layers); tinyemo's
// attention has no window, so a config where some layer would slide is refused.
void parse_qwen2(const JsonObject& c, LmConfig* cfg) {
  check_model_type(c, "qwen2");
  parse_hf_decoder(c, cfg);
  cfg->activation = parse_activation(c, "hidden_act");
  cfg->tied_output = c.get_or<bool>("tie_word_embeddings", false);
  cfg->norm = NormKind::Rms;
  cfg->norm_eps = positive_float(c, "rms_norm_eps", 1e-6);
  cfg->gated_mlp = true;
  cfg->attention_bias = true;
  cfg->output_proj_bias = false;
  if (c.get_or<bool>("use_sliding_window", false)) {
    const int64_t layers = cfg->n_layers();
    int64_t first_sliding = -1;
    if (c.has("layer_types") && !c.json().at("layer_types").is_null()) {
      const auto types = c.get<std::vector<std::string>>("layer_types");
      TE_CHECK(static_cast<int64_t>(types.size()) == layers, "{}: field \"layer_types\" has {} entries for {} layers",
               c.where(), types.size(), layers);
      for (int64_t l = layers - 1; l >= 0; --l) {
        TE_CHECK(types[l] == "full_attention" || types[l] == "sliding_attention",
                 "{}: field \"layer_types\" entry \"{}\" is not full_attention or sliding_attention", c.where(),
                 types[l]);
        if (types[l] == "sliding_attention") first_sliding = l;
      }
    } else {
      const int64_t full = c.has("max_window_layers") ? integer(c, "max_window_layers") : 28;  // Qwen2Config's default
      if (full < layers) first_sliding = std::max<int64_t>(full, 0);
    }
    TE_CHECK(first_sliding < 0,
             "{}: field \"use_sliding_window\" is true and layer {} would use sliding-window attention, which tinyemo "
             "does not implement (released Qwen2 models set use_sliding_window false)",
             c.where(), first_sliding);
  }
}

// GemmaForCausalLM (Gemma 1): RMSNorm scaling by (1 + weight), input rows
// multiplied by sqrt(hidden_size), GeGLU, an explicit head_dim, q/k/v/o biases
// when attention_bias, output tied to the embeddings unless
// tie_word_embeddings is false (GemmaConfig's default is true).
void parse_gemma(const JsonObject& c, LmConfig* cfg) {
  check_model_type(c, "gemma");
  // GemmaConfig would silently default head_dim to 256 (Gemma-7B's); Gemma's
  // head width is not hidden / heads (Gemma-2B: 2048 / 8 = 256, Gemma-7B:
  // 3072 / 16 = 192 but 256), so a config without it is refused.
  TE_CHECK(c.has("head_dim"), "{}: missing field \"head_dim\" (Gemma's head width is explicit, not hidden_size / "
           "num_attention_heads)", c.where());
  parse_hf_decoder(c, cfg);
  // transformers' GemmaMLP (4.39 to 4.47, the versions TinyLLaVA's Gemma models
  // were made with) takes hidden_activation and, when it is absent or null,
  // gelu_pytorch_tanh, ignoring hidden_act: Gemma's original configs say
  // "gelu" there, while the model was trained with the tanh approximation.
  if (c.has("hidden_activation") && !c.json().at("hidden_activation").is_null()) {
    cfg->activation = parse_activation(c, "hidden_activation");
  } else {
    cfg->activation = Activation::GeluTanh;
  }
  cfg->tied_output = c.get_or<bool>("tie_word_embeddings", true);
  cfg->norm = NormKind::Rms;
  cfg->norm_eps = positive_float(c, "rms_norm_eps", 1e-6);
  cfg->norm_weight_offset = 1.0;
  cfg->embedding_scale = static_cast<float>(std::sqrt(static_cast<double>(cfg->hidden)));
  cfg->gated_mlp = true;
  cfg->attention_bias = cfg->output_proj_bias = c.get_or<bool>("attention_bias", false);
}

void parse_phi(const JsonObject& c, LmConfig* cfg) {
  parse_hf_decoder(c, cfg);
  cfg->activation = parse_activation(c, "hidden_act");
  cfg->tied_output = c.get_or<bool>("tie_word_embeddings", false);
  cfg->norm = NormKind::Layer;
  cfg->norm_eps = positive_float(c, "layer_norm_eps", 1e-5);
  cfg->gated_mlp = false;
  cfg->parallel_block = true;
  cfg->qk_norm = c.get_or<bool>("qk_layernorm", false);
  cfg->qk_norm_kind = NormKind::Layer;
  cfg->qk_norm_eps = cfg->norm_eps;
  cfg->attention_bias = cfg->output_proj_bias = cfg->mlp_bias = cfg->lm_head_bias = true;
  const double factor = c.get_or<double>("partial_rotary_factor", 0.5);
  TE_CHECK(factor > 0.0 && factor <= 1.0, "{}: partial_rotary_factor = {} must be in (0, 1]", c.where(), factor);
  // Python's int(head_dim * factor): truncation of the double product.
  cfg->rotary_dim = static_cast<int64_t>(static_cast<double>(cfg->head_dim) * factor);
}

// OpenELM's make_divisible (configuration_openelm.py): round to the nearest
// multiple of `divisor`, never below it, and not more than 10% down.
int64_t make_divisible(double v, int64_t divisor) {
  int64_t r = std::max<int64_t>(divisor, static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor);
  if (static_cast<double>(r) < 0.9 * v) r += divisor;
  return r;
}

// A multiplier given as one number (all layers) or as [first, last] spread
// linearly over the layers and rounded to 2 decimals, as OpenELM's config does.
std::vector<double> per_layer_multipliers(const JsonObject& c, const std::string& key, int64_t layers) {
  TE_CHECK(c.has(key), "{}: missing field \"{}\"", c.where(), key);
  std::vector<double> out;
  if (c.json().at(key).is_number()) return std::vector<double>(static_cast<size_t>(layers), c.get<double>(key));
  const auto v = c.get<std::vector<double>>(key);
  if (v.size() == 2) {
    for (int64_t l = 0; l < layers; ++l) {
      const double t = layers == 1 ? v[0] : v[0] + (v[1] - v[0]) * static_cast<double>(l) / (layers - 1);
      out.push_back(std::nearbyint(t * 100.0) / 100.0);
    }
    return out;
  }
  TE_CHECK(static_cast<int64_t>(v.size()) == layers, "{}: field \"{}\" has {} entries for {} layers", c.where(), key,
           v.size(), layers);
  return v;
}

void parse_openelm(const JsonObject& c, LmConfig* cfg) {
  cfg->hidden = positive(c, "model_dim");
  cfg->head_dim = positive(c, "head_dim");
  const int64_t layers = positive(c, "num_transformer_layers", kMaxLayers);
  std::vector<int64_t> q_heads, kv_heads;
  if (c.has("num_query_heads")) {
    q_heads = integers(c, "num_query_heads");
    kv_heads = integers(c, "num_kv_heads");
  } else {
    // Derived as OpenELMConfig.__post_init__ does.
    const int64_t groups = positive(c, "num_gqa_groups");
    for (double m : per_layer_multipliers(c, "qkv_multipliers", layers)) {
      const int64_t q_dim = make_divisible(static_cast<double>(cfg->hidden) * m, cfg->head_dim * groups);
      q_heads.push_back(q_dim / cfg->head_dim);
      kv_heads.push_back(q_heads.back() / groups);
    }
  }
  TE_CHECK(static_cast<int64_t>(q_heads.size()) == layers && static_cast<int64_t>(kv_heads.size()) == layers,
           "{}: num_query_heads ({} entries) and num_kv_heads ({} entries) must list num_transformer_layers = {} "
           "layers",
           c.where(), q_heads.size(), kv_heads.size(), layers);
  for (int64_t l = 0; l < layers; ++l) {
    const int64_t q = q_heads[l], kv = kv_heads[l];
    TE_CHECK(q > 0 && kv > 0 && q % kv == 0 && q <= (1 << 20),
             "{}: layer {}: num_query_heads {} is not a positive multiple of num_kv_heads {}", c.where(), l, q, kv);
    cfg->layers.push_back({q, kv, 0});  // FFN width: from the weights
  }
  cfg->vocab = positive(c, "vocab_size");
  cfg->max_context = positive(c, "max_context_length");
  const auto norm = c.get_or<std::string>("normalization_layer_name", "rms_norm");
  TE_CHECK(norm == "rms_norm", "{}: normalization_layer_name \"{}\" is not supported (rms_norm)", c.where(), norm);
  cfg->norm = NormKind::Rms;
  cfg->norm_eps = 1e-6;  // OpenELMRMSNorm's default, not configurable
  cfg->activation = parse_activation(c, "activation_fn_name");
  cfg->gated_mlp = c.get_or<bool>("ffn_with_glu", true);
  cfg->qk_norm = c.get_or<bool>("normalize_qk_projections", false);
  cfg->qk_norm_kind = NormKind::Rms;
  cfg->qk_norm_eps = 1e-6;
  cfg->tied_output = c.get_or<bool>("share_input_output_layers", false);
  cfg->rope_theta = positive_float(c, "rope_freq_constant", 10000.0);
  cfg->rotary_dim = cfg->head_dim;
}

}  // namespace

std::string_view lm_arch_name(LmArch a) {
  switch (a) {
    case LmArch::Llama: return "llama";
    case LmArch::Phi: return "phi";
    case LmArch::OpenElm: return "openelm";
    case LmArch::Qwen2: return "qwen2";
    case LmArch::Gemma: return "gemma";
  }
  return "?";
}

std::vector<int64_t> openelm_ffn_dims(const JsonObject& c) {
  const int64_t layers = positive(c, "num_transformer_layers", kMaxLayers);
  const int64_t dim = positive(c, "model_dim");
  const int64_t divisor = positive(c, "ffn_dim_divisor");
  std::vector<int64_t> out;
  for (double m : per_layer_multipliers(c, "ffn_multipliers", layers))
    out.push_back(make_divisible(m * static_cast<double>(dim), divisor));
  return out;
}

LmConfig parse_lm_config(const JsonObject& c) {
  LmConfig cfg;
  cfg.where = c.where();
  TE_CHECK(c.has("architectures"), "{}: missing field \"architectures\"", c.where());
  const auto archs = c.get<std::vector<std::string>>("architectures");
  TE_CHECK(archs.size() == 1, "{}: field \"architectures\" must name exactly one class, got {}", c.where(),
           archs.size());
  cfg.architecture = archs[0];
  if (cfg.architecture == "LlamaForCausalLM") {
    cfg.arch = LmArch::Llama;
    parse_llama(c, &cfg);
  } else if (cfg.architecture == "PhiForCausalLM") {
    const auto model_type = c.get_or<std::string>("model_type", "phi");
    TE_CHECK(model_type == "phi",
             "{}: model_type \"{}\" is the pre-transformers Phi layout (Wqkv, mixer); only model_type \"phi\" "
             "(transformers' PhiForCausalLM) is supported",
             c.where(), model_type);
    cfg.arch = LmArch::Phi;
    parse_phi(c, &cfg);
  } else if (cfg.architecture == "OpenELMForCausalLM") {
    cfg.arch = LmArch::OpenElm;
    parse_openelm(c, &cfg);
  } else if (cfg.architecture == "Qwen2ForCausalLM") {
    cfg.arch = LmArch::Qwen2;
    parse_qwen2(c, &cfg);
  } else if (cfg.architecture == "GemmaForCausalLM") {
    cfg.arch = LmArch::Gemma;
    parse_gemma(c, &cfg);
  } else {
    fail("{}: architecture \"{}\" is not supported (LlamaForCausalLM, PhiForCausalLM, OpenELMForCausalLM, "
         "Qwen2ForCausalLM, GemmaForCausalLM)",
         c.where(), cfg.architecture);
  }
  TE_CHECK(cfg.rotary_dim > 0 && cfg.rotary_dim % 2 == 0 && cfg.rotary_dim <= cfg.head_dim,
           "{}: the rotary dimension {} must be even and in (0, head_dim = {}]", c.where(), cfg.rotary_dim,
           cfg.head_dim);
  read_special_ids(c, &cfg);
  return cfg;
}

}  // namespace tinyemo
