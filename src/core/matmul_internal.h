// Internal to src/core: the kernels behind core/matmul.h and the choice
// between them (docs/perf/kernels.md has the measurements behind each choice).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/isa.h"

// Types shared by every instruction-set variant (core/isa.h); the functions
// below are each variant's own.
namespace tinyemo::detail {

// The right-hand operand op(B) of C[M,N] = A[M,K] op(B)[K,N], as stored:
//  - RowMajorF32: f32, element (k, n) at data[k * ld + n] (gemm without trans_b);
//  - Rows: N rows of K elements of `dtype` (a PyTorch Linear weight, or gemm's B
//    with trans_b), row n starting `ld` BYTES after row n-1; element (k, n) is
//    row n's element k. Quantised rows hold K/32 blocks.
struct BOperand {
  enum class Layout { RowMajorF32, Rows };
  Layout layout = Layout::Rows;
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t ld = 0;
  // GEMM only: round A and this operand to bf16 and multiply with vdpbf16ps
  // (LinearCompute::BF16 on weights not packed for it; BF16x32 always does).
  bool bf16_products = false;
};
}  // namespace tinyemo::detail

namespace tinyemo {
TINYEMO_ISA_BEGIN
namespace detail {

// A: element (m, k) at a[m * a_row + k * a_col] (f32; either stride may be 1).
// C: c[m * ldc + n] = alpha * sum_k A B + beta * c (+ bias[n] when bias is set).
// beta == 0 never reads C. Blocked, packed and multi-threaded on the global pool.
void gemm_packed(int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_row, int64_t a_col,
                 const BOperand& b, float beta, const float* bias, float* c, int64_t ldc);

// y[m, n] = x[m, :] . W[n, :] + bias[n] for few rows m: dot products along K
// that read each weight row once (the decode mat-vec). W rows as in BOperand::Rows.
// Quantised W quantises x to 8 bits per 32-block (ggml's scheme) and uses
// integer dot products.
void linear_rows_dot(const float* x, int64_t M, int64_t ldx, const BOperand& w, int64_t N, int64_t K,
                     const float* bias, float* y, int64_t ldy);

}  // namespace detail
TINYEMO_ISA_END
}  // namespace tinyemo

namespace tinyemo::detail {
// linear_rows_dot for several Q8_0x16 or Q4_0x16 weights (all of one dtype) on
// the same x: one quantisation of x and one pass of the pool for all of them.
struct DotOutput {
  BOperand w;
  int64_t N = 0;
  const float* bias = nullptr;
  float* y = nullptr;
  int64_t ldy = 0;
};
// Hands out [0, n) to threads in pieces of at least `grain` items, calling
// fn(begin, end) for each: parallel_for_stealing, or a team's for_each_piece
// when every member of a team makes the call.
using PieceSplitter =
    std::function<void(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn)>;
}  // namespace tinyemo::detail

namespace tinyemo {
TINYEMO_ISA_BEGIN
namespace detail {
// The panels of all outputs form one index space split by `split` (null:
// parallel_for_stealing on the pool).
void linear_rows_dot_shared_input(const float* x, int64_t M, int64_t ldx, int64_t K,
                                  std::span<const DotOutput> outputs, const PieceSplitter* split = nullptr);

// linear_rows_dot for Q4_K / Q5_K / Q6_K weights (linear_dot_kquant.cpp):
// activations quantised to 8 bits per 256, integer dot products per super-block.
void linear_rows_dot_kquant(const float* x, int64_t M, int64_t ldx, const BOperand& w, int64_t N, int64_t K,
                            const float* bias, float* y, int64_t ldy);
bool has_kquant_dot();  // whether this build has that kernel (AVX-512 BW)

// Whether gemm_packed multiplies BF16x32 weights with vdpbf16ps in this build
// (AVX512-BF16); without it, with scalar code computing the same products.
bool has_native_bf16_gemm();

// Whether linear_rows_dot has the kernel for Q8_0x16/Q4_0x16 weights in this
// build (AVX-512 VNNI); without it weights stay row-major.
bool has_interleaved_dot();

// Below this many rows linear() uses linear_rows_dot, from it gemm_packed
// (0 where this build has no dot kernel for the dtype).
int64_t dot_path_max_rows(DType weight_dtype);

}  // namespace detail
TINYEMO_ISA_END
}  // namespace tinyemo
