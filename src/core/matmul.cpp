#include "core/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "core/matmul_internal.h"
#include "core/memory.h"
#include "core/panels.h"
#include "core/quant.h"
#include "core/simd.h"
#include "core/thread_pool.h"

namespace tinyemo {
TINYEMO_ISA_BEGIN

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
#if TINYEMO_AVX512
  // Our kernel on AVX-512 (faster than OpenBLAS 0.3.21 here, and it never wakes
  // OpenBLAS's own threads, which would compete with the pool: docs/perf/kernels.md).
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

namespace {

void check_weight(const Tensor& W) {
  TE_CHECK(W.ndim() == 2, "linear: weight must be 2-D, got {}", shape_str(W.shape()));
  const DType t = W.dtype();
  TE_CHECK(t == DType::F32 || t == DType::F16 || t == DType::BF16 || dtype_is_quantized(t) || dtype_is_gemm_panels(t),
           "linear: unsupported weight dtype {}", dtype_name(t));
}

// Rows [n0, n1) of W as a dot-product operand (n0 % 16 == 0 for interleaved
// weights, whose panels of 16 rows take 16 row sizes each).
detail::DotOutput output_rows(const Tensor& W, const float* bias, float* y, int64_t ldy, int64_t n0, int64_t n1) {
  detail::DotOutput o;
  o.w.layout = detail::BOperand::Layout::Rows;
  o.w.dtype = W.dtype();
  o.w.ld = static_cast<int64_t>(dtype_bytes(W.dtype(), W.dim(1)));
  o.w.data = static_cast<const char*>(W.raw()) + n0 * o.w.ld;
  o.N = n1 - n0;
  o.bias = bias ? bias + n0 : nullptr;
  o.y = y + n0;
  o.ldy = ldy;
  return o;
}

// y rows [n0, n1) of linear() (all of them on the pool; inside a task, serially).
void linear_rows(const float* x, int64_t M, int64_t ldx, const Tensor& W, const detail::DotOutput& o,
                 LinearCompute compute = LinearCompute::F32) {
  const int64_t K = W.dim(1);
  if (M < detail::dot_path_max_rows(W.dtype())) {
    detail::linear_rows_dot(x, M, ldx, o.w, o.N, K, o.bias, o.y, o.ldy);
  } else {
    detail::BOperand w = o.w;
    w.bf16_products = compute == LinearCompute::BF16 && !dtype_is_gemm_panels(W.dtype()) && K % 2 == 0;
    detail::gemm_packed(M, o.N, K, 1.0f, x, ldx, 1, w, 0.0f, o.bias, o.y, o.ldy);
  }
}

// Whether the targets' mat-vecs can run as one pass (one quantisation of x).
bool joint_dot(int64_t M, std::span<const LinearTarget> targets) {
  const Tensor& first = *targets[0].weight;
  const DType t = first.dtype();
  bool joint = first.ndim() == 2 && dtype_of_rows(t) != t && M < detail::dot_path_max_rows(t);
  for (const LinearTarget& target : targets)
    joint = joint && target.weight->dtype() == t && target.weight->ndim() == 2 &&
            target.weight->dim(1) == first.dim(1);
  return joint;
}

}  // namespace

void linear(const float* x, int64_t M, const Tensor& W, const float* bias, float* y, int64_t ldx, int64_t ldy,
            LinearCompute compute) {
  check_weight(W);
  const int64_t N = W.dim(0);
  if (ldx == 0) ldx = W.dim(1);
  if (ldy == 0) ldy = N;
  if (M <= 0 || N <= 0) return;
  linear_rows(x, M, ldx, W, output_rows(W, bias, y, ldy, 0, N), compute);
}

void linear_shared_input(const float* x, int64_t M, std::span<const LinearTarget> targets, LinearCompute compute) {
  if (targets.empty()) return;
  if (!joint_dot(M, targets)) {
    for (const LinearTarget& target : targets) linear(x, M, *target.weight, target.bias, target.y, 0, 0, compute);
    return;
  }
  std::vector<detail::DotOutput> outputs;
  for (const LinearTarget& target : targets) {
    const Tensor& W = *target.weight;
    outputs.push_back(output_rows(W, target.bias, target.y, W.dim(0), 0, W.dim(0)));
  }
  const int64_t K = targets[0].weight->dim(1);
  detail::linear_rows_dot_shared_input(x, M, K, K, outputs);
}

namespace {

// A team's mat-vecs: interleaved quantised weights (the decode case) in pieces
// balanced between the members as they go; other weights in equal row shares.
void team_linear(Team& team, const float* x, int64_t M, int64_t ldx, std::span<const LinearTarget> targets,
                 std::span<const int64_t> ldy) {
  std::vector<detail::DotOutput> outputs;
  if (M > 0 && joint_dot(M, targets)) {
    for (size_t i = 0; i < targets.size(); ++i) {
      const Tensor& W = *targets[i].weight;
      outputs.push_back(output_rows(W, targets[i].bias, targets[i].y, ldy[i], 0, W.dim(0)));
    }
    const detail::PieceSplitter split = [&team](int64_t n, int64_t grain,
                                                const std::function<void(int64_t, int64_t)>& fn) {
      team.for_each_piece(n, grain, fn);
    };
    detail::linear_rows_dot_shared_input(x, M, ldx, targets[0].weight->dim(1), outputs, &split);
  } else if (M > 0) {
    for (size_t i = 0; i < targets.size(); ++i) {
      const Tensor& W = *targets[i].weight;
      const auto [n0, n1] = team.share(W.dim(0), std::max(kInterleavedRows, dtype_panel_rows(W.dtype())));
      if (n0 < n1) linear_rows(x, M, ldx, W, output_rows(W, targets[i].bias, targets[i].y, ldy[i], n0, n1));
    }
  }
  team.barrier();
}

}  // namespace

void linear(Team& team, const float* x, int64_t M, const Tensor& W, const float* bias, float* y, int64_t ldx,
            int64_t ldy) {
  check_weight(W);
  if (ldx == 0) ldx = W.dim(1);
  if (ldy == 0) ldy = W.dim(0);
  const LinearTarget target{&W, bias, y};
  team_linear(team, x, M, ldx, {&target, 1}, {&ldy, 1});
}

void linear_shared_input(Team& team, const float* x, int64_t M, std::span<const LinearTarget> targets) {
  if (targets.empty()) return;
  std::vector<int64_t> ldy;
  for (const LinearTarget& target : targets) {
    check_weight(*target.weight);
    ldy.push_back(target.weight->dim(0));
  }
  team_linear(team, x, M, targets[0].weight->dim(1), targets, ldy);
}

namespace {

// The layout linear() reads W fastest in, or W's own dtype where that is it.
DType compute_dtype(const Tensor& W) {
  const DType t = W.dtype();
  if ((t != DType::Q8_0 && t != DType::Q4_0) || W.ndim() != 2 || W.dim(0) % kInterleavedRows != 0 ||
      W.dim(1) % kQuantBlock != 0 || !detail::has_interleaved_dot())
    return t;
  return t == DType::Q8_0 ? DType::Q8_0x16 : DType::Q4_0x16;
}

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// The GEMM panel layout pack_linear_weight gives W, or W's own dtype when it keeps it.
DType packed_dtype(const Tensor& W, LinearCompute compute) {
  const DType t = W.dtype();
  if (W.ndim() != 2 || W.dim(0) % 32 != 0 || (t != DType::F32 && t != DType::F16 && t != DType::BF16)) return t;
  if (compute == LinearCompute::F32) return DType::F32x32;
  return W.dim(1) % 2 == 0 ? DType::BF16x32 : t;
}

// The weights whose dtype `layout_of` changes, copied into that layout in one
// buffer on 2 MiB pages, in the order given (the order they are read in); with
// `move_kept`, the 2-D weights it keeps as they are too (same bytes). One
// allocation per matrix left the matrices under 2 MiB and every tail on 4 KiB
// pages (about a quarter of OpenELM-270M's q8_0 bytes), which stream slower
// (docs/lm.md); so do matrices read in place from a mapped file (a GGUF's f16
// decoded 7-23 % slower than the same weights in this buffer). Each input is
// released once copied.
std::vector<Tensor> relayout(std::vector<Tensor> weights, const std::function<DType(const Tensor&)>& layout_of,
                             bool move_kept) {
  std::vector<size_t> offset(weights.size());
  std::vector<bool> moved(weights.size());
  size_t total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const DType d = layout_of(weights[i]);
    moved[i] = d != weights[i].dtype() || (move_kept && weights[i].ndim() == 2 && weights[i].numel() > 0);
    if (!moved[i]) continue;
    offset[i] = total;
    total += round_up(dtype_bytes(d, weights[i].numel()), 64);
  }
  if (total == 0) return weights;
  // Whole 2 MiB pages, so that the last matrix's tail is on huge pages too.
  if (total >= kHugePageBytes) total = round_up(total, kHugePageBytes);
  void* arena = allocate_buffer(total);
  TE_CHECK(arena != nullptr, "out of memory allocating {} bytes for the weights in their compute layout", total);
  const std::shared_ptr<const void> owner(arena, [](const void* p) { std::free(const_cast<void*>(p)); });
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!moved[i]) continue;
    const DType d = layout_of(weights[i]);
    void* slot = static_cast<char*>(arena) + offset[i];
    if (d == weights[i].dtype()) {
      std::memcpy(slot, weights[i].raw(), weights[i].nbytes());
    } else if (dtype_is_gemm_panels(d)) {
      const Tensor rows = weights[i].dtype() == dtype_of_rows(d) ? weights[i] : weights[i].to(dtype_of_rows(d));
      pack_gemm_panels(d, rows.raw(), rows.dim(0), rows.dim(1), slot);
    } else {
      interleave_rows(d, weights[i].raw(), slot, weights[i].dim(0), weights[i].dim(1) / kQuantBlock);
    }
    // The row-major copy goes as soon as it is read (when nothing else holds it).
    weights[i] = Tensor::view(d, weights[i].shape(), owner, slot, true);
  }
  return weights;
}

}  // namespace

std::vector<Tensor> prepare_linear_weights(std::vector<Tensor> weights) {
  return relayout(std::move(weights), compute_dtype, true);
}

std::vector<Tensor> pack_linear_weights(std::vector<Tensor> weights, LinearCompute compute) {
  return relayout(std::move(weights), [compute](const Tensor& W) { return packed_dtype(W, compute); }, false);
}

bool has_native_bf16_linear() { return detail::has_native_bf16_gemm(); }

Tensor pack_linear_weight(const Tensor& W, LinearCompute compute) { return pack_linear_weights({W}, compute).front(); }

Tensor prepare_linear_weight(const Tensor& W) { return prepare_linear_weights({W}).front(); }

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
  // BF16x32 weights are multiplied with activations rounded to bf16.
  const bool bf16_activations = W.dtype() == DType::BF16x32;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double acc = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const float xk = bf16_activations ? bf16_to_f32(f32_to_bf16(x[m * K + k])) : x[m * K + k];
        acc += static_cast<double>(xk) * w[n * K + k];
      }
      y[m * N + n] = static_cast<float>(acc);
    }
  }
}

}  // namespace reference
TINYEMO_ISA_END
}  // namespace tinyemo
