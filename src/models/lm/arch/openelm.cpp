// OpenELMForCausalLM (Apple's modeling_openelm.py): per-layer
// num_query_heads / num_kv_heads (derived from qkv_multipliers with OpenELM's
// make_divisible when the lists are absent), fused qkv_proj with rows
// [q heads | k heads | v heads], RMSNorm of q and k per head (eps 1e-6, fixed),
// proj_1 split in halves act(first) * second (or a plain MLP without GLU), each
// layer's FFN width read off the weights, rope_freq_constant, output tied when
// share_input_output_layers, context max_context_length.
#include <algorithm>
#include <cmath>

#include "models/lm/arch/arch.h"

namespace tinyemo::lm {

namespace {

using namespace arch::fields;

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

void parse(const JsonObject& c, LmConfig* cfg) {
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
  cfg->activation = activation(c, "activation_fn_name");
  cfg->gated_mlp = c.get_or<bool>("ffn_with_glu", true);
  cfg->qk_norm = c.get_or<bool>("normalize_qk_projections", false);
  cfg->qk_norm_kind = NormKind::Rms;
  cfg->qk_norm_eps = 1e-6;
  cfg->tied_output = c.get_or<bool>("share_input_output_layers", false);
  cfg->rope_theta = positive_float(c, "rope_freq_constant", 10000.0);
  cfg->rotary_dim = cfg->head_dim;
}

void layout(const LmConfig& c, arch::Layout& out) {
  const int64_t H = c.hidden, V = c.vocab, hd = c.head_dim;
  out.matrix("transformer.token_embeddings.weight", V, H, out.embeddings);
  for (int64_t i = 0; i < c.n_layers(); ++i) {
    LmLayer& L = out.layers[i];
    const std::string p = "transformer.layers." + std::to_string(i) + ".";
    const int64_t nq = L.shape.n_heads, nkv = L.shape.n_kv_heads;
    const int64_t F = L.shape.ffn_dim > 0 ? L.shape.ffn_dim : arch::kAny;
    out.norm(p + "attn_norm", H, false, &L.attn_norm);
    out.linear(p + "attn.qkv_proj", (nq + 2 * nkv) * hd, H, false, &L.qkv);
    if (c.qk_norm) {
      out.norm(p + "attn.q_norm", hd, false, &L.q_norm);
      out.norm(p + "attn.k_norm", hd, false, &L.k_norm);
    }
    out.linear(p + "attn.out_proj", H, nq * hd, false, &L.o);
    out.norm(p + "ffn_norm", H, false, &L.mlp_norm);
    const int64_t up_rows = F == arch::kAny ? arch::kAny : (c.gated_mlp ? 2 * F : F);
    out.linear(p + "ffn.proj_1", up_rows, H, false, c.gated_mlp ? &L.gate_up : &L.up);
    out.linear(p + "ffn.proj_2", H, F, false, &L.down);
  }
  out.norm("transformer.norm", H, false, out.final_norm);
  if (!c.tied_output) out.linear("lm_head", V, H, false, out.lm_head);
}

// llama.cpp's openelm: per-layer head counts and FFN widths as arrays, the
// fused qkv kept, q/k RMSNorm required, proj_1 split into ffn_gate / ffn_up
// (OpenELMModel.modify_tensors), SiLU, the output always the token embeddings.
arch::LlamaCppTensor llamacpp_tensor(const LmConfig&, const std::string& hf) {
  using arch::LlamaCppTensor;
  static const std::pair<const char*, const char*> kGlobal[] = {{"transformer.token_embeddings.", "token_embd."},
                                                                {"transformer.norm.", "output_norm."}};
  for (const auto& [from, to] : kGlobal)
    if (hf.starts_with(from)) return {to + hf.substr(std::string(from).size())};
  const int64_t layer = arch::llamacpp::layer_of(hf, "transformer.layers.");
  if (layer >= 0) {
    const std::string blk = "blk." + std::to_string(layer) + ".";
    const std::string rest = hf.substr(hf.find('.', 19) + 1);
    if (rest == "ffn.proj_1.weight")
      return {blk + "ffn_gate.weight", LlamaCppTensor::Op::kSplitRows, 0, blk + "ffn_up.weight"};
    static const std::pair<const char*, const char*> kLayer[] = {
        {"attn_norm.", "attn_norm."}, {"attn.qkv_proj.", "attn_qkv."}, {"attn.q_norm.", "attn_q_norm."},
        {"attn.k_norm.", "attn_k_norm."}, {"attn.out_proj.", "attn_output."}, {"ffn_norm.", "ffn_norm."},
        {"ffn.proj_2.", "ffn_down."}};
    for (const auto& [from, to] : kLayer)
      if (rest.starts_with(from)) return {blk + to + rest.substr(std::string(from).size())};
  }
  fail("GGUF: the checkpoint tensor \"{}\" has no llama.cpp name", hf);
}

nlohmann::json llamacpp_config(const arch::LlamaCppKeys& k) {
  const GgufFile& f = k.file();
  arch::llamacpp::require_tensor(k, "blk.0.attn_q_norm.weight", "llama.cpp's openelm normalizes q and k");
  const int64_t layers = k.integer("block_count");
  const int64_t hidden = k.integer("embedding_length");
  const auto q_heads = k.per_layer("attention.head_count", layers);
  const auto kv_heads = k.per_layer("attention.head_count_kv", layers, q_heads);
  TE_CHECK(!q_heads.empty() && q_heads[0] > 0, "{}: {} must be positive", f.where(), k.key("attention.head_count"));
  const int64_t head_dim = k.integer("attention.key_length", hidden / q_heads[0]);
  TE_CHECK(k.integer("attention.value_length", head_dim) == head_dim && k.integer("rope.dimension_count", head_dim) == head_dim,
           "{}: {} and {} must equal {} for OpenELM", f.where(), k.key("attention.value_length"),
           k.key("rope.dimension_count"), k.key("attention.key_length"));
  const double eps = f.get_float(k.key("attention.layer_norm_rms_epsilon"));
  TE_CHECK(std::fabs(eps - 1e-6) <= 1e-12, "{}: {} = {} (OpenELM's RMSNorm epsilon is fixed at 1e-6)", f.where(),
           k.key("attention.layer_norm_rms_epsilon"), eps);
  const Shape embd = k.shape("token_embd.weight");
  TE_CHECK(embd.size() == 2, "{}: no tensor \"token_embd.weight\" of two dimensions", f.where());
  TE_CHECK(!f.contains("output.weight"), "{}: tensor \"output.weight\": llama.cpp's openelm always ties the output",
           f.where());
  nlohmann::json c;
  c["architectures"] = {"OpenELMForCausalLM"};
  c["model_type"] = "openelm";
  c["model_dim"] = hidden;
  c["head_dim"] = head_dim;
  c["num_transformer_layers"] = layers;
  c["num_query_heads"] = q_heads;
  c["num_kv_heads"] = kv_heads;
  c["vocab_size"] = embd[0];
  c["max_context_length"] = k.integer("context_length");
  c["rope_freq_constant"] = k.number("rope.freq_base", 10000.0);
  c["activation_fn_name"] = "swish";
  c["ffn_with_glu"] = true;
  c["normalize_qk_projections"] = true;
  c["normalization_layer_name"] = "rms_norm";
  c["share_input_output_layers"] = true;
  if (f.has("tokenizer.ggml.bos_token_id")) c["bos_token_id"] = f.get_int("tokenizer.ggml.bos_token_id");
  if (f.has("tokenizer.ggml.eos_token_id")) c["eos_token_id"] = f.get_int("tokenizer.ggml.eos_token_id");
  return c;
}

void llamacpp_check(const LmConfig& c) {
  TE_CHECK(c.tied_output, "{}: share_input_output_layers is false, but llama.cpp's openelm always ties the output "
                          "(use --layout tinyemo)",
           c.where);
  TE_CHECK(c.gated_mlp, "{}: ffn_with_glu is false, but llama.cpp's openelm has a gated MLP (use --layout tinyemo)",
           c.where);
  TE_CHECK(c.qk_norm, "{}: normalize_qk_projections is false, but llama.cpp's openelm normalizes q and k (use "
                      "--layout tinyemo)",
           c.where);
  arch::llamacpp::expect_activation(c, Activation::Silu, "openelm");
  arch::llamacpp::expect_key_rope_scaling(c, "openelm");
}

const arch::LlamaCppFormat kLlamaCpp = {
    .tensor = llamacpp_tensor, .config = llamacpp_config, .check = llamacpp_check};

}  // namespace

std::vector<int64_t> openelm_ffn_dims(const JsonObject& c) {
  const int64_t layers = positive(c, "num_transformer_layers", kMaxLayers);
  const int64_t dim = positive(c, "model_dim");
  const int64_t divisor = positive(c, "ffn_dim_divisor");
  std::vector<int64_t> out;
  for (double m : per_layer_multipliers(c, "ffn_multipliers", layers))
    out.push_back(make_divisible(m * static_cast<double>(dim), divisor));
  return out;
}

const arch::Architecture arch::kOpenElm = {
    .id = LmArch::OpenElm,
    .hf_class = "OpenELMForCausalLM",
    .name = "openelm",
    .gguf_name = "openelm",
    .context_field = "max_context_length",
    .parse = parse,
    .layout = layout,
    .per_layer_shapes = true,
    .ffn_dims = openelm_ffn_dims,
    .llamacpp = &kLlamaCpp,
};

}  // namespace tinyemo::lm
