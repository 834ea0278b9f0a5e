#include "models/clip/encoder_block.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/attention.h"
#include "core/error.h"
#include "core/finite.h"
#include "core/matmul.h"
#include "core/ops.h"
#include "core/thread_pool.h"

namespace tinyemo::clip {

namespace {

// In-place rows of a row-major [rows, cols] buffer, split over the pool.
template <class Fn>
void for_row_chunks(int64_t rows, int64_t cols, Fn&& fn) {
  parallel_for(rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, cols)), fn);
}

void apply_activation(Activation act, float* x, int64_t rows, int64_t cols) {
  for_row_chunks(rows, cols, [&](int64_t r0, int64_t r1) {
    float* p = x + r0 * cols;
    const int64_t n = (r1 - r0) * cols;
    switch (act) {
      case Activation::QuickGelu: quick_gelu(p, n); break;
      case Activation::Gelu: gelu_erf(p, n); break;
      case Activation::GeluTanh: gelu_tanh(p, n); break;
    }
  });
}

std::vector<float> floats_slice(const Tensor& t, int64_t begin, int64_t end) {
  const std::vector<float> all = t.to_f32_vector();
  return std::vector<float>(all.begin() + begin, all.begin() + end);
}

}  // namespace

void layer_norm_rows(const float* x, int64_t rows, int64_t cols, const std::vector<float>& weight,
                     const std::vector<float>& bias, float eps, float* out) {
  for_row_chunks(rows, cols, [&](int64_t r0, int64_t r1) {
    layer_norm(x + r0 * cols, r1 - r0, cols, weight.data(), bias.data(), eps, out + r0 * cols);
  });
}

void add_rows(float* y, const float* x, int64_t rows, int64_t cols) {
  for_row_chunks(rows, cols, [&](int64_t r0, int64_t r1) { add_inplace(y + r0 * cols, x + r0 * cols, (r1 - r0) * cols); });
}

void EncoderScratch::resize(int64_t rows, const EncoderShape& shape) {
  const auto n = static_cast<size_t>(rows * shape.hidden);
  for (auto* b : {&h, &q, &k, &v, &attn}) b->resize(n);
  mlp.resize(static_cast<size_t>(rows * shape.intermediate));
}

void encoder_block(const LayerWeights& l, const EncoderShape& s, const std::vector<int64_t>& sequence_lengths,
                   float* x, EncoderScratch& scratch) {
  const int64_t w = s.hidden, inter = s.intermediate;
  int64_t rows = 0;
  for (int64_t n : sequence_lengths) rows += n;
  scratch.resize(rows, s);
  float* h = scratch.h.data();
  const int64_t head_dim = w / s.heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));

  layer_norm_rows(x, rows, w, l.ln1_weight, l.ln1_bias, s.layer_norm_eps, h);
  linear(h, rows, l.q, l.q_bias.data(), scratch.q.data());
  linear(h, rows, l.k, l.k_bias.data(), scratch.k.data());
  linear(h, rows, l.v, l.v_bias.data(), scratch.v.data());
  int64_t offset = 0;
  for (int64_t len : sequence_lengths) {
    AttentionShape shape;
    shape.q_len = shape.kv_len = len;
    shape.n_heads = shape.n_kv_heads = s.heads;
    shape.head_dim = head_dim;
    shape.causal = s.causal;
    const int64_t off = offset * w;
    attention(shape, scale, scratch.q.data() + off, w, scratch.k.data() + off, w, scratch.v.data() + off, w,
              scratch.attn.data() + off, w);
    offset += len;
  }
  linear(scratch.attn.data(), rows, l.out, l.out_bias.data(), h);
  add_rows(x, h, rows, w);
  layer_norm_rows(x, rows, w, l.ln2_weight, l.ln2_bias, s.layer_norm_eps, h);
  linear(h, rows, l.fc1, l.fc1_bias.data(), scratch.mlp.data());
  apply_activation(s.activation, scratch.mlp.data(), rows, inter);
  linear(scratch.mlp.data(), rows, l.fc2, l.fc2_bias.data(), h);
  add_rows(x, h, rows, w);
}

const Tensor& require_weight(const CheckpointTensors& tensors, const std::string& name, const Shape& shape,
                             const std::string& tower) {
  const Tensor* t = tensors.find(name);
  TE_CHECK(t != nullptr, "{}: missing tensor {} ({})", tensors.file_of(name), name, tower);
  TE_CHECK(t->shape() == shape, "{}: tensor {} has shape {}, but the {} implies {}", tensors.file_of(name), name,
           shape_str(t->shape()), tower, shape_str(shape));
  const DType d = t->dtype();
  TE_CHECK(d == DType::F32 || d == DType::F16 || d == DType::BF16,
           "{}: tensor {} has dtype {}; weights must be F32, F16 or BF16", tensors.file_of(name), name,
           dtype_name(d));
  // A NaN or infinite weight makes every embedding NaN (docs/clip.md: the scan's cost).
  const int64_t bad = first_non_finite(*t);
  TE_CHECK(bad < 0, "{}: tensor {} holds a non-finite value at flat index {} (weights must be finite)",
           tensors.file_of(name), name, bad);
  return *t;
}

LayerWeights read_encoder_layer(const CheckpointTensors& tensors, CheckpointLayout layout,
                                const std::string& layer, int64_t w, int64_t inter, const std::string& tower) {
  auto matrix = [&](const std::string& name, const Shape& shape) { return require_weight(tensors, name, shape, tower); };
  auto floats = [&](const std::string& name, int64_t n) {
    return require_weight(tensors, name, {n}, tower).to_f32_vector();
  };
  const bool hf = layout == CheckpointLayout::HuggingFace;
  LayerWeights l;
  if (hf) {
    l.q = matrix(layer + "self_attn.q_proj.weight", {w, w});
    l.k = matrix(layer + "self_attn.k_proj.weight", {w, w});
    l.v = matrix(layer + "self_attn.v_proj.weight", {w, w});
    l.q_bias = floats(layer + "self_attn.q_proj.bias", w);
    l.k_bias = floats(layer + "self_attn.k_proj.bias", w);
    l.v_bias = floats(layer + "self_attn.v_proj.bias", w);
  } else {
    // nn.MultiheadAttention's fused in-projection: rows [q; k; v], viewed in place.
    const Tensor in_proj = matrix(layer + "attn.in_proj_weight", {3 * w, w});
    l.q = in_proj.rows(0, w);
    l.k = in_proj.rows(w, 2 * w);
    l.v = in_proj.rows(2 * w, 3 * w);
    const Tensor& in_bias = require_weight(tensors, layer + "attn.in_proj_bias", {3 * w}, tower);
    l.q_bias = floats_slice(in_bias, 0, w);
    l.k_bias = floats_slice(in_bias, w, 2 * w);
    l.v_bias = floats_slice(in_bias, 2 * w, 3 * w);
  }
  const std::string out = layer + (hf ? "self_attn.out_proj." : "attn.out_proj.");
  const std::string fc1 = layer + (hf ? "mlp.fc1." : "mlp.c_fc.");
  const std::string fc2 = layer + (hf ? "mlp.fc2." : "mlp.c_proj.");
  const std::string ln1 = layer + (hf ? "layer_norm1." : "ln_1.");
  const std::string ln2 = layer + (hf ? "layer_norm2." : "ln_2.");
  l.out = matrix(out + "weight", {w, w});
  l.out_bias = floats(out + "bias", w);
  l.fc1 = matrix(fc1 + "weight", {inter, w});
  l.fc1_bias = floats(fc1 + "bias", inter);
  l.fc2 = matrix(fc2 + "weight", {w, inter});
  l.fc2_bias = floats(fc2 + "bias", w);
  l.ln1_weight = floats(ln1 + "weight", w);
  l.ln1_bias = floats(ln1 + "bias", w);
  l.ln2_weight = floats(ln2 + "weight", w);
  l.ln2_bias = floats(ln2 + "bias", w);
  return l;
}

int64_t count_numbered(const CheckpointTensors& tensors, const std::string& prefix) {
  int64_t count = 0;
  for (const auto& [name, tensor] : tensors.tensors()) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const size_t end = name.find('.', prefix.size());
    const std::string index = name.substr(prefix.size(), end == std::string::npos ? std::string::npos : end - prefix.size());
    if (index.empty() || index.size() > 6 ||
        !std::all_of(index.begin(), index.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
      continue;
    }
    count = std::max<int64_t>(count, std::stoll(index) + 1);
  }
  return count;
}

}  // namespace tinyemo::clip
