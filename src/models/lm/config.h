// Hyperparameters of the decoder-only LMs tinyemo runs, read from a Hugging
// Face config.json: LlamaForCausalLM (TinyLlama), PhiForCausalLM (Phi-2),
// OpenELMForCausalLM, Qwen2ForCausalLM and GemmaForCausalLM (Gemma 1); each
// family's reading is in arch/<family>.cpp. Everything the forward pass needs
// is here, as fields rather than per-family code; per-layer FFN widths are
// filled in from the weight shapes when the model is bound.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"

namespace tinyemo::lm {

enum class LmArch { Llama, Phi, OpenElm, Qwen2, Gemma };
enum class NormKind { Rms, Layer };
enum class Activation { Silu, GeluTanh, GeluErf };

std::string_view lm_arch_name(LmArch a);  // "llama", "phi", "openelm", "qwen2", "gemma"
// The config field holding the context length ("max_position_embeddings";
// OpenELM: "max_context_length"), for errors.
std::string_view lm_context_field(LmArch a);

// config.json's rope_scaling, as far as tinyemo runs it.
struct RopeScaling {
  enum class Kind { None, Linear, Llama3 };
  Kind kind = Kind::None;
  double factor = 1.0;
  // llama3: frequencies below low_freq_factor / original context are divided by
  // factor, above high_freq_factor / original context kept, smoothed between.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  double original_max_position = 8192.0;
};

struct LmLayerConfig {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t ffn_dim = 0;  // 0 until read off the weights
};

struct LmConfig {
  LmArch arch = LmArch::Llama;
  std::string architecture;  // the config's class name, e.g. "LlamaForCausalLM"
  std::string where;         // the config file, for errors
  int64_t hidden = 0;
  int64_t vocab = 0;
  int64_t head_dim = 0;
  int64_t max_context = 0;
  std::vector<LmLayerConfig> layers;

  NormKind norm = NormKind::Rms;
  double norm_eps = 1e-6;
  // Every norm of the model scales by (norm_weight_offset + weight): Gemma's
  // RMSNorm stores weight - 1 and multiplies by (1 + weight). Added once, in
  // F32, when the model is bound (as Gemma adds it in F32 per call).
  double norm_weight_offset = 0.0;
  // Every input row (token embedding or inserted row alike) is multiplied by
  // this inside the model, before the first layer: Gemma's sqrt(hidden_size),
  // rounded to F32 as Gemma's normalizer is in an F32 run.
  float embedding_scale = 1.0f;
  Activation activation = Activation::Silu;
  bool gated_mlp = true;        // act(gate) * up (LLaMA, OpenELM) vs act(fc1) (Phi)
  bool parallel_block = false;  // Phi: x + attn(ln(x)) + mlp(ln(x))
  bool qk_norm = false;         // per-head norm of q and k before RoPE
  NormKind qk_norm_kind = NormKind::Rms;
  double qk_norm_eps = 1e-6;
  bool attention_bias = false;  // q/k/v biases
  bool output_proj_bias = false;
  bool mlp_bias = false;
  bool lm_head_bias = false;
  bool tied_output = false;  // lm_head = token embeddings

  // RoPE, rotate-half convention, on the first `rotary_dim` dims of each head.
  double rope_theta = 10000.0;
  int64_t rotary_dim = 0;
  RopeScaling rope_scaling;

  int32_t bos_id = -1;
  std::vector<int32_t> eos_ids;

  int64_t n_layers() const { return static_cast<int64_t>(layers.size()); }
};

// Parses and checks a config.json; errors name the file and the field.
LmConfig parse_lm_config(const JsonObject& config);

// OpenELM's per-layer FFN widths from ffn_multipliers / ffn_dim_divisor (what
// its config computes). Loading reads the widths off the weights instead; this
// serves building models without weight files (random-weight benchmarks).
std::vector<int64_t> openelm_ffn_dims(const JsonObject& config);

}  // namespace tinyemo::lm
