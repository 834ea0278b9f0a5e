#include "core/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "core/thread_pool.h"

namespace tinyemo {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

void linear(const float* x, int64_t M, const Tensor& W, const float* bias, float* y, int64_t ldx, int64_t ldy) {
  TE_CHECK(W.ndim() == 2, "linear: weight must be 2-D, got {}", shape_str(W.shape()));
  const int64_t N = W.dim(0), K = W.dim(1);
  if (ldx == 0) ldx = K;
  if (ldy == 0) ldy = N;
  if (W.dtype() == DType::F32) {
    if (bias != nullptr) {
      for (int64_t m = 0; m < M; ++m) std::copy(bias, bias + N, y + m * ldy);
    }
    gemm(false, true, M, N, K, 1.0f, x, ldx, W.data<float>(), K, bias ? 1.0f : 0.0f, y, ldy);
    return;
  }
  // Other weight types: dequantise panels of rows to f32 and multiply.
  constexpr int64_t kPanel = 64;
  const size_t row_bytes = dtype_bytes(W.dtype(), K);
  const char* wbase = static_cast<const char*>(W.raw());
  const int64_t panels = (N + kPanel - 1) / kPanel;
  thread_pool().run(panels, [&](int64_t p, int) {
    const int64_t n0 = p * kPanel, n1 = std::min(N, n0 + kPanel);
    std::vector<float> panel(static_cast<size_t>((n1 - n0) * K));
    convert(W.dtype(), wbase + n0 * row_bytes, DType::F32, panel.data(), (n1 - n0) * K);
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * ldx;
      for (int64_t n = n0; n < n1; ++n) {
        const float* wn = panel.data() + (n - n0) * K;
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k) acc += xm[k] * wn[k];
        y[m * ldy + n] = acc + (bias ? bias[n] : 0.0f);
      }
    }
  });
}

namespace reference {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const float a = trans_a ? A[k * lda + m] : A[m * lda + k];
        const float b = trans_b ? B[n * ldb + k] : B[k * ldb + n];
        acc += static_cast<double>(a) * b;
      }
      float& c = C[m * ldc + n];
      c = static_cast<float>(alpha * acc + (beta == 0.0f ? 0.0 : static_cast<double>(beta) * c));
    }
  }
}

void linear(const float* x, int64_t M, const Tensor& W, const float* bias, float* y) {
  const int64_t N = W.dim(0), K = W.dim(1);
  const std::vector<float> w = W.to_f32_vector();
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) acc += static_cast<double>(x[m * K + k]) * w[n * K + k];
      y[m * N + n] = static_cast<float>(acc);
    }
  }
}

}  // namespace reference
}  // namespace tinyemo
