#include "models/projector/mlp.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/matmul.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "core/fast_math.h"
#include "core/rng.h"

namespace tinyemo::projector {

MlpLayout::MlpLayout(MlpDims d) : dims(d) {
  TE_CHECK(d.input > 0 && d.hidden > 0, "projector dimensions must be positive (input {}, hidden {})", d.input,
           d.hidden);
  int64_t at = 0;
  auto take = [&](int64_t n) {
    const int64_t offset = at;
    at += n;
    return offset;
  };
  w1 = take(d.hidden * d.input);
  b1 = take(d.hidden);
  gamma = take(d.hidden);
  beta = take(d.hidden);
  w2 = take(d.hidden * d.hidden);
  b2 = take(d.hidden);
  size = at;
}

template <class T>
void mlp_init(const MlpLayout& layout, T* params, Rng& rng) {
  const MlpDims& d = layout.dims;
  auto uniform_fill = [&](T* p, int64_t n, int64_t fan_in) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>((2.0 * rng.uniform() - 1.0) * bound);
  };
  uniform_fill(params + layout.w1, d.hidden * d.input, d.input);
  uniform_fill(params + layout.b1, d.hidden, d.input);
  std::fill_n(params + layout.gamma, d.hidden, T(1));
  std::fill_n(params + layout.beta, d.hidden, T(0));
  uniform_fill(params + layout.w2, d.hidden * d.hidden, d.hidden);
  uniform_fill(params + layout.b2, d.hidden, d.hidden);
}

template <class T>
void MlpCache<T>::resize(const MlpDims& dims, int64_t b) {
  batch = b;
  const size_t bh = static_cast<size_t>(b * dims.hidden), h = static_cast<size_t>(dims.hidden);
  for (auto* v : {&z1, &xhat, &gate, &act, &dact}) v->resize(bh);
  for (auto* v : {&mean, &var, &rstd, &colsum_dy, &colsum_dyx}) v->resize(h);
}

template <>
void gemm_any<float>(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void gemm_any<double>(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                      int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        acc += (trans_a ? A[k * lda + m] : A[m * lda + k]) * (trans_b ? B[n * ldb + k] : B[k * ldb + n]);
      }
      C[m * ldc + n] = alpha * acc + (beta == 0.0 ? 0.0 : beta * C[m * ldc + n]);
    }
  }
}

namespace {

// y[M, N] = x[M, K] W[N, K]^T + bias: float goes through core's linear (the
// kernel every model uses), double through gemm_any.
void linear_any(const float* x, int64_t M, const float* W, int64_t N, int64_t K, const float* bias, float* y) {
  const Tensor w = Tensor::view(DType::F32, {N, K}, nullptr, W);
  linear(x, M, w, bias, y);
}
void linear_any(const double* x, int64_t M, const double* W, int64_t N, int64_t K, const double* bias, double* y) {
  for (int64_t m = 0; m < M; ++m) std::copy(bias, bias + N, y + m * N);
  gemm_any<double>(false, true, M, N, K, 1.0, x, K, W, K, 1.0, y, N);
}

// sums[c] = sum over rows of x[r, c]
template <class T>
void column_sums(const T* x, int64_t rows, int64_t cols, T* sums) {
  std::fill_n(sums, cols, T(0));
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    for (int64_t c = 0; c < cols; ++c) sums[c] += xr[c];
  }
}

}  // namespace

template <class T>
T gelu(T x) {
  return T(0.5) * x * (T(1) + std::erf(x * static_cast<T>(M_SQRT1_2)));
}

template <class T>
T gelu_grad(T x) {
  const T cdf = T(0.5) * (T(1) + std::erf(x * static_cast<T>(M_SQRT1_2)));
  const T pdf = static_cast<T>(0.5 * M_2_SQRTPI * M_SQRT1_2) * std::exp(T(-0.5) * x * x);
  return cdf + x * pdf;
}

// GELU and its derivative in the fused passes: float uses the vectorisable
// fast:: forms, double (the gradient checks) the libm references.
inline void gelu_value_grad(float y, float& value, float& grad) { fast::gelu_with_grad(y, value, grad); }
inline void gelu_value_grad(double y, double& value, double& grad) {
  value = gelu(y);
  grad = gelu_grad(y);
}
inline float gelu_value(float y) {
  float value, grad;
  fast::gelu_with_grad(y, value, grad);
  return value;
}
inline double gelu_value(double y) { return gelu(y); }

// One row of the fused training pass: xhat = (z - mean) rstd, y = gamma xhat +
// beta, act = gelu(y) keep, gate = gelu'(y) keep. Restrict-qualified so the
// loop vectorises.
template <class T>
void bn_gelu_dropout_row(int64_t H, const T* __restrict z, const T* __restrict mean, const T* __restrict rstd,
                         const T* __restrict gamma, const T* __restrict beta, const T* __restrict keep,
                         T* __restrict xhat, T* __restrict act, T* __restrict gate) {
  for (int64_t h = 0; h < H; ++h) {
    xhat[h] = (z[h] - mean[h]) * rstd[h];
    T value, grad;
    gelu_value_grad(gamma[h] * xhat[h] + beta[h], value, grad);
    act[h] = value * keep[h];
    gate[h] = grad * keep[h];
  }
}

template <class T>
void mlp_forward_train(const MlpLayout& layout, const T* params, const T* x, int64_t B, const T* keep_scale, T eps,
                       MlpCache<T>& c, T* out) {
  const int64_t D = layout.dims.input, H = layout.dims.hidden;
  TE_CHECK(B >= 2, "BatchNorm in training mode needs at least 2 samples per batch, got {}", B);
  const auto p = MlpParamsView<const T>::at(params, layout);
  c.resize(layout.dims, B);
  for (int64_t b = 0; b < B; ++b) std::copy(p.b1, p.b1 + H, c.z1.data() + b * H);
  gemm_any<T>(false, true, B, H, D, T(1), x, D, p.w1, D, T(1), c.z1.data(), H);

  // Batch statistics (two passes, biased variance as BatchNorm normalises with).
  column_sums(c.z1.data(), B, H, c.mean.data());
  const T inv_b = T(1) / static_cast<T>(B);
  for (int64_t h = 0; h < H; ++h) c.mean[h] *= inv_b;
  std::fill(c.var.begin(), c.var.end(), T(0));
  for (int64_t b = 0; b < B; ++b) {
    const T* z = c.z1.data() + b * H;
    for (int64_t h = 0; h < H; ++h) {
      const T d = z[h] - c.mean[h];
      c.var[h] += d * d;
    }
  }
  for (int64_t h = 0; h < H; ++h) {
    c.var[h] *= inv_b;
    c.rstd[h] = T(1) / std::sqrt(c.var[h] + eps);
  }

  // Fused BN affine + GELU + dropout; keeps what the backward pass needs.
  const T* ones = nullptr;
  if (keep_scale == nullptr) {
    c.ones.assign(static_cast<size_t>(H), T(1));
    ones = c.ones.data();
  }
  for (int64_t b = 0; b < B; ++b) {
    const int64_t o = b * H;
    bn_gelu_dropout_row(H, c.z1.data() + o, c.mean.data(), c.rstd.data(), p.gamma, p.beta,
                        keep_scale ? keep_scale + o : ones, c.xhat.data() + o, c.act.data() + o, c.gate.data() + o);
  }
  for (int64_t b = 0; b < B; ++b) std::copy(p.b2, p.b2 + H, out + b * H);
  gemm_any<T>(false, true, B, H, H, T(1), c.act.data(), H, p.w2, H, T(1), out, H);
}

namespace {

constexpr int64_t kGradTileRows = 64;

// dW[rows, cols] = dz[:, rows]^T in[:, :cols] for one matrix, in row tiles
// spread over the pool, each tile handed to `consume` at `offset` + its start.
template <class T>
void weight_grad_tiles(int64_t B, int64_t rows, int64_t cols, const T* dz, int64_t ldz, const T* in, int64_t offset,
                       MlpCache<T>& c, const GradConsumer<T>& consume) {
  const int64_t tiles = (rows + kGradTileRows - 1) / kGradTileRows;
  ThreadPool& pool = thread_pool();
  c.grad_tiles.resize(static_cast<size_t>(pool.size()));
  pool.run(tiles, [&](int64_t t, int thread) {
    const int64_t r0 = t * kGradTileRows, n = std::min(kGradTileRows, rows - r0);
    std::vector<T>& tile = c.grad_tiles[static_cast<size_t>(thread)];
    tile.resize(static_cast<size_t>(kGradTileRows * cols));
    gemm_any<T>(true, false, n, cols, B, T(1), dz + r0, ldz, in, cols, T(0), tile.data(), cols);
    consume(offset + r0 * cols, tile.data(), n * cols);
  });
}

}  // namespace

template <class T>
void mlp_backward(const MlpLayout& layout, const T* params, const T* x, MlpCache<T>& c, const T* dout,
                  const GradConsumer<T>& consume, T* dx) {
  const int64_t D = layout.dims.input, H = layout.dims.hidden, B = c.batch;
  const auto p = MlpParamsView<const T>::at(params, layout);
  c.small_grads.resize(static_cast<size_t>(4 * H));
  T* g_b1 = c.small_grads.data();
  T* g_gamma = g_b1 + H;
  T* g_beta = g_gamma + H;
  T* g_b2 = g_beta + H;

  // Second Linear: d act with W2 as it was, then W2's gradient tiles.
  column_sums(dout, B, H, g_b2);
  gemm_any<T>(false, false, B, H, H, T(1), dout, H, p.w2, H, T(0), c.dact.data(), H);
  weight_grad_tiles<T>(B, H, H, dout, H, c.act.data(), layout.w2, c, consume);

  // Dropout + GELU (the gate), then the BatchNorm backward.
  std::fill(c.colsum_dy.begin(), c.colsum_dy.end(), T(0));
  std::fill(c.colsum_dyx.begin(), c.colsum_dyx.end(), T(0));
  for (int64_t b = 0; b < B; ++b) {
    T* dy = c.dact.data() + b * H;
    const T* gate = c.gate.data() + b * H;
    const T* xh = c.xhat.data() + b * H;
    for (int64_t h = 0; h < H; ++h) {
      dy[h] *= gate[h];
      c.colsum_dy[h] += dy[h];
      c.colsum_dyx[h] += dy[h] * xh[h];
    }
  }
  std::copy(c.colsum_dyx.begin(), c.colsum_dyx.end(), g_gamma);
  std::copy(c.colsum_dy.begin(), c.colsum_dy.end(), g_beta);
  const T inv_b = T(1) / static_cast<T>(B);
  for (int64_t b = 0; b < B; ++b) {
    T* d = c.dact.data() + b * H;  // dy in, dz1 out
    const T* xh = c.xhat.data() + b * H;
    for (int64_t h = 0; h < H; ++h) {
      d[h] = p.gamma[h] * c.rstd[h] * (d[h] - (c.colsum_dy[h] + xh[h] * c.colsum_dyx[h]) * inv_b);
    }
  }

  // First Linear (dx before W1's tiles are consumed).
  column_sums(c.dact.data(), B, H, g_b1);
  if (dx != nullptr) gemm_any<T>(false, false, B, D, H, T(1), c.dact.data(), H, p.w1, D, T(0), dx, D);
  weight_grad_tiles<T>(B, H, D, c.dact.data(), H, x, layout.w1, c, consume);

  // The small vectors: b1, gamma, beta are contiguous in the layout; b2 apart.
  consume(layout.b1, g_b1, 3 * H);
  consume(layout.b2, g_b2, H);
}

template <class T>
void mlp_backward(const MlpLayout& layout, const T* params, const T* x, MlpCache<T>& c, const T* dout, T* grads,
                  T* dx) {
  mlp_backward<T>(layout, params, x, c, dout,
                  [grads](int64_t offset, const T* g, int64_t n) { std::copy(g, g + n, grads + offset); }, dx);
}

template <class T>
void bn_update_running(const MlpCache<T>& c, T momentum, T* running_mean, T* running_var) {
  const int64_t H = static_cast<int64_t>(c.mean.size()), B = c.batch;
  const T unbias = static_cast<T>(B) / static_cast<T>(B - 1);
  for (int64_t h = 0; h < H; ++h) {
    running_mean[h] = (T(1) - momentum) * running_mean[h] + momentum * c.mean[h];
    running_var[h] = (T(1) - momentum) * running_var[h] + momentum * c.var[h] * unbias;
  }
}

template <class T>
void mlp_forward_eval(const MlpLayout& layout, const T* params, const T* running_mean, const T* running_var, T eps,
                      const T* x, int64_t B, T* out) {
  const int64_t D = layout.dims.input, H = layout.dims.hidden;
  const auto p = MlpParamsView<const T>::at(params, layout);
  std::vector<T> scale(static_cast<size_t>(H)), shift(static_cast<size_t>(H));
  for (int64_t h = 0; h < H; ++h) {
    scale[h] = p.gamma[h] / std::sqrt(running_var[h] + eps);
    shift[h] = p.beta[h] - running_mean[h] * scale[h];
  }
  std::vector<T> hidden(static_cast<size_t>(B * H));
  linear_any(x, B, p.w1, H, D, p.b1, hidden.data());
  for (int64_t b = 0; b < B; ++b) {
    T* r = hidden.data() + b * H;
    for (int64_t h = 0; h < H; ++h) r[h] = gelu_value(r[h] * scale[h] + shift[h]);
  }
  linear_any(hidden.data(), B, p.w2, H, H, p.b2, out);
}

template <class T>
void normalize_rows(const T* x, int64_t rows, int64_t cols, T* u) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += xr[c] * xr[c];
    const T inv = T(1) / std::max(std::sqrt(ss), static_cast<T>(1e-12));
    for (int64_t c = 0; c < cols; ++c) u[r * cols + c] = xr[c] * inv;
  }
}

template <class T>
void normalize_rows_backward(const T* x, const T* u, const T* du, int64_t rows, int64_t cols, T* dx) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    const T* ur = u + r * cols;
    const T* dur = du + r * cols;
    T ss = 0, udu = 0;
    for (int64_t c = 0; c < cols; ++c) {
      ss += xr[c] * xr[c];
      udu += ur[c] * dur[c];
    }
    const T norm = std::sqrt(ss);
    if (norm <= static_cast<T>(1e-12)) {  // clamped: u = x / eps is linear in x
      for (int64_t c = 0; c < cols; ++c) dx[r * cols + c] = dur[c] / static_cast<T>(1e-12);
      continue;
    }
    const T inv = T(1) / norm;
    for (int64_t c = 0; c < cols; ++c) dx[r * cols + c] = (dur[c] - ur[c] * udu) * inv;
  }
}

#define TINYEMO_PROJECTOR_MLP_INSTANTIATE(T)                                                                      \
  template void mlp_init<T>(const MlpLayout&, T*, Rng&);                                                         \
  template struct MlpCache<T>;                                                                                   \
  template void mlp_forward_train<T>(const MlpLayout&, const T*, const T*, int64_t, const T*, T, MlpCache<T>&,  \
                                     T*);                                                                        \
  template void mlp_backward<T>(const MlpLayout&, const T*, const T*, MlpCache<T>&, const T*, T*, T*);          \
  template void mlp_backward<T>(const MlpLayout&, const T*, const T*, MlpCache<T>&, const T*,                   \
                                const GradConsumer<T>&, T*);                                                     \
  template void bn_update_running<T>(const MlpCache<T>&, T, T*, T*);                                             \
  template void mlp_forward_eval<T>(const MlpLayout&, const T*, const T*, const T*, T, const T*, int64_t, T*);  \
  template void normalize_rows<T>(const T*, int64_t, int64_t, T*);                                               \
  template void normalize_rows_backward<T>(const T*, const T*, const T*, int64_t, int64_t, T*);                  \
  template T gelu<T>(T);                                                                                         \
  template T gelu_grad<T>(T);
TINYEMO_PROJECTOR_MLP_INSTANTIATE(float)
TINYEMO_PROJECTOR_MLP_INSTANTIATE(double)
#undef TINYEMO_PROJECTOR_MLP_INSTANTIATE

}  // namespace tinyemo::projector
