// Element-wise float math written so that GCC vectorises the loops that call
// it (the projector's training passes): plain arithmetic, no libm calls, no
// intrinsics. (libm's erff/expf/sqrtf keep loops scalar: without
// -fno-math-errno a vector sqrt is not even allowed.) The std:: versions
// remain the references; tests/core/fast_math_test.cpp bounds the
// differences. The exp constants are shared with core/simd_math.h's AVX-512 exp.
#pragma once

#include <bit>
#include <cstdint>

#include "core/isa.h"

namespace tinyemo {
TINYEMO_ISA_BEGIN
namespace fast {

// Cephes expf: ln 2 split in a high part exact in float and the remainder, and
// the polynomial of e^r - 1 - r over r^2 (lowest degree first).
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kExpPoly[] = {5.0000001201e-1f, 1.6666665459e-1f, 4.1665795894e-2f,
                                     8.3334519073e-3f, 1.3981999507e-3f, 1.9875691500e-4f};

// e^x, relative error < 2e-7 for x in [-87, 88] (Cephes expf's range
// reduction and polynomial); clamped below and above. NaN takes the lower
// clamp (the comparisons are written so that it fails them): converting a NaN
// to int below would be undefined, and callers' own arithmetic on their NaN
// argument still yields NaN (gelu_with_grad: x * Phi(x)).
inline float exp(float x) {
  x = x > -87.3f ? (x < 88.3f ? x : 88.3f) : -87.3f;
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (no rounding-mode calls).
  constexpr float kShift = 12582912.0f;
  float n = x * kLog2e + kShift;
  n -= kShift;
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  const float r2 = r * r;
  float p = kExpPoly[5];
  p = p * r + kExpPoly[4];
  p = p * r + kExpPoly[3];
  p = p * r + kExpPoly[2];
  p = p * r + kExpPoly[1];
  p = p * r + kExpPoly[0];
  p = p * r2 + r + 1.0f;
  const int32_t e = static_cast<int32_t>(n) + 127;
  return p * std::bit_cast<float>(static_cast<uint32_t>(e) << 23);
}

// sqrt(x) for x >= 0 (Newton-Raphson on 1/sqrt from the classic bit-level
// guess, three steps: within 3 ulp), and 0 for x = 0.
inline float sqrt(float x) {
  float y = std::bit_cast<float>(0x5f375a86u - (std::bit_cast<uint32_t>(x) >> 1));
  const float hx = 0.5f * x;
  y = y * (1.5f - hx * y * y);
  y = y * (1.5f - hx * y * y);
  y = y * (1.5f - hx * y * y);
  return x * y;
}

// erfc(z) for z >= 0 with relative error < 1.2e-7 (Numerical Recipes' erfcc,
// a Chebyshev fit of erfc(z) e^(z^2) (1 + z/2)).
inline float erfc_nonneg(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * exp(p - z * z);
}

// GELU (exact erf form, x Phi(x)) and its derivative Phi(x) + x phi(x) at once.
inline void gelu_with_grad(float x, float& value, float& grad) {
  const float a = (x < 0.0f ? -x : x) * 0.70710678118654752f;
  const float tail = 0.5f * erfc_nonneg(a);  // Phi(-|x|)
  const float phi = x < 0.0f ? tail : 1.0f - tail;
  const float density = 0.39894228040143268f * exp(-a * a);  // e^(-x^2/2) / sqrt(2 pi)
  value = x * phi;
  grad = phi + x * density;
}

}  // namespace fast
TINYEMO_ISA_END
}  // namespace tinyemo
