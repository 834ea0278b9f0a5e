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

TINYEMO_ISA_BEGIN

// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major f32; op(X) = X or X^T.
// beta == 0 never reads C. Multi-threaded on the global pool (serial inside a pool task).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// PyTorch Linear: y[M,N] = x[M,K] * W^T + bias, with W a [N,K] tensor of
// dtype F32, F16, BF16, Q8_0, Q4_0, Q8_0x16 or Q4_0x16 (accumulation in f32). bias: N floats or null.
// x rows are `ldx` floats apart, y rows `ldy` apart (0 = packed).
// 16-bit and quantised weights are used as stored (widened/dequantised exactly).
// For Q8_0/Q4_0 with fewer than 8 rows (decode) x is quantised to 8 bits per
// block of 32 and multiplied with integer dot products (ggml's scheme); with 8
// rows or more x stays f32. Multi-threaded on the global pool.
void linear(const float* x, int64_t M, const Tensor& W, const float* bias, float* y, int64_t ldx = 0,
            int64_t ldy = 0);

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
void linear_shared_input(const float* x, int64_t M, std::span<const LinearTarget> targets);

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
// they are read in): every matrix whose layout changes is placed in one
// allocation on 2 MiB pages (core::allocate_buffer), tails included. One
// allocation per matrix left the matrices under 2 MiB and every tail on 4 KiB
// pages (about a quarter of OpenELM-270M's q8_0 bytes), which stream slower
// (docs/lm.md). Each input is released once copied.
std::vector<Tensor> prepare_linear_weights(std::vector<Tensor> weights);

// Scalar references kept beside the optimised kernels; tests compare the two.
namespace reference {
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void linear(const float* x, int64_t M, const Tensor& W, const float* bias, float* y);
}  // namespace reference
TINYEMO_ISA_END

}  // namespace tinyemo
