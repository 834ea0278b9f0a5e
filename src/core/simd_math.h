// Internal to src/core: vectorised exp, sigmoid and exact-erf GELU on 16 floats
// (AVX-512), shared by core/ops.cpp and core/attention.cpp. Accuracy is tested
// against double-precision libm in tests/core/ops_test.cpp.
#pragma once

#include "core/fast_math.h"
#include "core/simd.h"

#if TINYEMO_AVX512

namespace tinyemo {
TINYEMO_ISA_BEGIN
namespace simd {

// Polynomial p(t) = c[0] + c[1] t + ... by Horner's rule.
template <size_t N>
inline __m512 horner(__m512 t, const float (&c)[N]) {
  __m512 r = _mm512_set1_ps(c[N - 1]);
  for (size_t i = N - 1; i-- > 0;) r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(c[i]));
  return r;
}

// e^x to about 1 ulp (Cephes expf's reduction and polynomial); 0 below -104,
// +inf above 88.7, NaN stays NaN.
inline __m512 exp(__m512 x) {
  const __m512 log2e = _mm512_set1_ps(fast::kLog2e);
  const __m512 ln2_hi = _mm512_set1_ps(fast::kLn2Hi), ln2_lo = _mm512_set1_ps(fast::kLn2Lo);
  const __m512 xc = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.8f)), _mm512_set1_ps(-104.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, ln2_hi, xc);
  r = _mm512_fnmadd_ps(n, ln2_lo, r);
  const __m512 r2 = _mm512_mul_ps(r, r);
  const __m512 p = _mm512_fmadd_ps(horner(r, fast::kExpPoly), r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512 result = _mm512_scalef_ps(p, n);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), result, x);
}

// 1 / (1 + e^-x)
inline __m512 sigmoid(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

// x * Phi(x) with Phi the standard normal CDF through erf/erfc of a = |x|/sqrt(2):
// erf(a) = a P(a^2) for a < 0.5; above, erfc(a) = e^(-x^2/2) G(a) for a < 1 and
// e^(-x^2/2) / a * Q(1/a^2) beyond (fits from tools/fit_gelu_erf_polynomials.py,
// relative error < 2e-8 in double). Phi(x < 0) = erfc(a) / 2 keeps the relative
// accuracy in the negative tail, where 1 + erf(x/sqrt(2)) would cancel.
inline __m512 gelu_erf(__m512 x_in) {
  static constexpr float kErf[] = {1.128379166e+00f, -3.761262557e-01f, 1.128358228e-01f, -2.685369186e-02f,
                                   5.188099769e-03f, -8.008193334e-04f, 7.847262424e-05f};
  static constexpr float kErfcMid[] = {9.997202444e-01f, -1.125078163e+00f, 9.828523760e-01f, -7.006238905e-01f,
                                       4.000469300e-01f, -1.699774284e-01f, 4.677212274e-02f, -6.128615553e-03f};
  static constexpr float kErfcFar[] = {5.641894982e-01f, -2.820784054e-01f, 4.220669690e-01f,
                                       -1.023448334e+00f, 3.060782831e+00f, -8.760510705e+00f,
                                       1.924133573e+01f, -2.650689422e+01f, 1.657508780e+01f};  // t < 0.3
  static constexpr float kErfcNear[] = {5.637075784e-01f, -2.723995387e-01f, 3.299393426e-01f,
                                        -4.583324839e-01f, 5.456982445e-01f, -4.844622574e-01f,
                                        2.908576276e-01f, -1.041054520e-01f, 1.668051902e-02f};  // t >= 0.3
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  // Phi(x) is 0 or 1 in f32 beyond |x| = 20; clamping keeps infinities out of the tails.
  const __m512 x = _mm512_max_ps(_mm512_min_ps(x_in, _mm512_set1_ps(20.0f)), _mm512_set1_ps(-20.0f));
  const __m512 a = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
  const __m512 a2 = _mm512_mul_ps(a, a);
  const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  // a < 0.5: Phi = 0.5 + 0.5 sign(x) erf(a).
  const __m512 erf_a = _mm512_mul_ps(a, horner(a2, kErf));
  const __m512 phi_small = _mm512_fmadd_ps(half, _mm512_mask_sub_ps(erf_a, negative, _mm512_setzero_ps(), erf_a), half);
  // a >= 0.5: e^(-x^2/2) with the rounding error of x^2 put back (x^2 = p + e exactly).
  const __m512 p = _mm512_mul_ps(x, x);
  const __m512 e = _mm512_fmsub_ps(x, x, p);
  const __m512 gauss = _mm512_mul_ps(exp(_mm512_mul_ps(p, _mm512_set1_ps(-0.5f))), _mm512_fnmadd_ps(half, e, one));
  const __m512 t = _mm512_div_ps(one, a2);
  const __mmask16 far = _mm512_cmp_ps_mask(t, _mm512_set1_ps(0.3f), _CMP_LT_OQ);
  const __m512 q = _mm512_div_ps(_mm512_mask_blend_ps(far, horner(t, kErfcNear), horner(t, kErfcFar)), a);
  const __mmask16 mid = _mm512_cmp_ps_mask(a, one, _CMP_LT_OQ);
  const __m512 erfc_a = _mm512_mul_ps(gauss, _mm512_mask_blend_ps(mid, q, horner(a, kErfcMid)));
  const __m512 tail = _mm512_mul_ps(half, erfc_a);
  const __m512 phi_large = _mm512_mask_blend_ps(negative, _mm512_sub_ps(one, tail), tail);
  const __mmask16 small = _mm512_cmp_ps_mask(a, half, _CMP_LT_OQ);
  return _mm512_mul_ps(x_in, _mm512_mask_blend_ps(small, phi_large, phi_small));
}

}  // namespace simd
TINYEMO_ISA_END
}  // namespace tinyemo

#endif  // TINYEMO_AVX512
