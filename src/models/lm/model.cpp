#include "models/lm/model.h"

#include "core/finite.h"
#include "core/matmul.h"

#include "core/thread_pool.h"
#include "io/json.h"
#include "models/lm/arch/arch.h"
#include "models/lm/gguf_model.h"

namespace tinyemo::lm {

namespace {

using arch::kAny;
using arch::Slot;

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

// The tensors the config's family holds (Hugging Face names, arch/<family>.cpp).
std::vector<Slot> layout(const LmConfig& c, std::vector<LmLayer>& layers, Tensor* embeddings, LmNorm* final_norm,
                         LmLinear* lm_head) {
  arch::Layout out(layers, embeddings, final_norm, lm_head);
  arch::of(c.arch).layout(c, out);
  return std::move(out.slots);
}

Tensor to_f32(const Tensor& t) { return t.dtype() == DType::F32 ? t : t.to(DType::F32); }

}  // namespace

Tensor convert_weight(const Tensor& w, DType dtype) {
  TE_CHECK(w.ndim() == 2, "convert_weight: expected a matrix, got {}", shape_str(w.shape()));
  if (w.dtype() == dtype) return w;
  const int64_t rows = w.dim(0), cols = w.dim(1);
  // Rows that do not split into the type's blocks take the next type that fits
  // (llama.cpp's quantiser falls back likewise, to Q5_0/Q5_1/Q8_0, for k-quants).
  if (dtype_is_kquant(dtype) && cols % kKQuantBlock != 0) dtype = DType::Q8_0;
  if (dtype_is_quantized(dtype) && cols % kQuantBlock != 0) dtype = DType::F16;
  if (w.dtype() == dtype) return w;
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

LinearCompute parse_prefill_compute(const std::string& name, const std::string& where) {
  if (name.empty() || name == "f32") return LinearCompute::F32;
  TE_CHECK(name == "bf16", "{} \"{}\": expected f32 or bf16", where, name);
  TE_CHECK(has_native_bf16_linear(),
           "{} bf16: this CPU or build has no AVX512-BF16 (vdpbf16ps); bf16 would run on scalar code, use f32", where);
  return LinearCompute::BF16;
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
    TE_CHECK(d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::Q8_0 || d == DType::Q4_0 ||
                 dtype_is_kquant(d),
             "weights cannot be converted to {} (f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k)", dtype_name(d));
  }
  LmModel m;
  m.config_ = std::move(config);
  m.hf_config_ = std::move(hf_config);
  m.prefill_compute_ = options.prefill_compute;
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
                   t.dtype() == DType::Q8_0 || t.dtype() == DType::Q4_0 || dtype_is_kquant(t.dtype()),
               "{}: tensor \"{}\" has dtype {} (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K or Q6_K expected)",
               weights.where(name), name, dtype_name(t.dtype()));
      if (options.weight_dtype) t = convert_weight(t, *options.weight_dtype);
      matrix_tensor.push_back(m.tensors_.size());
      matrix_target.push_back(s.target);
    } else {
      TE_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16,
               "{}: tensor \"{}\" has dtype {} (F32, F16 or BF16 expected)", weights.where(name), name,
               dtype_name(t.dtype()));
      t = to_f32(t);
    }
    m.tensors_.emplace_back(s.name, t);  // as stored: what GGUF export writes back
    if (s.norm_scale && c.norm_weight_offset != 0.0) {
      // Gemma's (1 + weight), added in F32 as its RMSNorm does.
      Tensor shifted = Tensor::empty(DType::F32, t.shape());
      const float offset = static_cast<float>(c.norm_weight_offset);
      const float* src = t.data<float>();
      float* dst = shifted.mutable_data<float>();
      for (int64_t i = 0; i < t.numel(); ++i) dst[i] = offset + src[i];
      t = shifted;
    }
    *s.target = t;
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

}  // namespace tinyemo::lm
