// Internal to src/core (portable builds, core/isa.h): the entry points every
// instruction-set variant provides, listed once. The list gives each entry
// point's table field, its name (qualified from namespace tinyemo), return
// type, parameters and the arguments that forward them. From it come the
// table type (here), each variant's table (core/isa_table.cpp) and the public
// definitions that forward to the chosen variant (core/dispatch.cpp).
// A kernel file's new public function is added here.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/attention.h"
#include "core/dtype.h"
#include "core/matmul.h"
#include "core/matmul_internal.h"
#include "core/ops.h"
#include "core/tensor.h"

// X(field, name, return type, (parameters), (arguments))
#define TINYEMO_ISA_ENTRY_POINTS(X)                                                                                 \
  X(gemm, gemm, void,                                                                                               \
    (bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,          \
     const float* B, int64_t ldb, float beta, float* C, int64_t ldc),                                               \
    (trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))                                               \
  X(linear, linear, void,                                                                                           \
    (const float* x, int64_t M, const Tensor& W, const float* bias, float* y, int64_t ldx, int64_t ldy,             \
     LinearCompute compute),                                                                                        \
    (x, M, W, bias, y, ldx, ldy, compute))                                                                          \
  X(linear_shared_input, linear_shared_input, void,                                                                 \
    (const float* x, int64_t M, std::span<const LinearTarget> targets, LinearCompute compute),                      \
    (x, M, targets, compute))                                                                                       \
  X(team_linear, linear, void,                                                                                      \
    (Team & team, const float* x, int64_t M, const Tensor& W, const float* bias, float* y, int64_t ldx,             \
     int64_t ldy),                                                                                                  \
    (team, x, M, W, bias, y, ldx, ldy))                                                                             \
  X(team_linear_shared_input, linear_shared_input, void,                                                            \
    (Team & team, const float* x, int64_t M, std::span<const LinearTarget> targets), (team, x, M, targets))         \
  X(prepare_linear_weight, prepare_linear_weight, Tensor, (const Tensor& W), (W))                                   \
  X(prepare_linear_weights, prepare_linear_weights, std::vector<Tensor>, (std::vector<Tensor> weights),             \
    (std::move(weights)))                                                                                           \
  X(has_native_bf16_linear, has_native_bf16_linear, bool, (), ())                                                  \
  X(pack_linear_weight, pack_linear_weight, Tensor, (const Tensor& W, LinearCompute compute), (W, compute))         \
  X(pack_linear_weights, pack_linear_weights, std::vector<Tensor>,                                                  \
    (std::vector<Tensor> weights, LinearCompute compute), (std::move(weights), compute))                           \
  X(reference_gemm, reference::gemm, void,                                                                          \
    (bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,          \
     const float* B, int64_t ldb, float beta, float* C, int64_t ldc),                                               \
    (trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))                                               \
  X(reference_linear, reference::linear, void,                                                                      \
    (const float* x, int64_t M, const Tensor& W, const float* bias, float* y), (x, M, W, bias, y))                  \
  X(layer_norm, layer_norm, void,                                                                                   \
    (const float* x, int64_t rows, int64_t cols, const float* gamma, const float* beta, float eps, float* out),     \
    (x, rows, cols, gamma, beta, eps, out))                                                                         \
  X(rms_norm, rms_norm, void,                                                                                       \
    (const float* x, int64_t rows, int64_t cols, const float* gamma, float eps, float* out),                        \
    (x, rows, cols, gamma, eps, out))                                                                               \
  X(softmax_rows, softmax_rows, void, (float* x, int64_t rows, int64_t cols), (x, rows, cols))                      \
  X(gelu_erf, gelu_erf, void, (float* x, int64_t n), (x, n))                                                        \
  X(gelu_tanh, gelu_tanh, void, (float* x, int64_t n), (x, n))                                                      \
  X(quick_gelu, quick_gelu, void, (float* x, int64_t n), (x, n))                                                    \
  X(silu, silu, void, (float* x, int64_t n), (x, n))                                                                \
  X(reference_layer_norm, reference::layer_norm, void,                                                              \
    (const float* x, int64_t rows, int64_t cols, const float* gamma, const float* beta, float eps, float* out),     \
    (x, rows, cols, gamma, beta, eps, out))                                                                         \
  X(reference_rms_norm, reference::rms_norm, void,                                                                  \
    (const float* x, int64_t rows, int64_t cols, const float* gamma, float eps, float* out),                        \
    (x, rows, cols, gamma, eps, out))                                                                               \
  X(reference_softmax_rows, reference::softmax_rows, void, (float* x, int64_t rows, int64_t cols), (x, rows, cols)) \
  X(reference_gelu_erf, reference::gelu_erf, void, (float* x, int64_t n), (x, n))                                   \
  X(reference_gelu_tanh, reference::gelu_tanh, void, (float* x, int64_t n), (x, n))                                 \
  X(reference_quick_gelu, reference::quick_gelu, void, (float* x, int64_t n), (x, n))                               \
  X(reference_silu, reference::silu, void, (float* x, int64_t n), (x, n))                                           \
  X(add_inplace, add_inplace, void, (float* y, const float* x, int64_t n), (y, x, n))                               \
  X(dot, dot, float, (const float* a, const float* b, int64_t n), (a, b, n))                                        \
  X(attention, attention, void,                                                                                     \
    (const AttentionShape& s, float scale, const float* q, int64_t q_stride, const float* k, int64_t k_stride,      \
     const float* v, int64_t v_stride, float* out, int64_t out_stride),                                             \
    (s, scale, q, q_stride, k, k_stride, v, v_stride, out, out_stride))                                             \
  X(reference_attention, reference::attention, void,                                                                \
    (const AttentionShape& s, float scale, const float* q, int64_t q_stride, const float* k, int64_t k_stride,      \
     const float* v, int64_t v_stride, float* out, int64_t out_stride),                                             \
    (s, scale, q, q_stride, k, k_stride, v, v_stride, out, out_stride))                                             \
  X(convert, convert, void, (DType from, const void* src, DType to, void* dst, int64_t n), (from, src, to, dst, n)) \
  X(gemm_packed, detail::gemm_packed, void,                                                                         \
    (int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_row, int64_t a_col,                    \
     const detail::BOperand& b, float beta, const float* bias, float* c, int64_t ldc),                              \
    (M, N, K, alpha, a, a_row, a_col, b, beta, bias, c, ldc))                                                       \
  X(linear_rows_dot, detail::linear_rows_dot, void,                                                                 \
    (const float* x, int64_t M, int64_t ldx, const detail::BOperand& w, int64_t N, int64_t K, const float* bias,    \
     float* y, int64_t ldy),                                                                                        \
    (x, M, ldx, w, N, K, bias, y, ldy))                                                                             \
  X(linear_rows_dot_shared_input, detail::linear_rows_dot_shared_input, void,                                       \
    (const float* x, int64_t M, int64_t ldx, int64_t K, std::span<const detail::DotOutput> outputs,                 \
     const detail::PieceSplitter* split),                                                                           \
    (x, M, ldx, K, outputs, split))                                                                                 \
  X(linear_rows_dot_kquant, detail::linear_rows_dot_kquant, void,                                                   \
    (const float* x, int64_t M, int64_t ldx, const detail::BOperand& w, int64_t N, int64_t K, const float* bias,    \
     float* y, int64_t ldy),                                                                                        \
    (x, M, ldx, w, N, K, bias, y, ldy))                                                                             \
  X(has_kquant_dot, detail::has_kquant_dot, bool, (), ())                                                           \
  X(has_interleaved_dot, detail::has_interleaved_dot, bool, (), ())                                                 \
  X(dot_path_max_rows, detail::dot_path_max_rows, int64_t, (DType weight_dtype), (weight_dtype))

namespace tinyemo::isa {

// One variant's entry points.
struct Kernels {
#define TINYEMO_ISA_FIELD(field, name, ret, params, args) ret(*field) params;
  TINYEMO_ISA_ENTRY_POINTS(TINYEMO_ISA_FIELD)
#undef TINYEMO_ISA_FIELD
};

}  // namespace tinyemo::isa
