// Row-wise and element-wise float kernels shared by the models.
#pragma once

#include <cstdint>

#include "core/isa.h"

namespace tinyemo {
TINYEMO_ISA_BEGIN

// out[r,:] = (x[r,:] - mean) / sqrt(var + eps) * gamma + beta  (gamma/beta may be null)
void layer_norm(const float* x, int64_t rows, int64_t cols, const float* gamma, const float* beta, float eps,
                float* out);
// out[r,:] = x[r,:] / sqrt(mean(x^2) + eps) * gamma  (gamma may be null)
void rms_norm(const float* x, int64_t rows, int64_t cols, const float* gamma, float eps, float* out);
// In-place softmax over each row.
void softmax_rows(float* x, int64_t rows, int64_t cols);

// In-place activations.
void gelu_erf(float* x, int64_t n);    // x * Phi(x) (PyTorch nn.GELU())
void gelu_tanh(float* x, int64_t n);   // GPT-2 / Phi "gelu_new"
void quick_gelu(float* x, int64_t n);  // x * sigmoid(1.702 x) (OpenAI CLIP)
void silu(float* x, int64_t n);        // x * sigmoid(x)

// Scalar references (double precision inside) kept beside the vectorised kernels;
// tests compare the two.
namespace reference {
void layer_norm(const float* x, int64_t rows, int64_t cols, const float* gamma, const float* beta, float eps,
                float* out);
void rms_norm(const float* x, int64_t rows, int64_t cols, const float* gamma, float eps, float* out);
void softmax_rows(float* x, int64_t rows, int64_t cols);
void gelu_erf(float* x, int64_t n);
void gelu_tanh(float* x, int64_t n);
void quick_gelu(float* x, int64_t n);
void silu(float* x, int64_t n);
}  // namespace reference

// y += x
void add_inplace(float* y, const float* x, int64_t n);
// dot product and squared L2 norm in f32 with wide accumulation
float dot(const float* a, const float* b, int64_t n);

TINYEMO_ISA_END
}  // namespace tinyemo
