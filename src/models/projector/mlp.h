// TinyEmo's Metric Projector network (AlignmentMLP in projector_mps/src/model/projector.py):
//   Linear(D, H) -> BatchNorm1d(H) -> GELU (erf) -> Dropout(p) -> Linear(H, H)
// with hand-written backward passes. The training math is templated on the
// float type: float is what training runs; double exists so the tests can
// check every gradient against finite differences without rounding noise.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/rng.h"

namespace tinyemo::projector {

struct MlpDims {
  int64_t input = 0;   // D
  int64_t hidden = 0;  // H (= output size)
};

// Where each parameter lives in one flat buffer (the order of PyTorch's
// AlignmentMLP.parameters(): model.0.weight, model.0.bias, model.1.weight,
// model.1.bias, model.4.weight, model.4.bias). One flat buffer lets AdamW make
// a single pass over parameters, gradients and moments.
struct MlpLayout {
  explicit MlpLayout(MlpDims dims);
  MlpDims dims;
  int64_t w1 = 0, b1 = 0, gamma = 0, beta = 0, w2 = 0, b2 = 0;
  int64_t size = 0;  // floats in the buffer
};

template <class T>
struct MlpParamsView {
  T* w1;     // [H, D]
  T* b1;     // [H]
  T* gamma;  // [H] BatchNorm weight
  T* beta;   // [H] BatchNorm bias
  T* w2;     // [H, H]
  T* b2;     // [H]
  static MlpParamsView at(T* base, const MlpLayout& layout) {
    return {base + layout.w1, base + layout.b1, base + layout.gamma, base + layout.beta, base + layout.w2,
            base + layout.b2};
  }
};

// PyTorch's defaults: nn.Linear weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// BatchNorm weight 1, bias 0.
template <class T>
void mlp_init(const MlpLayout& layout, T* params, Rng& rng);

// Per-batch values the backward pass needs (sized by resize()).
template <class T>
struct MlpCache {
  void resize(const MlpDims& dims, int64_t batch);
  int64_t batch = 0;
  std::vector<T> z1;         // [B, H] first Linear output (pre-BN)
  std::vector<T> xhat;       // [B, H] BN-normalised z1
  std::vector<T> gate;       // [B, H] d(dropout(gelu(y)))/dy = keep_scale * gelu'(y)
  std::vector<T> act;        // [B, H] dropout output (input of the second Linear)
  std::vector<T> mean;       // [H] batch mean
  std::vector<T> var;        // [H] biased batch variance
  std::vector<T> rstd;       // [H] 1 / sqrt(var + eps)
  std::vector<T> dact;       // [B, H] backward scratch (d act, then d y, then d z1)
  std::vector<T> colsum_dy;  // [H]
  std::vector<T> colsum_dyx; // [H]
  std::vector<T> ones;       // [H] the keep scale without dropout
  std::vector<T> small_grads;              // b1, gamma, beta, b2 gradients [4H]
  std::vector<std::vector<T>> grad_tiles;  // per thread: one tile of weight-gradient rows
};

// Training-mode forward: BatchNorm with batch statistics (biased variance),
// dropout given as `keep_scale` [B, H] (0 for dropped units, 1/(1-p) for kept
// ones; null = no dropout). x [B, D] -> out [B, H].
template <class T>
void mlp_forward_train(const MlpLayout& layout, const T* params, const T* x, int64_t batch, const T* keep_scale,
                       T eps, MlpCache<T>& cache, T* out);

// Receives the gradient of params[offset, offset + count) (`grad` points at
// its first value; valid during the call only). May be called from several
// threads at once, for disjoint ranges.
template <class T>
using GradConsumer = std::function<void(int64_t offset, const T* grad, int64_t count)>;

// Backward of mlp_forward_train for dout [B, H]. The two weight gradients are
// produced in tiles of rows, each handed to `consume` while it is still in
// cache (the trainer applies AdamW there, so the 10 MB of weight gradients
// never go to memory); the small vectors follow, last. Parameters are only
// read before their own range is consumed, so `consume` may update them in
// place. When dx is not null, also writes dx [B, D].
template <class T>
void mlp_backward(const MlpLayout& layout, const T* params, const T* x, MlpCache<T>& cache, const T* dout,
                  const GradConsumer<T>& consume, T* dx);
// The same, writing every gradient into `grads` (same layout as params).
template <class T>
void mlp_backward(const MlpLayout& layout, const T* params, const T* x, MlpCache<T>& cache, const T* dout, T* grads,
                  T* dx);

// BatchNorm1d running statistics after a training batch (PyTorch: momentum
// update, the running variance uses the unbiased batch variance).
template <class T>
void bn_update_running(const MlpCache<T>& cache, T momentum, T* running_mean, T* running_var);

// Eval-mode forward (BN running statistics, no dropout): x [B, D] -> out [B, H].
template <class T>
void mlp_forward_eval(const MlpLayout& layout, const T* params, const T* running_mean, const T* running_var, T eps,
                      const T* x, int64_t batch, T* out);

// Row-wise L2 normalisation as torch.nn.functional.normalize (eps 1e-12) and
// its backward: given u = x / max(|x|, eps), dx = (du - u (u . du)) / |x|.
template <class T>
void normalize_rows(const T* x, int64_t rows, int64_t cols, T* u);
template <class T>
void normalize_rows_backward(const T* x, const T* u, const T* du, int64_t rows, int64_t cols, T* dx);

// GELU with the exact erf, and its derivative (scalar, the reference for the
// fused passes above).
template <class T>
T gelu(T x);
template <class T>
T gelu_grad(T x);

// C = alpha * op(A) op(B) + beta * C for the training math: float goes to
// core's gemm; double runs a plain loop (used by the gradient checks only).
template <class T>
void gemm_any(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
              const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace tinyemo::projector
