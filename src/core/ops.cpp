#include "core/ops.h"

#include <cmath>

#include "core/simd_math.h"

namespace tinyemo {
TINYEMO_ISA_BEGIN

#if TINYEMO_AVX512

namespace {

// x[i] = f(x[i]) sixteen at a time, the tail masked.
template <class F>
void map_inplace(float* x, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, f(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = simd::first_lanes(n - i);
    _mm512_mask_storeu_ps(x + i, m, f(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

// Sum of f(x[i]) with two accumulators (masked-out lanes contribute f(0) masked to 0).
template <class F>
float sum_mapped(const float* x, int64_t n, F f) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_add_ps(a0, f(_mm512_loadu_ps(x + i)));
    a1 = _mm512_add_ps(a1, f(_mm512_loadu_ps(x + i + 16)));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = simd::first_lanes(n - i);
    a0 = _mm512_mask_add_ps(a0, m, a0, f(_mm512_maskz_loadu_ps(m, x + i)));
  }
  return simd::hsum(_mm512_add_ps(a0, a1));
}

// out[c] = (x[c] - shift) * scale [* gamma[c]] [+ beta[c]]
void normalize_row(const float* x, int64_t cols, float shift, float scale, const float* gamma, const float* beta,
                   float* out) {
  const __m512 vs = _mm512_set1_ps(shift), vk = _mm512_set1_ps(scale);
  for (int64_t c = 0; c < cols; c += 16) {
    const __mmask16 m = simd::first_lanes(cols - c);
    __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + c), vs), vk);
    if (gamma) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, gamma + c));
    if (beta) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, beta + c));
    _mm512_mask_storeu_ps(out + c, m, v);
  }
}

}  // namespace

void layer_norm(const float* x, int64_t rows, int64_t cols, const float* gamma, const float* beta, float eps,
                float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float mean = sum_mapped(xr, cols, [](__m512 v) { return v; }) / static_cast<float>(cols);
    const __m512 vm = _mm512_set1_ps(mean);
    const float var = sum_mapped(xr, cols, [&](__m512 v) {
                        const __m512 d = _mm512_sub_ps(v, vm);
                        return _mm512_mul_ps(d, d);
                      }) / static_cast<float>(cols);
    normalize_row(xr, cols, mean, 1.0f / std::sqrt(var + eps), gamma, beta, out + r * cols);
  }
}

void rms_norm(const float* x, int64_t rows, int64_t cols, const float* gamma, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float ms = sum_mapped(xr, cols, [](__m512 v) { return _mm512_mul_ps(v, v); }) / static_cast<float>(cols);
    normalize_row(xr, cols, 0.0f, 1.0f / std::sqrt(ms + eps), gamma, nullptr, out + r * cols);
  }
}

void softmax_rows(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t c = 0; c < cols; c += 16) {
      const __mmask16 m = simd::first_lanes(cols - c);
      vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, xr + c));
    }
    const float mx = simd::hmax(vmax);
    if (mx == -INFINITY) {  // fully masked row: define as zeros rather than NaN
      map_inplace(xr, cols, [](__m512) { return _mm512_setzero_ps(); });
      continue;
    }
    const __m512 vmx = _mm512_set1_ps(mx);
    map_inplace(xr, cols, [&](__m512 v) { return simd::exp(_mm512_sub_ps(v, vmx)); });
    const __m512 inv = _mm512_set1_ps(1.0f / sum_mapped(xr, cols, [](__m512 v) { return v; }));
    map_inplace(xr, cols, [&](__m512 v) { return _mm512_mul_ps(v, inv); });
  }
}

void gelu_erf(float* x, int64_t n) { map_inplace(x, n, [](__m512 v) { return simd::gelu_erf(v); }); }

void gelu_tanh(float* x, int64_t n) {
  // 0.5 v (1 + tanh(u)) = v * sigmoid(2u): no cancellation near 0 or for large |u|.
  map_inplace(x, n, [](__m512 v) {
    const __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
    const __m512 u2 = _mm512_mul_ps(_mm512_set1_ps(2.0f * 0.7978845608028654f),
                                    _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), v3, v));
    return _mm512_mul_ps(v, simd::sigmoid(u2));
  });
}

void quick_gelu(float* x, int64_t n) {
  map_inplace(x, n, [](__m512 v) { return _mm512_mul_ps(v, simd::sigmoid(_mm512_mul_ps(_mm512_set1_ps(1.702f), v))); });
}

void silu(float* x, int64_t n) {
  map_inplace(x, n, [](__m512 v) { return _mm512_mul_ps(v, simd::sigmoid(v)); });
}

void add_inplace(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i < n; i += 16) {
    const __mmask16 m = simd::first_lanes(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
  }
}

float dot(const float* a, const float* b, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), a1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = simd::first_lanes(n - i);
    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), a0);
  }
  return simd::hsum(_mm512_add_ps(a0, a1));
}

#else  // without AVX-512 the scalar references are the implementation

void layer_norm(const float* x, int64_t rows, int64_t cols, const float* gamma, const float* beta, float eps,
                float* out) {
  reference::layer_norm(x, rows, cols, gamma, beta, eps, out);
}
void rms_norm(const float* x, int64_t rows, int64_t cols, const float* gamma, float eps, float* out) {
  reference::rms_norm(x, rows, cols, gamma, eps, out);
}
void softmax_rows(float* x, int64_t rows, int64_t cols) { reference::softmax_rows(x, rows, cols); }
void gelu_erf(float* x, int64_t n) { reference::gelu_erf(x, n); }
void gelu_tanh(float* x, int64_t n) { reference::gelu_tanh(x, n); }
void quick_gelu(float* x, int64_t n) { reference::quick_gelu(x, n); }
void silu(float* x, int64_t n) { reference::silu(x, n); }
void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}
float dot(const float* a, const float* b, int64_t n) {
  float acc = 0.0f;
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

#endif

namespace reference {

void layer_norm(const float* x, int64_t rows, int64_t cols, const float* gamma, const float* beta, float eps,
                float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = out + r * cols;
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += xr[c];
    const double mean = sum / cols;
    double var = 0.0;
    for (int64_t c = 0; c < cols; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    const double inv = 1.0 / std::sqrt(var / cols + eps);
    for (int64_t c = 0; c < cols; ++c) {
      double v = (xr[c] - mean) * inv;
      if (gamma) v *= gamma[c];
      if (beta) v += beta[c];
      yr[c] = static_cast<float>(v);
    }
  }
}

void rms_norm(const float* x, int64_t rows, int64_t cols, const float* gamma, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = out + r * cols;
    double ss = 0.0;
    for (int64_t c = 0; c < cols; ++c) ss += static_cast<double>(xr[c]) * xr[c];
    const double inv = 1.0 / std::sqrt(ss / cols + eps);
    for (int64_t c = 0; c < cols; ++c) yr[c] = static_cast<float>(gamma ? xr[c] * inv * gamma[c] : xr[c] * inv);
  }
}

void softmax_rows(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    double mx = -INFINITY;
    for (int64_t c = 0; c < cols; ++c) mx = std::fmax(mx, xr[c]);
    if (mx == -INFINITY) {
      for (int64_t c = 0; c < cols; ++c) xr[c] = 0.0f;
      continue;
    }
    double sum = 0.0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(xr[c] - mx);
    for (int64_t c = 0; c < cols; ++c) xr[c] = static_cast<float>(std::exp(xr[c] - mx) / sum);
  }
}

void gelu_erf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    x[i] = static_cast<float>(0.5 * v * std::erfc(-v * 0.70710678118654752440));
  }
}

void gelu_tanh(float* x, int64_t n) {
  constexpr double kAlpha = 0.79788456080286535588;  // sqrt(2/pi)
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    // 0.5 v (1 + tanh(u)) written as v / (1 + e^(-2u)), which does not cancel for u << 0.
    x[i] = static_cast<float>(v / (1.0 + std::exp(-2.0 * kAlpha * (v + 0.044715 * v * v * v))));
  }
}

void quick_gelu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] / (1.0 + std::exp(-1.702 * x[i])));
}

void silu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] / (1.0 + std::exp(-static_cast<double>(x[i]))));
}

}  // namespace reference

TINYEMO_ISA_END
}  // namespace tinyemo
