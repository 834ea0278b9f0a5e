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

namespace tinyemo::lm::arch {

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

// llama.cpp's gemma: LLaMA's names, rotate-half RoPE, norm weights stored with
// the 1 added (GemmaModel.modify_tensors), the output always the token
// embeddings, no output-projection bias, the tanh GELU.
LlamaCppTensor llamacpp_tensor(const LmConfig&, const std::string& hf) {
  LlamaCppTensor t{llamacpp::llama_name(hf)};
  if (hf.ends_with("norm.weight")) t.op = LlamaCppTensor::Op::kAddOne;
  return t;
}

nlohmann::json llamacpp_config(const LlamaCppKeys& k) {
  TE_CHECK(!k.file().contains("blk.0.attn_q.bias"),
           "{}: q/k/v biases without an output-projection bias: tinyemo's Gemma has all four or none",
           k.file().where());
  nlohmann::json c = llamacpp::decoder_config(k, "GemmaForCausalLM", "gemma");
  c["hidden_activation"] = "gelu_pytorch_tanh";
  c["rms_norm_eps"] = k.file().get_float(k.key("attention.layer_norm_rms_epsilon"));
  c["attention_bias"] = false;
  return c;
}

void llamacpp_check(const LmConfig& c) {
  TE_CHECK(c.tied_output, "{}: tie_word_embeddings is false, but llama.cpp's gemma always uses the token embeddings "
                          "as the output (use --layout tinyemo)",
           c.where);
  TE_CHECK(!c.output_proj_bias, "{}: attention_bias is true, but llama.cpp's gemma has no output-projection bias "
                                "(use --layout tinyemo)",
           c.where);
  llamacpp::expect_activation(c, Activation::GeluTanh, "gemma");
  llamacpp::expect_key_rope_scaling(c, "gemma");
}

const LlamaCppFormat kLlamaCpp = {.tensor = llamacpp_tensor, .config = llamacpp_config, .check = llamacpp_check};

}  // namespace

const Architecture kGemma = {
    .id = LmArch::Gemma,
    .hf_class = "GemmaForCausalLM",
    .name = "gemma",
    .gguf_name = "gemma",
    .context_field = "max_position_embeddings",
    .parse = parse,
    .layout = llama_layout,
    .llamacpp = &kLlamaCpp,
};

}  // namespace tinyemo::lm::arch
