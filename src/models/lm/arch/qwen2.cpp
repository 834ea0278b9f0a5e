// Qwen2ForCausalLM (transformers' modeling_qwen2.py; TinyLLaVA's Qwen2 LMs):
// LLaMA with biases on q/k/v (always: not a config field) and none on o_proj
// or the MLP, SwiGLU, RMSNorm, rope_theta, tie_word_embeddings (Qwen2Config's
// default false; Qwen2-0.5B ties). Sliding-window attention applies only when
// use_sliding_window is true, and then to the layers layer_types marks
// "sliding_attention" (by default those at index >= max_window_layers);
// tinyemo's attention has no window, so a config where a layer would slide is
// refused by name (released Qwen2 models set use_sliding_window false).
#include <algorithm>

#include "models/lm/arch/arch.h"

namespace tinyemo::lm::arch {

namespace {

// The first layer that would use sliding-window attention, or -1.
int64_t first_sliding_layer(const JsonObject& c, int64_t layers) {
  if (!c.get_or<bool>("use_sliding_window", false)) return -1;
  if (c.has("layer_types")) {
    const auto types = c.get<std::vector<std::string>>("layer_types");
    TE_CHECK(static_cast<int64_t>(types.size()) == layers, "{}: field \"layer_types\" has {} entries for {} layers",
             c.where(), types.size(), layers);
    for (int64_t l = 0; l < layers; ++l) {
      TE_CHECK(types[l] == "full_attention" || types[l] == "sliding_attention",
               "{}: field \"layer_types\" entry \"{}\" is not full_attention or sliding_attention", c.where(),
               types[l]);
    }
    const auto it = std::find(types.begin(), types.end(), "sliding_attention");
    return it == types.end() ? -1 : it - types.begin();
  }
  const int64_t full = c.has("max_window_layers") ? fields::integer(c, "max_window_layers") : 28;  // Qwen2Config's
  return full < layers ? std::max<int64_t>(full, 0) : -1;
}

void parse(const JsonObject& c, LmConfig* cfg) {
  fields::expect_model_type(c, "qwen2");
  fields::hf_decoder(c, cfg);
  cfg->activation = fields::activation(c, "hidden_act");
  cfg->tied_output = c.get_or<bool>("tie_word_embeddings", false);
  cfg->norm = NormKind::Rms;
  cfg->norm_eps = fields::positive_float(c, "rms_norm_eps", 1e-6);
  cfg->gated_mlp = true;
  cfg->attention_bias = true;
  cfg->output_proj_bias = false;
  const int64_t sliding = first_sliding_layer(c, cfg->n_layers());
  TE_CHECK(sliding < 0,
           "{}: field \"use_sliding_window\" is true and layer {} would use sliding-window attention, which tinyemo "
           "does not implement (released Qwen2 models set use_sliding_window false)",
           c.where(), sliding);
}

// llama.cpp's qwen2: LLaMA's names, rotate-half RoPE (no permutation), q/k/v
// biases, the output tied when output.weight is absent.
LlamaCppTensor llamacpp_tensor(const LmConfig&, const std::string& hf) { return {llamacpp::llama_name(hf)}; }

nlohmann::json llamacpp_config(const LlamaCppKeys& k) {
  llamacpp::require_tensor(k, "blk.0.attn_q.bias", "Qwen2 has q/k/v biases");
  nlohmann::json c = llamacpp::decoder_config(k, "Qwen2ForCausalLM", "qwen2");
  c["hidden_act"] = "silu";
  c["rms_norm_eps"] = k.file().get_float(k.key("attention.layer_norm_rms_epsilon"));
  c["use_sliding_window"] = false;
  return c;
}

void llamacpp_check(const LmConfig& c) {
  llamacpp::expect_activation(c, Activation::Silu, "qwen2");
  llamacpp::expect_key_rope_scaling(c, "qwen2");
}

const LlamaCppFormat kLlamaCpp = {.tensor = llamacpp_tensor, .config = llamacpp_config, .check = llamacpp_check};

}  // namespace

const Architecture kQwen2 = {
    .id = LmArch::Qwen2,
    .hf_class = "Qwen2ForCausalLM",
    .name = "qwen2",
    .gguf_name = "qwen2",
    .context_field = "max_position_embeddings",
    .parse = parse,
    .layout = llama_layout,
    .llamacpp = &kLlamaCpp,
};

}  // namespace tinyemo::lm::arch
