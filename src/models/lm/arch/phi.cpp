// PhiForCausalLM (Phi-2, transformers' layout, model_type "phi"): one
// LayerNorm feeds attention and MLP in parallel, x + dense(attn) +
// fc2(gelu_new(fc1)); biases everywhere including lm_head (tied: the weight
// only); partial rotary on the first int(head_dim * partial_rotary_factor)
// dims; optional q/k LayerNorm per head before RoPE. The older phi-msft layout
// (Wqkv, mixer) is refused.
#include "models/lm/arch/arch.h"

namespace tinyemo::lm_arch {

namespace {

void parse(const JsonObject& c, LmConfig* cfg) {
  const auto model_type = c.get_or<std::string>("model_type", "phi");
  TE_CHECK(model_type == "phi",
           "{}: model_type \"{}\" is the pre-transformers Phi layout (Wqkv, mixer); only model_type \"phi\" "
           "(transformers' PhiForCausalLM) is supported",
           c.where(), model_type);
  fields::hf_decoder(c, cfg);
  cfg->activation = fields::activation(c, "hidden_act");
  cfg->tied_output = c.get_or<bool>("tie_word_embeddings", false);
  cfg->norm = NormKind::Layer;
  cfg->norm_eps = fields::positive_float(c, "layer_norm_eps", 1e-5);
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

void layout(const LmConfig& c, Layout& out) {
  const int64_t H = c.hidden, V = c.vocab, hd = c.head_dim;
  out.matrix("model.embed_tokens.weight", V, H, out.embeddings);
  for (int64_t i = 0; i < c.n_layers(); ++i) {
    LmLayer& L = out.layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const int64_t nq = L.shape.n_heads, nkv = L.shape.n_kv_heads, F = L.shape.ffn_dim;
    out.norm(p + "input_layernorm", H, true, &L.attn_norm);
    out.linear(p + "self_attn.q_proj", nq * hd, H, c.attention_bias, &L.q);
    out.linear(p + "self_attn.k_proj", nkv * hd, H, c.attention_bias, &L.k);
    out.linear(p + "self_attn.v_proj", nkv * hd, H, c.attention_bias, &L.v);
    if (c.qk_norm) {
      out.norm(p + "self_attn.q_layernorm", hd, true, &L.q_norm);
      out.norm(p + "self_attn.k_layernorm", hd, true, &L.k_norm);
    }
    out.linear(p + "self_attn.dense", H, nq * hd, c.output_proj_bias, &L.o);
    out.linear(p + "mlp.fc1", F, H, c.mlp_bias, &L.up);  // not gated: act(fc1)
    out.linear(p + "mlp.fc2", H, F, c.mlp_bias, &L.down);
  }
  out.norm("model.final_layernorm", H, true, out.final_norm);
  if (!c.tied_output) {
    out.linear("lm_head", V, H, c.lm_head_bias, out.lm_head);
  } else if (c.lm_head_bias) {
    out.vector("lm_head.bias", V, &out.lm_head->bias);  // tying shares the weight only
  }
}

}  // namespace

const Architecture kPhi = {
    .id = LmArch::Phi,
    .hf_class = "PhiForCausalLM",
    .name = "phi",
    .gguf_name = "phi2",
    .context_field = "max_position_embeddings",
    .parse = parse,
    .layout = layout,
};

}  // namespace tinyemo::lm_arch
