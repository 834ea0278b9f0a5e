// LlamaForCausalLM (TinyLlama, LLaMA 2/3): pre-norm RMSNorm decoder, q/k/v/o
// projections with biases when attention_bias, SwiGLU MLP
// down(silu(gate(x)) * up(x)) with biases when mlp_bias, RoPE over the whole
// head, tie_word_embeddings (default false). Its tensor layout is shared by
// Qwen2 and Gemma.
#include "models/lm/arch/arch.h"

namespace tinyemo::lm::arch {

namespace {

void parse(const JsonObject& c, LmConfig* cfg) {
  fields::hf_decoder(c, cfg);
  cfg->activation = fields::activation(c, "hidden_act");
  cfg->tied_output = c.get_or<bool>("tie_word_embeddings", false);
  cfg->norm = NormKind::Rms;
  cfg->norm_eps = fields::positive_float(c, "rms_norm_eps", 1e-6);
  cfg->gated_mlp = true;
  cfg->attention_bias = c.get_or<bool>("attention_bias", false);
  cfg->output_proj_bias = cfg->attention_bias;
  cfg->mlp_bias = c.get_or<bool>("mlp_bias", false);
}

}  // namespace

void llama_layout(const LmConfig& c, Layout& out) {
  const int64_t H = c.hidden, V = c.vocab, hd = c.head_dim;
  const bool norm_bias = c.norm == NormKind::Layer;  // LayerNorm has one, RMSNorm none
  out.matrix("model.embed_tokens.weight", V, H, out.embeddings);
  for (int64_t i = 0; i < c.n_layers(); ++i) {
    LmLayer& L = out.layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const int64_t nq = L.shape.n_heads, nkv = L.shape.n_kv_heads, F = L.shape.ffn_dim;
    out.norm(p + "input_layernorm", H, norm_bias, &L.attn_norm);
    out.linear(p + "self_attn.q_proj", nq * hd, H, c.attention_bias, &L.q);
    out.linear(p + "self_attn.k_proj", nkv * hd, H, c.attention_bias, &L.k);
    out.linear(p + "self_attn.v_proj", nkv * hd, H, c.attention_bias, &L.v);
    out.linear(p + "self_attn.o_proj", H, nq * hd, c.output_proj_bias, &L.o);
    out.norm(p + "post_attention_layernorm", H, norm_bias, &L.mlp_norm);
    out.linear(p + "mlp.gate_proj", F, H, c.mlp_bias, &L.gate);
    out.linear(p + "mlp.up_proj", F, H, c.mlp_bias, &L.up);
    out.linear(p + "mlp.down_proj", H, F, c.mlp_bias, &L.down);
  }
  out.norm("model.norm", H, norm_bias, out.final_norm);
  if (!c.tied_output) out.linear("lm_head", V, H, c.lm_head_bias, out.lm_head);
}

namespace {

// llama.cpp's llama: RoPE on adjacent pairs, so the converter permutes q and k
// rows (LlamaModel.permute); biases optional per projection; SwiGLU.
LlamaCppTensor llamacpp_tensor(const LmConfig& c, const std::string& hf) {
  LlamaCppTensor t{llamacpp::llama_name(hf)};
  const int64_t layer = llamacpp::layer_of(hf, "model.layers.");
  if (layer >= 0 && (hf.find(".self_attn.q_proj.") != std::string::npos ||
                     hf.find(".self_attn.k_proj.") != std::string::npos)) {
    const LmLayerConfig& L = c.layers.at(static_cast<size_t>(layer));
    t.op = LlamaCppTensor::Op::kRopeRows;
    t.heads = hf.find(".q_proj.") != std::string::npos ? L.n_heads : L.n_kv_heads;
  }
  return t;
}

nlohmann::json llamacpp_config(const LlamaCppKeys& k) {
  nlohmann::json c = llamacpp::decoder_config(k, "LlamaForCausalLM", "llama");
  c["hidden_act"] = "silu";
  c["rms_norm_eps"] = k.file().get_float(k.key("attention.layer_norm_rms_epsilon"));
  c["attention_bias"] = k.file().contains("blk.0.attn_q.bias");
  c["mlp_bias"] = k.file().contains("blk.0.ffn_up.bias");
  return c;
}

void llamacpp_check(const LmConfig& c) {
  llamacpp::expect_activation(c, Activation::Silu, "llama");
  llamacpp::expect_key_rope_scaling(c, "llama");
}

const LlamaCppFormat kLlamaCpp = {.tensor = llamacpp_tensor, .config = llamacpp_config, .check = llamacpp_check};

}  // namespace

const Architecture kLlama = {
    .id = LmArch::Llama,
    .hf_class = "LlamaForCausalLM",
    .name = "llama",
    .gguf_name = "llama",
    .context_field = "max_position_embeddings",
    .parse = parse,
    .layout = llama_layout,
    .llamacpp = &kLlamaCpp,
};

}  // namespace tinyemo::lm::arch
