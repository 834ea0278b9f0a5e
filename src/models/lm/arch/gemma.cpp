// GemmaForCausalLM (Gemma 1; transformers' modeling_gemma.py; TinyLLaVA's
// Gemma LMs): LLaMA's layout and block with
// - every input row (token embedding or inserted row alike) multiplied by
//   sqrt(hidden_size) inside the model (LmConfig::embedding_scale; transformers
//   rounds this normalizer to the hidden dtype: F32 here, as tinyemo computes
//   in F32 whatever the weight dtype);
// - RMSNorm scaling by (1 + weight) (LmConfig::norm_weight_offset);
// - GeGLU: gelu(gate) * up with the activation transformers 4.39-4.47 (the
//   versions TinyLLaVA's Gemma models were made with) picks: hidden_activation,
//   or gelu_pytorch_tanh when it is absent or null, hidden_act ignored (Gemma's
//   original configs say "gelu" there; the model was trained with the tanh
//   approximation). transformers >= 4.48 reads hidden_act instead; configs
//   where the two disagree run differently there;
// - an explicit head_dim, required: GemmaConfig would default it to 256 and
//   it is not hidden / heads (Gemma-7B: 3072 / 16 = 192, head_dim 256);
// - q/k/v/o biases when attention_bias; output tied unless
//   tie_word_embeddings is false (GemmaConfig's default is true).
#include <cmath>

#include "models/lm/arch/arch.h"

namespace tinyemo::lm_arch {

namespace {

void parse(const JsonObject& c, LmConfig* cfg) {
  fields::expect_model_type(c, "gemma");
  TE_CHECK(c.has("head_dim"),
           "{}: missing field \"head_dim\" (Gemma's head width is explicit, not hidden_size / num_attention_heads)",
           c.where());
  fields::hf_decoder(c, cfg);
  cfg->activation = c.has("hidden_activation") ? fields::activation(c, "hidden_activation") : Activation::GeluTanh;
  cfg->tied_output = c.get_or<bool>("tie_word_embeddings", true);
  cfg->norm = NormKind::Rms;
  cfg->norm_eps = fields::positive_float(c, "rms_norm_eps", 1e-6);
  cfg->norm_weight_offset = 1.0;
  cfg->embedding_scale = static_cast<float>(std::sqrt(static_cast<double>(cfg->hidden)));
  cfg->gated_mlp = true;
  cfg->attention_bias = cfg->output_proj_bias = c.get_or<bool>("attention_bias", false);
}

}  // namespace

const Architecture kGemma = {
    .id = LmArch::Gemma,
    .hf_class = "GemmaForCausalLM",
    .name = "gemma",
    .gguf_name = "gemma",
    .context_field = "max_position_embeddings",
    .parse = parse,
    .layout = llama_layout,
};

}  // namespace tinyemo::lm_arch
