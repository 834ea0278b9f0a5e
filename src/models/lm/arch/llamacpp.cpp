// What the families' llama.cpp formats share (declared in arch.h): reading
// llama.cpp's hyper-parameter keys with its defaults (llama-model.cpp's
// load_hparams), the LLaMA-layout tensor names (llama-arch.cpp), and the
// decoder config.json built from them.
#include <algorithm>
#include <cmath>

#include "models/lm/arch/arch.h"

namespace tinyemo::lm::arch {

int64_t LlamaCppKeys::integer(const std::string& name) const {
  const int64_t v = file_.get_int(key(name));
  TE_CHECK(v >= 0, "{}: {} = {} must not be negative", file_.where(), key(name), v);
  return v;
}

int64_t LlamaCppKeys::integer(const std::string& name, int64_t fallback) const {
  return has(name) ? integer(name) : fallback;
}

double LlamaCppKeys::number(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  const double v = file_.get_float(key(name));
  TE_CHECK(std::isfinite(v), "{}: {} is not a finite number", file_.where(), key(name));
  return v;
}

std::vector<int64_t> LlamaCppKeys::per_layer(const std::string& name, int64_t n_layers) const {
  TE_CHECK(has(name), "{}: missing metadata \"{}\"", file_.where(), key(name));
  return per_layer(name, n_layers, {});
}

std::vector<int64_t> LlamaCppKeys::per_layer(const std::string& name, int64_t n_layers,
                                             const std::vector<int64_t>& fallback) const {
  if (!has(name)) return fallback;
  if (file_.value(key(name)).type != GgufType::Array)
    return std::vector<int64_t>(static_cast<size_t>(n_layers), integer(name));
  std::vector<int64_t> v = file_.get_int_array(key(name));
  TE_CHECK(static_cast<int64_t>(v.size()) == n_layers, "{}: {} has {} entries for {} layers", file_.where(),
           key(name), v.size(), n_layers);
  for (int64_t x : v) TE_CHECK(x >= 0, "{}: {} holds a negative value", file_.where(), key(name));
  return v;
}

Shape LlamaCppKeys::shape(const std::string& tensor) const {
  return file_.contains(tensor) ? file_.info(tensor).shape : Shape{};
}

namespace llamacpp {

std::string llama_name(const std::string& hf) {
  static const std::pair<const char*, const char*> kGlobal[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  for (const auto& [from, to] : kGlobal)
    if (hf == from) return to;
  static const std::pair<const char*, const char*> kLayer[] = {
      {"input_layernorm.", "attn_norm."},   {"self_attn.q_proj.", "attn_q."},  {"self_attn.k_proj.", "attn_k."},
      {"self_attn.v_proj.", "attn_v."},     {"self_attn.o_proj.", "attn_output."},
      {"post_attention_layernorm.", "ffn_norm."}, {"mlp.gate_proj.", "ffn_gate."}, {"mlp.up_proj.", "ffn_up."},
      {"mlp.down_proj.", "ffn_down."},
  };
  const std::string prefix = "model.layers.";
  if (hf.starts_with(prefix)) {
    const size_t dot = hf.find('.', prefix.size());
    if (dot != std::string::npos) {
      const std::string layer = hf.substr(prefix.size(), dot - prefix.size());
      const std::string rest = hf.substr(dot + 1);
      for (const auto& [from, to] : kLayer)
        if (rest.starts_with(from)) return "blk." + layer + "." + to + rest.substr(std::string(from).size());
    }
  }
  fail("GGUF: the checkpoint tensor \"{}\" has no llama.cpp name", hf);
}

int64_t layer_of(const std::string& hf, std::string_view prefix) {
  if (!hf.starts_with(prefix)) return -1;
  int64_t i = 0;
  size_t pos = prefix.size();
  if (pos >= hf.size() || hf[pos] < '0' || hf[pos] > '9') return -1;
  for (; pos < hf.size() && hf[pos] >= '0' && hf[pos] <= '9'; ++pos) i = 10 * i + (hf[pos] - '0');
  return pos < hf.size() && hf[pos] == '.' ? i : -1;
}

void require_tensor(const LlamaCppKeys& k, const std::string& tensor, std::string_view meaning) {
  TE_CHECK(k.file().contains(tensor), "{}: no tensor \"{}\" ({})", k.file().where(), tensor, meaning);
}

nlohmann::json decoder_config(const LlamaCppKeys& k, std::string_view hf_class, std::string_view model_type,
                              bool full_rotary) {
  const GgufFile& f = k.file();
  nlohmann::json c;
  c["architectures"] = {std::string(hf_class)};
  c["model_type"] = std::string(model_type);
  const int64_t layers = k.integer("block_count");
  const int64_t hidden = k.integer("embedding_length");
  c["hidden_size"] = hidden;
  c["num_hidden_layers"] = layers;
  auto uniform = [&](const std::string& name, const std::vector<int64_t>& v) {
    for (int64_t x : v)
      TE_CHECK(x == v.front(), "{}: {} differs between layers, which {} does not support", f.where(), k.key(name),
               hf_class);
    return v.empty() ? int64_t{0} : v.front();
  };
  const int64_t heads = uniform("attention.head_count", k.per_layer("attention.head_count", layers));
  TE_CHECK(heads > 0, "{}: {} must be positive", f.where(), k.key("attention.head_count"));
  c["num_attention_heads"] = heads;
  c["num_key_value_heads"] =
      uniform("attention.head_count_kv", k.per_layer("attention.head_count_kv", layers, {heads}));
  // llama.cpp: head sizes default to n_embd / n_head, value size must equal key size here.
  const int64_t head_dim = k.integer("attention.key_length", heads > 0 ? hidden / heads : 0);
  TE_CHECK(k.integer("attention.value_length", head_dim) == head_dim, "{}: {} differs from {}, which {} does not support",
           f.where(), k.key("attention.value_length"), k.key("attention.key_length"), hf_class);
  c["head_dim"] = head_dim;
  const Shape up = k.shape("blk.0.ffn_up.weight");
  c["intermediate_size"] = uniform("feed_forward_length",
                                   k.per_layer("feed_forward_length", layers, {up.size() == 2 ? up[0] : 0}));
  const Shape embd = k.shape("token_embd.weight");
  TE_CHECK(embd.size() == 2, "{}: no tensor \"token_embd.weight\" of two dimensions", f.where());
  c["vocab_size"] = embd[0];
  c["max_position_embeddings"] = k.integer("context_length");
  c["rope_theta"] = k.number("rope.freq_base", 10000.0);
  const int64_t n_rot = k.integer("rope.dimension_count", head_dim);
  if (full_rotary) {
    TE_CHECK(n_rot == head_dim, "{}: {} = {} differs from the head size {}, which {} does not support", f.where(),
             k.key("rope.dimension_count"), n_rot, head_dim, hf_class);
  } else {
    TE_CHECK(n_rot > 0 && n_rot <= head_dim && head_dim > 0, "{}: {} = {} is not in (0, head size {}]", f.where(),
             k.key("rope.dimension_count"), n_rot, head_dim);
    // int(head_dim * factor) must give n_rot back (as the config reader truncates).
    double factor = static_cast<double>(n_rot) / static_cast<double>(head_dim);
    while (static_cast<int64_t>(static_cast<double>(head_dim) * factor) < n_rot) factor = std::nextafter(factor, 2.0);
    c["partial_rotary_factor"] = factor;
  }
  // RoPE scaling (llama.cpp: type "linear" by default, factor 0 = none; the old scale_linear key).
  const std::string type = f.has(k.key("rope.scaling.type")) ? f.get_string(k.key("rope.scaling.type")) : "linear";
  const double factor = k.has("rope.scaling.factor") ? k.number("rope.scaling.factor", 0.0)
                                                      : k.number("rope.scale_linear", 0.0);
  if (type != "none" && factor != 0.0 && factor != 1.0) {
    TE_CHECK(type == "linear", "{}: {} \"{}\" is not supported (linear, none)", f.where(), k.key("rope.scaling.type"),
             type);
    TE_CHECK(factor > 0.0, "{}: {} = {} must be positive", f.where(), k.key("rope.scaling.factor"), factor);
    c["rope_scaling"] = {{"type", "linear"}, {"factor", factor}};
  }
  TE_CHECK(!f.contains("rope_freqs.weight"),
           "{}: tensor \"rope_freqs.weight\" (per-frequency RoPE factors, e.g. LLaMA-3's rope scaling) is not "
           "supported",
           f.where());
  c["tie_word_embeddings"] = !f.contains("output.weight");
  if (f.has("tokenizer.ggml.bos_token_id")) c["bos_token_id"] = f.get_int("tokenizer.ggml.bos_token_id");
  nlohmann::json eos = nlohmann::json::array();
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (!f.has(key)) continue;
    const int64_t id = f.get_int(key);
    if (std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);
  }
  if (!eos.empty()) c["eos_token_id"] = eos.size() == 1 ? eos[0] : eos;
  return c;
}

void expect_activation(const LmConfig& c, Activation want, std::string_view arch) {
  auto name = [](Activation a) {
    return a == Activation::Silu ? "silu" : a == Activation::GeluTanh ? "gelu (tanh approximation)" : "gelu (erf)";
  };
  TE_CHECK(c.activation == want, "{}: the MLP activation is {}, but llama.cpp's {} uses {}", c.where,
           name(c.activation), arch, name(want));
}

void expect_key_rope_scaling(const LmConfig& c, std::string_view arch) {
  TE_CHECK(c.rope_scaling.kind != RopeScaling::Kind::Llama3,
           "{}: llama3 rope_scaling is not written in llama.cpp's layout (it needs per-frequency factors); use "
           "--layout tinyemo",
           c.where);
  (void)arch;
}

}  // namespace llamacpp

}  // namespace tinyemo::lm::arch
