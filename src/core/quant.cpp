#include "core/quant.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"

namespace tinyemo {

void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].scale = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) out[b].q[j] = static_cast<int8_t>(std::lround(xb[j] * id));
  }
}

void quantize_q4_0(const float* x, BlockQ4_0* out, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.0f, max = 0.0f;  // max: the signed value of largest magnitude
    for (int j = 0; j < 32; ++j) {
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].scale = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const int lo = std::min(15, static_cast<int>(xb[j] * id + 8.5f));
      const int hi = std::min(15, static_cast<int>(xb[j + 16] * id + 8.5f));
      out[b].q[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* in, float* x, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d = f16_to_f32(in[b].scale);
    for (int j = 0; j < 32; ++j) x[b * 32 + j] = d * in[b].q[j];
  }
}

void dequantize_q4_0(const BlockQ4_0* in, float* x, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float d = f16_to_f32(in[b].scale);
    for (int j = 0; j < 16; ++j) {
      x[b * 32 + j] = d * ((in[b].q[j] & 0x0f) - 8);
      x[b * 32 + j + 16] = d * ((in[b].q[j] >> 4) - 8);
    }
  }
}

}  // namespace tinyemo
