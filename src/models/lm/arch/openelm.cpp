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

namespace tinyemo {

namespace {

using namespace lm_arch::fields;

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

void layout(const LmConfig& c, lm_arch::Layout& out) {
  const int64_t H = c.hidden, V = c.vocab, hd = c.head_dim;
  out.matrix("transformer.token_embeddings.weight", V, H, out.embeddings);
  for (int64_t i = 0; i < c.n_layers(); ++i) {
    LmLayer& L = out.layers[i];
    const std::string p = "transformer.layers." + std::to_string(i) + ".";
    const int64_t nq = L.shape.n_heads, nkv = L.shape.n_kv_heads;
    const int64_t F = L.shape.ffn_dim > 0 ? L.shape.ffn_dim : lm_arch::kAny;
    out.norm(p + "attn_norm", H, false, &L.attn_norm);
    out.linear(p + "attn.qkv_proj", (nq + 2 * nkv) * hd, H, false, &L.qkv);
    if (c.qk_norm) {
      out.norm(p + "attn.q_norm", hd, false, &L.q_norm);
      out.norm(p + "attn.k_norm", hd, false, &L.k_norm);
    }
    out.linear(p + "attn.out_proj", H, nq * hd, false, &L.o);
    out.norm(p + "ffn_norm", H, false, &L.mlp_norm);
    const int64_t up_rows = F == lm_arch::kAny ? lm_arch::kAny : (c.gated_mlp ? 2 * F : F);
    out.linear(p + "ffn.proj_1", up_rows, H, false, c.gated_mlp ? &L.gate_up : &L.up);
    out.linear(p + "ffn.proj_2", H, F, false, &L.down);
  }
  out.norm("transformer.norm", H, false, out.final_norm);
  if (!c.tied_output) out.linear("lm_head", V, H, false, out.lm_head);
}

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

const lm_arch::Architecture lm_arch::kOpenElm = {
    .id = LmArch::OpenElm,
    .hf_class = "OpenELMForCausalLM",
    .name = "openelm",
    .gguf_name = "openelm",
    .context_field = "max_context_length",
    .parse = parse,
    .layout = layout,
    .per_layer_shapes = true,
    .ffn_dims = openelm_ffn_dims,
};

}  // namespace tinyemo
