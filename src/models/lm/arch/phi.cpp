// PhiForCausalLM (Phi-2, transformers' layout, model_type "phi"): one
// LayerNorm feeds attention and MLP in parallel, x + dense(attn) +
// fc2(gelu_new(fc1)); biases everywhere including lm_head (tied: the weight
// only); partial rotary on the first int(head_dim * partial_rotary_factor)
// dims; optional q/k LayerNorm per head before RoPE. The older phi-msft layout
// (Wqkv, mixer) is refused.
#include "models/lm/arch/arch.h"

namespace tinyemo::lm::arch {

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

// llama.cpp's phi2: rotate-half partial RoPE (rope.dimension_count), one
// LayerNorm, biases everywhere, output.weight always present (tied or not),
// the tanh GELU; no q/k LayerNorm.
LlamaCppTensor llamacpp_tensor(const LmConfig&, const std::string& hf) {
  static const std::pair<const char*, const char*> kGlobal[] = {{"model.embed_tokens.", "token_embd."},
                                                                {"model.final_layernorm.", "output_norm."},
                                                                {"lm_head.", "output."}};
  for (const auto& [from, to] : kGlobal)
    if (hf.starts_with(from)) return {to + hf.substr(std::string(from).size())};
  static const std::pair<const char*, const char*> kLayer[] = {
      {"input_layernorm.", "attn_norm."}, {"self_attn.q_proj.", "attn_q."}, {"self_attn.k_proj.", "attn_k."},
      {"self_attn.v_proj.", "attn_v."},   {"self_attn.dense.", "attn_output."}, {"mlp.fc1.", "ffn_up."},
      {"mlp.fc2.", "ffn_down."}};
  const int64_t layer = llamacpp::layer_of(hf, "model.layers.");
  if (layer >= 0) {
    const std::string rest = hf.substr(hf.find('.', 13) + 1);
    for (const auto& [from, to] : kLayer)
      if (rest.starts_with(from)) return {"blk." + std::to_string(layer) + "." + to + rest.substr(std::string(from).size())};
  }
  fail("GGUF: the checkpoint tensor \"{}\" has no llama.cpp name", hf);
}

nlohmann::json llamacpp_config(const LlamaCppKeys& k) {
  llamacpp::require_tensor(k, "output.weight", "phi2 always has an output matrix");
  nlohmann::json c = llamacpp::decoder_config(k, "PhiForCausalLM", "phi", /*full_rotary=*/false);
  c["hidden_act"] = "gelu_new";
  c["layer_norm_eps"] = k.file().get_float(k.key("attention.layer_norm_epsilon"));
  c["qk_layernorm"] = false;
  return c;
}

void llamacpp_check(const LmConfig& c) {
  TE_CHECK(!c.qk_norm, "{}: qk_layernorm is true, which llama.cpp's phi2 does not have (use --layout tinyemo)",
           c.where);
  llamacpp::expect_activation(c, Activation::GeluTanh, "phi2");
  llamacpp::expect_key_rope_scaling(c, "phi2");
}

const LlamaCppFormat kLlamaCpp = {
    .tensor = llamacpp_tensor, .config = llamacpp_config, .check = llamacpp_check, .output_when_tied = true};

}  // namespace

const Architecture kPhi = {
    .id = LmArch::Phi,
    .hf_class = "PhiForCausalLM",
    .name = "phi",
    .gguf_name = "phi2",
    .context_field = "max_position_embeddings",
    .parse = parse,
    .layout = layout,
    .llamacpp = &kLlamaCpp,
};

}  // namespace tinyemo::lm::arch
