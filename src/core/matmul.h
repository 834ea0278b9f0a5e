// Matrix products used by every model. Model code calls these; the kernels
// behind them (OpenBLAS sgemm, tinyemo's own for 16-bit and quantised weights)
// are chosen here by measurement (see docs/perf/kernels.md).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/isa.h"
#include "core/tensor.h"

namespace tinyemo {

class Team;

// How linear() multiplies on the GEMM path (prefill, image towers): F32, or
// x and W rounded to bf16 with f32 sums (vdpbf16ps on AVX512-BF16 CPUs).
enum class LinearCompute : uint8_t { F32, BF16 };

TINYEMO_ISA_BEGIN

// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major f32; op(X) = X or X^T.
// beta == 0 never reads C. Multi-threaded on the global pool (serial inside a pool task).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// PyTorch Linear: y[M,N] = x[M,K] * W^T + bias, with W a [N,K] tensor of
// dtype F32, F16, BF16, Q8_0, Q4_0, Q8_0x16, Q4_0x16, Q4_K, Q5_K, Q6_K, F32x32
// or BF16x32 (accumulation in f32). bias: N floats or null.
// BF16x32 weights (pack_linear_weight with LinearCompute::BF16) multiply x
// rounded to bf16 (AVX512-BF16 vdpbf16ps where the CPU has it).
// x rows are `ldx` floats apart, y rows `ldy` apart (0 = packed).
// 16-bit and quantised weights are used as stored (widened/dequantised exactly).
// For Q8_0/Q4_0 with fewer than 8 rows (decode) x is quantised to 8 bits per
// block of 32 and multiplied with integer dot products (ggml's scheme); with 8
// rows or more x stays f32. Multi-threaded on the global pool.
// compute BF16: on the GEMM path (the rows where x stays f32 above; any rows for
// f32/16-bit weights) x and W (dequantised) are rounded to bf16 per call and
// multiplied with f32 sums, as for BF16x32 weights; few-row calls (decode) and
// F32x32 weights are unchanged, and so are weights with an odd K.
void linear(const float* x, int64_t M, const Tensor& W, const float* bias, float* y, int64_t ldx = 0,
            int64_t ldy = 0, LinearCompute compute = LinearCompute::F32);

// linear() for several weights on the same x (q/k/v projections, gate and up):
// target i gets y_i = x W_i^T + b_i (ldx = K, ldy = N_i). With interleaved
// quantised weights of one dtype and fewer than 8 rows, all mat-vecs run as one
// pass of the thread pool (one synchronisation, one quantisation of x).
TINYEMO_ISA_END
struct LinearTarget {
  const Tensor* weight = nullptr;
  const float* bias = nullptr;
  float* y = nullptr;
};
TINYEMO_ISA_BEGIN
void linear_shared_input(const float* x, int64_t M, std::span<const LinearTarget> targets,
                         LinearCompute compute = LinearCompute::F32);

// The same computed by a team (run_team): every member calls it with the same
// arguments, computes its share of the output rows (shares start at multiples
// of 16 rows) on its own thread and returns once all of y is written.
void linear(Team& team, const float* x, int64_t M, const Tensor& W, const float* bias, float* y, int64_t ldx = 0,
            int64_t ldy = 0);
void linear_shared_input(Team& team, const float* x, int64_t M, std::span<const LinearTarget> targets);

// W in the layout linear() reads fastest here: a Q8_0/Q4_0 matrix with
// rows % 16 == 0 becomes Q8_0x16/Q4_0x16 (16 rows interleaved, core/quant.h)
// where this build has the kernel for it; anything else is returned as is.
// Same bytes, same values; single rows of the result are read with
// Tensor::row_to_f32.
Tensor prepare_linear_weight(const Tensor& W);

// The same for a model's matrices, in one buffer in the order given (the order
// they are read in): every 2-D matrix, its layout changed or not, is placed in
// one allocation on 2 MiB pages (core::allocate_buffer), tails included. One
// allocation per matrix left the matrices under 2 MiB and every tail on 4 KiB
// pages (about a quarter of OpenELM-270M's q8_0 bytes), which stream slower
// (docs/lm.md), and so do matrices read in place from a mapped file (a GGUF's
// f16). Each input is released once copied.
std::vector<Tensor> prepare_linear_weights(std::vector<Tensor> weights);

// Weights packed once for the GEMM (M >= 5 rows: prefill, image towers), so
// that linear() skips its per-call packing. F32: F32x32, the f32 values
// (f16/bf16 widened exactly), the same results as the stored matrix. BF16:
// BF16x32 (f32 weights rounded to bf16), and linear() then rounds x to bf16
// too and multiplies with vdpbf16ps (f32 sums): on AVX512-BF16 CPUs with a
// fast vdpbf16ps (Zen 4/5) faster than F32, at ~1e-3 relative error per product
// (docs/perf/kernels.md). Matrices with rows % 32 != 0 (BF16: or odd cols)
// and dtypes other than F32/F16/BF16 are returned as they are. Few-row calls
// (decode) on packed weights run the GEMM, not the dot path.
// Whether BF16 compute runs on vdpbf16ps in this build (else on scalar code: slow).
bool has_native_bf16_linear();
Tensor pack_linear_weight(const Tensor& W, LinearCompute compute);
// The same for several matrices, in one buffer on 2 MiB pages as prepare_linear_weights.
std::vector<Tensor> pack_linear_weights(std::vector<Tensor> weights, LinearCompute compute);

// Scalar references kept beside the optimised kernels; tests compare the two.
// reference::linear rounds x to bf16 for BF16x32 weights, as linear() does.
namespace reference {
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void linear(const float* x, int64_t M, const Tensor& W, const float* bias, float* y);
}  // namespace reference
TINYEMO_ISA_END

}  // namespace tinyemo
