#include "models/lm/model.h"

#include "core/finite.h"
#include "core/matmul.h"

#include "core/thread_pool.h"
#include "io/json.h"
#include "models/lm/gguf_model.h"

namespace tinyemo {

namespace {

constexpr int64_t kAny = -1;  // a dimension read off the weights

// One tensor the architecture expects: its checkpoint name, expected shape
// (kAny where the weights decide), where it goes, and whether it is a matrix
// (kept in its stored / requested dtype) or a vector (held as F32).
struct Slot {
  std::string name;
  Shape shape;
  Tensor* target;
  bool matrix;
};

bool shape_matches(const Shape& want, const Shape& got) {
  if (want.size() != got.size()) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] != kAny && want[i] != got[i]) return false;
  }
  return true;
}

std::string shape_pattern(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + (s[i] == kAny ? std::string("*") : std::to_string(s[i]));
  return out + "]";
}

// The tensors each architecture's checkpoint holds (Hugging Face names).
std::vector<Slot> layout(const LmConfig& c, std::vector<LmLayer>& layers, Tensor* embeddings, LmNorm* final_norm,
                         LmLinear* lm_head) {
  const int64_t H = c.hidden, V = c.vocab, hd = c.head_dim;
  std::vector<Slot> s;
  auto matrix = [&](std::string name, int64_t out, int64_t in, Tensor* t) {
    s.push_back({std::move(name), {out, in}, t, true});
  };
  auto vector = [&](std::string name, int64_t n, Tensor* t) { s.push_back({std::move(name), {n}, t, false}); };
  auto linear = [&](const std::string& name, int64_t out, int64_t in, bool bias, LmLinear* l) {
    matrix(name + ".weight", out, in, &l->weight);
    if (bias) vector(name + ".bias", out, &l->bias);
  };
  auto norm = [&](const std::string& name, int64_t n, bool bias, LmNorm* l) {
    vector(name + ".weight", n, &l->weight);
    if (bias) vector(name + ".bias", n, &l->bias);
  };
  const bool layer_norm = c.norm == NormKind::Layer;
  const bool qk_layer_norm = c.qk_norm_kind == NormKind::Layer;

  switch (c.arch) {
    case LmArch::Llama:
    case LmArch::Phi: {
      const bool phi = c.arch == LmArch::Phi;
      matrix("model.embed_tokens.weight", V, H, embeddings);
      for (int64_t i = 0; i < c.n_layers(); ++i) {
        LmLayer& L = layers[i];
        const std::string p = "model.layers." + std::to_string(i) + ".";
        const int64_t nq = L.shape.n_heads, nkv = L.shape.n_kv_heads, F = L.shape.ffn_dim;
        norm(p + "input_layernorm", H, layer_norm, &L.attn_norm);
        linear(p + "self_attn.q_proj", nq * hd, H, c.attention_bias, &L.q);
        linear(p + "self_attn.k_proj", nkv * hd, H, c.attention_bias, &L.k);
        linear(p + "self_attn.v_proj", nkv * hd, H, c.attention_bias, &L.v);
        if (c.qk_norm) {
          norm(p + (phi ? "self_attn.q_layernorm" : "self_attn.q_norm"), hd, qk_layer_norm, &L.q_norm);
          norm(p + (phi ? "self_attn.k_layernorm" : "self_attn.k_norm"), hd, qk_layer_norm, &L.k_norm);
        }
        linear(p + (phi ? "self_attn.dense" : "self_attn.o_proj"), H, nq * hd, c.output_proj_bias, &L.o);
        if (phi) {
          linear(p + "mlp.fc1", F, H, c.mlp_bias, &L.up);
          linear(p + "mlp.fc2", H, F, c.mlp_bias, &L.down);
        } else {
          norm(p + "post_attention_layernorm", H, layer_norm, &L.mlp_norm);
          linear(p + "mlp.gate_proj", F, H, c.mlp_bias, &L.gate);
          linear(p + "mlp.up_proj", F, H, c.mlp_bias, &L.up);
          linear(p + "mlp.down_proj", H, F, c.mlp_bias, &L.down);
        }
      }
      norm(phi ? "model.final_layernorm" : "model.norm", H, layer_norm, final_norm);
      if (!c.tied_output) {
        linear("lm_head", V, H, c.lm_head_bias, lm_head);
      } else if (c.lm_head_bias) {
        vector("lm_head.bias", V, &lm_head->bias);  // Phi ties the weight only
      }
      break;
    }
    case LmArch::OpenElm: {
      matrix("transformer.token_embeddings.weight", V, H, embeddings);
      for (int64_t i = 0; i < c.n_layers(); ++i) {
        LmLayer& L = layers[i];
        const std::string p = "transformer.layers." + std::to_string(i) + ".";
        const int64_t nq = L.shape.n_heads, nkv = L.shape.n_kv_heads;
        const int64_t F = L.shape.ffn_dim > 0 ? L.shape.ffn_dim : kAny;
        norm(p + "attn_norm", H, false, &L.attn_norm);
        linear(p + "attn.qkv_proj", (nq + 2 * nkv) * hd, H, false, &L.qkv);
        if (c.qk_norm) {
          norm(p + "attn.q_norm", hd, false, &L.q_norm);
          norm(p + "attn.k_norm", hd, false, &L.k_norm);
        }
        linear(p + "attn.out_proj", H, nq * hd, false, &L.o);
        norm(p + "ffn_norm", H, false, &L.mlp_norm);
        const int64_t up_rows = F == kAny ? kAny : (c.gated_mlp ? 2 * F : F);
        linear(p + "ffn.proj_1", up_rows, H, false, c.gated_mlp ? &L.gate_up : &L.up);
        linear(p + "ffn.proj_2", H, F, false, &L.down);
      }
      norm("transformer.norm", H, false, final_norm);
      if (!c.tied_output) linear("lm_head", V, H, false, lm_head);
      break;
    }
  }
  return s;
}

Tensor to_f32(const Tensor& t) { return t.dtype() == DType::F32 ? t : t.to(DType::F32); }

}  // namespace

Tensor convert_weight(const Tensor& w, DType dtype) {
  TE_CHECK(w.ndim() == 2, "convert_weight: expected a matrix, got {}", shape_str(w.shape()));
  if (w.dtype() == dtype) return w;
  const int64_t rows = w.dim(0), cols = w.dim(1);
  if (dtype_is_quantized(dtype) && cols % kQuantBlock != 0) dtype = DType::F16;
  Tensor out = Tensor::empty(dtype, w.shape());
  const size_t in_row = dtype_bytes(w.dtype(), cols), out_row = dtype_bytes(dtype, cols);
  const char* src = static_cast<const char*>(w.raw());
  char* dst = static_cast<char*>(out.raw_mut());
  const bool direct = w.dtype() == DType::F32 || dtype == DType::F32 ||
                      (!dtype_is_quantized(w.dtype()) && !dtype_is_quantized(dtype));
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<float> staging(direct ? 0 : static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      if (direct) {
        convert(w.dtype(), src + r * in_row, dtype, dst + r * out_row, cols);
      } else {
        convert(w.dtype(), src + r * in_row, DType::F32, staging.data(), cols);
        convert(DType::F32, staging.data(), dtype, dst + r * out_row, cols);
      }
    }
  });
  return out;
}

std::vector<std::pair<std::string, Shape>> lm_weight_shapes(const LmConfig& config) {
  std::vector<LmLayer> layers(config.layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    TE_CHECK(config.layers[i].ffn_dim > 0, "{}: layer {}: the MLP width is not known", config.where, i);
    layers[i].shape = config.layers[i];
  }
  Tensor embeddings;
  LmNorm final_norm;
  LmLinear lm_head;
  std::vector<std::pair<std::string, Shape>> out;
  for (const Slot& s : layout(config, layers, &embeddings, &final_norm, &lm_head)) out.emplace_back(s.name, s.shape);
  return out;
}

LmModel LmModel::load(const std::filesystem::path& path, const LoadOptions& options) {
  if (std::filesystem::is_regular_file(path) && path.extension() == ".gguf") return load_lm_gguf(path, options);
  TE_CHECK(std::filesystem::is_directory(path), "{}: not a model folder (config.json + safetensors) or a .gguf file",
           path.string());
  const JsonObject json = JsonObject::load(path / "config.json");
  LmConfig config = parse_lm_config(json);
  std::filesystem::path weights_file = options.weights_file;
  if (weights_file.empty()) {
    weights_file = path / "model.safetensors";
    if (!std::filesystem::exists(weights_file) && std::filesystem::exists(path / "model.safetensors.index.json"))
      weights_file = path / "model.safetensors.index.json";
  } else if (weights_file.is_relative()) {
    weights_file = path / weights_file;
  }
  const auto weights = open_safetensors_weights(weights_file);
  LmModel m = bind(std::move(config), json.json(), *weights, options);
  m.source_ = path;
  return m;
}

LmModel LmModel::bind(LmConfig config, nlohmann::json hf_config, const WeightSource& weights,
                      const LoadOptions& options, const std::string& prefix) {
  if (options.weight_dtype) {
    const DType d = *options.weight_dtype;
    TE_CHECK(d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::Q8_0 || d == DType::Q4_0,
             "weights cannot be converted to {} (f32, f16, bf16, q8_0, q4_0)", dtype_name(d));
  }
  LmModel m;
  m.config_ = std::move(config);
  m.hf_config_ = std::move(hf_config);
  const LmConfig& c = m.config_;
  m.layers_.resize(c.layers.size());
  for (size_t i = 0; i < c.layers.size(); ++i) m.layers_[i].shape = c.layers[i];

  // Matrices in slot order (the order decode reads them), for their compute layout.
  std::vector<size_t> matrix_tensor;  // index in m.tensors_
  std::vector<Tensor*> matrix_target;
  for (const Slot& s : layout(c, m.layers_, &m.embeddings_, &m.final_norm_, &m.lm_head_)) {
    const std::string name = prefix + s.name;
    TE_CHECK(weights.contains(name), "{}: missing tensor \"{}\" (expected {} for {} in {})", weights.where(name), name,
             shape_pattern(s.shape), c.architecture, c.where);
    Tensor t = weights.get(name);
    TE_CHECK(shape_matches(s.shape, t.shape()), "{}: tensor \"{}\" has shape {}, expected {} from {}",
             weights.where(name), name, shape_str(t.shape()), shape_pattern(s.shape), c.where);
    // One NaN or infinite weight makes every logit NaN (docs/lm.md: the scan's cost).
    const int64_t bad = first_non_finite(t);
    TE_CHECK(bad < 0, "{}: tensor \"{}\" holds a non-finite value at flat index {} (weights must be finite)",
             weights.where(name), name, bad);
    if (s.matrix) {
      TE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16 ||
                   t.dtype() == DType::Q8_0 || t.dtype() == DType::Q4_0,
               "{}: tensor \"{}\" has dtype {} (F32, F16, BF16, Q8_0 or Q4_0 expected)", weights.where(name), name,
               dtype_name(t.dtype()));
      if (options.weight_dtype) t = convert_weight(t, *options.weight_dtype);
      matrix_tensor.push_back(m.tensors_.size());
      matrix_target.push_back(s.target);
    } else {
      TE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16,
               "{}: tensor \"{}\" has dtype {} (F32, F16 or BF16 expected)", weights.where(name), name,
               dtype_name(t.dtype()));
      t = to_f32(t);
    }
    *s.target = t;
    m.tensors_.emplace_back(s.name, t);
  }
  if (options.compute_layout) {
    // Only `matrices` holds them while they are converted, so each is freed once copied.
    std::vector<Tensor> matrices;
    for (size_t i = 0; i < matrix_target.size(); ++i) {
      matrices.push_back(std::move(*matrix_target[i]));
      m.tensors_[matrix_tensor[i]].second = Tensor();
    }
    matrices = prepare_linear_weights(std::move(matrices));
    for (size_t i = 0; i < matrix_target.size(); ++i) {
      *matrix_target[i] = matrices[i];
      m.tensors_[matrix_tensor[i]].second = matrices[i];
    }
  }

  // Widths the weights decide (OpenELM's per-layer FFN) and their consistency.
  for (size_t i = 0; i < m.layers_.size(); ++i) {
    LmLayer& L = m.layers_[i];
    const LmLinear& first = L.gate_up.defined() ? L.gate_up : L.up;
    const int64_t rows = first.weight.dim(0);
    TE_CHECK(!L.gate_up.defined() || rows % 2 == 0, "{}: layer {}: the fused gate/up projection has an odd row count {}",
             c.where, i, rows);
    const int64_t F = L.gate_up.defined() ? rows / 2 : rows;
    TE_CHECK(L.down.weight.dim(1) == F, "{}: layer {}: the down projection takes {} inputs but the MLP is {} wide",
             c.where, i, L.down.weight.dim(1), F);
    L.shape.ffn_dim = F;
    m.config_.layers[i].ffn_dim = F;
  }
  m.lm_head_.weight = c.tied_output ? m.embeddings_ : m.lm_head_.weight;
  return m;
}

int64_t LmModel::weight_bytes_per_token() const {
  int64_t bytes = 0;
  for (const auto& [name, t] : tensors_) bytes += static_cast<int64_t>(t.nbytes());
  // The embedding table is read one row per token, unless it is also the output.
  const int64_t table = static_cast<int64_t>(embeddings_.nbytes());
  const int64_t row = static_cast<int64_t>(dtype_bytes(embeddings_.dtype(), config_.hidden));
  return config_.tied_output ? bytes : bytes - table + row;
}

int64_t LmModel::matmul_flops_per_token() const {
  int64_t flops = 0;
  for (const auto& [name, t] : tensors_) {
    if (t.ndim() == 2 && t.raw() != embeddings_.raw()) flops += 2 * t.numel();
  }
  if (config_.tied_output) flops += 2 * embeddings_.numel();
  return flops;
}

int64_t LmModel::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, t] : tensors_) n += t.numel();
  return n;
}

}  // namespace tinyemo
