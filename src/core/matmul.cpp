#include "core/matmul.h"

#include <cblas.h>

#include <vector>

#include "core/matmul_internal.h"
#include "core/quant.h"
#include "core/simd.h"

namespace tinyemo {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
#if TINYEMO_AVX512
  // Our kernel on AVX-512 (faster than OpenBLAS 0.3.21 here, and it never wakes
  // OpenBLAS's own threads, which would compete with the pool: docs/kernels.md).
  detail::BOperand b;
  b.data = B;
  if (trans_b) {
    b.layout = detail::BOperand::Layout::Rows;
    b.ld = ldb * static_cast<int64_t>(sizeof(float));
    if (!trans_a && M < detail::dot_path_max_rows(DType::F32) && alpha == 1.0f && beta == 0.0f) {
      detail::linear_rows_dot(A, M, lda, b, N, K, nullptr, C, ldc);
      return;
    }
  } else {
    b.layout = detail::BOperand::Layout::RowMajorF32;
    b.ld = ldb;
  }
  const int64_t a_row = trans_a ? 1 : lda, a_col = trans_a ? lda : 1;
  detail::gemm_packed(M, N, K, alpha, A, a_row, a_col, b, beta, nullptr, C, ldc);
#else
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
#endif
}

void linear(const float* x, int64_t M, const Tensor& W, const float* bias, float* y, int64_t ldx, int64_t ldy) {
  TE_CHECK(W.ndim() == 2, "linear: weight must be 2-D, got {}", shape_str(W.shape()));
  const int64_t N = W.dim(0), K = W.dim(1);
  const DType t = W.dtype();
  TE_CHECK(t == DType::F32 || t == DType::F16 || t == DType::BF16 || dtype_is_quantized(t),
           "linear: unsupported weight dtype {}", dtype_name(t));
  if (ldx == 0) ldx = K;
  if (ldy == 0) ldy = N;
  if (M <= 0 || N <= 0) return;
  detail::BOperand w;
  w.layout = detail::BOperand::Layout::Rows;
  w.dtype = t;
  w.data = W.raw();
  w.ld = static_cast<int64_t>(dtype_bytes(t, K));
  if (M < detail::dot_path_max_rows(t)) {
    detail::linear_rows_dot(x, M, ldx, w, N, K, bias, y, ldy);
  } else {
    detail::gemm_packed(M, N, K, 1.0f, x, ldx, 1, w, 0.0f, bias, y, ldy);
  }
}

void linear_shared_input(const float* x, int64_t M, std::span<const LinearTarget> targets) {
  if (targets.empty()) return;
  const Tensor& first = *targets[0].weight;
  const DType t = first.dtype();
  bool joint = first.ndim() == 2 && dtype_of_rows(t) != t && M < detail::dot_path_max_rows(t);
  for (const LinearTarget& target : targets)
    joint = joint && target.weight->dtype() == t && target.weight->ndim() == 2 &&
            target.weight->dim(1) == first.dim(1);
  if (!joint) {
    for (const LinearTarget& target : targets) linear(x, M, *target.weight, target.bias, target.y);
    return;
  }
  const int64_t K = first.dim(1);
  std::vector<detail::DotOutput> outputs;
  for (const LinearTarget& target : targets) {
    detail::DotOutput o;
    o.w.dtype = t;
    o.w.data = target.weight->raw();
    o.w.ld = static_cast<int64_t>(dtype_bytes(t, K));
    o.N = target.weight->dim(0);
    o.bias = target.bias;
    o.y = target.y;
    o.ldy = o.N;
    outputs.push_back(o);
  }
  detail::linear_rows_dot_shared_input(x, M, K, K, outputs);
}

Tensor prepare_linear_weight(const Tensor& W) {
  const DType t = W.dtype();
  if ((t != DType::Q8_0 && t != DType::Q4_0) || W.ndim() != 2 || W.dim(0) % kInterleavedRows != 0 ||
      W.dim(1) % kQuantBlock != 0 || !detail::has_interleaved_dot())
    return W;
  return W.to(t == DType::Q8_0 ? DType::Q8_0x16 : DType::Q4_0x16);
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
