// Scalar reference quantisation and dequantisation of llama.cpp's k-quants
// (layouts in core/quant.h). Written from the block formats; the quantisers
// implement the same fitting procedure as llama.cpp's reference quantisers
// (the ones `llama-quantize` uses without an importance matrix), so that a
// file tinyemo quantises carries the same error as one llama.cpp quantises.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/quant.h"

namespace tinyemo {

namespace {

constexpr float kAllZero = 1e-15f;  // a group whose largest magnitude is below this is stored as zeros

// Round to nearest, ties to even (the default rounding mode).
inline int round_int(float v) { return static_cast<int>(std::nearbyint(v)); }
inline int clamp_int(int v, int lo, int hi) { return std::min(hi, std::max(lo, v)); }

// x[i] ~ scale * q[i] - min with q[i] in [0, nmax] and min >= 0, fitted by
// weighted least squares: start from the range (max - min) / nmax, then try
// `steps` + 1 other grid densities (nmax + first + step * s codes from the
// current offset to the maximum), solve scale and min in closed form for each
// code assignment, and keep the one with the smallest weighted squared error
// (its offset is where the next grids start).
struct AffineFit {
  float scale = 0.0f;
  float min = 0.0f;
};

AffineFit fit_affine(const float* x, const float* w, int n, int nmax, float first, float step, int steps,
                     uint8_t* q) {
  float lo = x[0], hi = x[0];
  float sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  lo = std::min(lo, 0.0f);  // the offset only ever moves values up: q = 0 stays reachable for 0
  if (hi == lo) {
    std::fill(q, q + n, uint8_t{0});
    return {0.0f, -lo};
  }
  float inverse = static_cast<float>(nmax) / (hi - lo);
  AffineFit best{1.0f / inverse, lo};  // min held as the (non-positive) offset until the end
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    q[i] = static_cast<uint8_t>(clamp_int(round_int(inverse * (x[i] - lo)), 0, nmax));
    const float diff = best.scale * q[i] + lo - x[i];
    best_error += w[i] * (diff * diff);
  }
  uint8_t trial[32];
  for (int s = 0; s <= steps; ++s) {
    const float offset0 = best.min;
    inverse = (first + step * static_cast<float>(s) + static_cast<float>(nmax)) / (hi - offset0);
    float sum_l = 0.0f, sum_ll = 0.0f, sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(round_int(inverse * (x[i] - offset0)), 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      const float wl = w[i] * static_cast<float>(l);
      sum_l += wl;
      sum_ll += wl * static_cast<float>(l);
      sum_xl += wl * x[i];
    }
    const float det = sum_w * sum_ll - sum_l * sum_l;
    if (det <= 0.0f) continue;
    float scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float offset = (sum_ll * sum_x - sum_l * sum_xl) / det;
    if (offset > 0.0f) {  // a positive offset would need a negative min: refit the scale through 0
      offset = 0.0f;
      scale = sum_xl / sum_ll;
    }
    float error = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float diff = scale * trial[i] + offset - x[i];
      error += w[i] * (diff * diff);
    }
    if (error < best_error) {
      std::copy(trial, trial + n, q);
      best_error = error;
      best = {scale, offset};
    }
  }
  return {best.scale, -best.min};
}

// x[i] ~ scale * (q[i] - nmax) with q[i] - nmax in [-nmax, nmax - 1], weighted
// by x[i]^2: the scale that puts the value of largest magnitude on -nmax, then
// 18 nearby grid densities, keeping the assignment with the best weighted fit.
float fit_symmetric(const float* x, int n, int nmax, int8_t* q) {
  float amax = 0.0f, extreme = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      extreme = x[i];
    }
  }
  if (amax < kAllZero) {
    std::fill(q, q + n, int8_t{0});
    return 0.0f;
  }
  auto sums = [&](float inverse, float* sum_lx, float* sum_ll) {
    *sum_lx = *sum_ll = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(round_int(inverse * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      *sum_lx += w * x[i] * static_cast<float>(l);
      *sum_ll += w * static_cast<float>(l) * static_cast<float>(l);
    }
  };
  auto assign = [&](float inverse) {
    for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(nmax + clamp_int(round_int(inverse * x[i]), -nmax, nmax - 1));
  };
  float inverse = -static_cast<float>(nmax) / extreme;
  assign(inverse);
  float sum_lx, sum_ll;
  sums(inverse, &sum_lx, &sum_ll);
  float scale = sum_ll != 0.0f ? sum_lx / sum_ll : 0.0f;
  float best = scale * sum_lx;
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    inverse = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(k)) / extreme;
    sums(inverse, &sum_lx, &sum_ll);
    if (sum_ll > 0.0f && sum_lx * sum_lx > best * sum_ll) {
      assign(inverse);
      scale = sum_lx / sum_ll;
      best = scale * sum_lx;
    }
  }
  return scale;
}

// Q4_K and Q5_K share everything but the code width and the search grid.
struct SuperBlockCodes {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t codes[kKQuantBlock];
};

SuperBlockCodes quantize_affine_superblock(const float* x, int nmax, float first, int steps) {
  SuperBlockCodes out{};
  AffineFit fits[8];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    const float* xj = x + 32 * j;
    float sum_x2 = 0.0f;
    for (int l = 0; l < 32; ++l) sum_x2 += xj[l] * xj[l];
    const float rms = std::sqrt(sum_x2 / 32.0f);
    float weights[32];
    for (int l = 0; l < 32; ++l) weights[l] = rms + std::fabs(xj[l]);
    fits[j] = fit_affine(xj, weights, 32, nmax, first, 0.1f, steps, out.codes + 32 * j);
    max_scale = std::max(max_scale, fits[j].scale);
    max_min = std::max(max_min, fits[j].min);
  }
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = static_cast<uint8_t>(std::min(63, round_int(inv_scale * fits[j].scale)));
    const uint8_t lm = static_cast<uint8_t>(std::min(63, round_int(inv_min * fits[j].min)));
    if (j < 4) {
      out.scales[j] = ls;
      out.scales[j + 4] = lm;
    } else {
      out.scales[j + 4] = static_cast<uint8_t>((ls & 0x0f) | ((lm & 0x0f) << 4));
      out.scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      out.scales[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  out.d = f32_to_f16(max_scale / 63.0f);
  out.dmin = f32_to_f16(max_min / 63.0f);
  // Codes again against the scales as stored (rounded to 6 bits and f16).
  const float d = f16_to_f32(out.d), dmin = f16_to_f32(out.dmin);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    kquant_scale_min(out.scales, j, &sc, &m);
    const float dj = d * sc;
    if (dj == 0.0f) continue;
    const float mj = dmin * m;
    for (int l = 0; l < 32; ++l)
      out.codes[32 * j + l] = static_cast<uint8_t>(clamp_int(round_int((x[32 * j + l] + mj) / dj), 0, nmax));
  }
  return out;
}

}  // namespace

void quantize_q4_k(const float* x, BlockQ4_K* out, int64_t n) {
  for (int64_t b = 0; b < n / kKQuantBlock; ++b, x += kKQuantBlock) {
    const SuperBlockCodes s = quantize_affine_superblock(x, 15, -1.0f, 20);
    BlockQ4_K& o = out[b];
    o.d = s.d;
    o.dmin = s.dmin;
    std::memcpy(o.scales, s.scales, 12);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        o.qs[32 * c + l] = static_cast<uint8_t>(s.codes[64 * c + l] | (s.codes[64 * c + 32 + l] << 4));
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* out, int64_t n) {
  for (int64_t b = 0; b < n / kKQuantBlock; ++b, x += kKQuantBlock) {
    const SuperBlockCodes s = quantize_affine_superblock(x, 31, -0.5f, 15);
    BlockQ5_K& o = out[b];
    o.d = s.d;
    o.dmin = s.dmin;
    std::memcpy(o.scales, s.scales, 12);
    std::memset(o.qh, 0, sizeof(o.qh));
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo = s.codes[64 * c + l], hi = s.codes[64 * c + 32 + l];
        o.qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
        o.qs[32 * c + l] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
      }
    }
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* out, int64_t n) {
  for (int64_t b = 0; b < n / kKQuantBlock; ++b, x += kKQuantBlock) {
    BlockQ6_K& o = out[b];
    int8_t codes[kKQuantBlock];
    float scales[16];
    float max_scale = 0.0f, max_abs_scale = 0.0f;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_symmetric(x + 16 * j, 16, 32, codes + 16 * j);
      if (std::fabs(scales[j]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[j]);
        max_scale = scales[j];
      }
    }
    if (max_abs_scale < kAllZero) {
      std::memset(&o, 0, sizeof(o));
      continue;
    }
    const float inverse = -128.0f / max_scale;
    o.d = f32_to_f16(1.0f / inverse);
    for (int j = 0; j < 16; ++j) o.scales[j] = static_cast<int8_t>(std::min(127, round_int(inverse * scales[j])));
    const float d = f16_to_f32(o.d);
    for (int j = 0; j < 16; ++j) {
      const float dj = d * o.scales[j];
      if (dj == 0.0f) continue;
      for (int l = 0; l < 16; ++l)
        codes[16 * j + l] = static_cast<int8_t>(32 + clamp_int(round_int(x[16 * j + l] / dj), -32, 31));
    }
    for (int h = 0; h < 2; ++h) {
      const uint8_t* c = reinterpret_cast<const uint8_t*>(codes) + 128 * h;
      for (int l = 0; l < 32; ++l) {
        o.ql[64 * h + l] = static_cast<uint8_t>((c[l] & 0x0f) | ((c[l + 64] & 0x0f) << 4));
        o.ql[64 * h + 32 + l] = static_cast<uint8_t>((c[l + 32] & 0x0f) | ((c[l + 96] & 0x0f) << 4));
        o.qh[32 * h + l] =
            static_cast<uint8_t>((c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) | ((c[l + 96] >> 4) << 6));
      }
    }
  }
}

void dequantize_q4_k(const BlockQ4_K* in, float* x, int64_t n) {
  for (int64_t b = 0; b < n / kKQuantBlock; ++b, x += kKQuantBlock) {
    const float d = f16_to_f32(in[b].d), dmin = f16_to_f32(in[b].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      kquant_scale_min(in[b].scales, j, &sc, &m);
      const float dj = d * sc, mj = dmin * m;
      const uint8_t* q = in[b].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) x[32 * j + l] = dj * ((q[l] >> shift) & 0x0f) - mj;
    }
  }
}

void dequantize_q5_k(const BlockQ5_K* in, float* x, int64_t n) {
  for (int64_t b = 0; b < n / kKQuantBlock; ++b, x += kKQuantBlock) {
    const float d = f16_to_f32(in[b].d), dmin = f16_to_f32(in[b].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      kquant_scale_min(in[b].scales, j, &sc, &m);
      const float dj = d * sc, mj = dmin * m;
      const uint8_t* q = in[b].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) {
        const int code = ((q[l] >> shift) & 0x0f) | (((in[b].qh[l] >> j) & 1) << 4);
        x[32 * j + l] = dj * code - mj;
      }
    }
  }
}

void dequantize_q6_k(const BlockQ6_K* in, float* x, int64_t n) {
  for (int64_t b = 0; b < n / kKQuantBlock; ++b, x += kKQuantBlock) {
    const float d = f16_to_f32(in[b].d);
    for (int e = 0; e < kKQuantBlock; ++e) {
      const int h = e / 128, r = e % 128, l = r % 32, quarter = r / 32;
      const uint8_t low = in[b].ql[64 * h + 32 * (quarter % 2) + l];
      const int code = ((quarter < 2 ? low : low >> 4) & 0x0f) | (((in[b].qh[32 * h + l] >> (2 * quarter)) & 3) << 4);
      x[e] = d * in[b].scales[e / 16] * static_cast<float>(code - 32);
    }
  }
}

}  // namespace tinyemo
