// GGUF-compatible block quantisation (Q8_0, Q4_0): layouts and the scalar
// reference quantise/dequantise routines.
#pragma once

#include <cstdint>

namespace tinyemo {

struct BlockQ8_0 {
  uint16_t scale;  // f16
  int8_t q[32];    // x = scale * q
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ4_0 {
  uint16_t scale;  // f16
  uint8_t q[16];   // element j in the low nibble of q[j], element j+16 in the high one; x = scale * (code - 8)
};
static_assert(sizeof(BlockQ4_0) == 18);

// n must be a multiple of 32. Rounding follows ggml's reference quantisers.
void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t n);
void quantize_q4_0(const float* x, BlockQ4_0* out, int64_t n);
void dequantize_q8_0(const BlockQ8_0* in, float* x, int64_t n);
void dequantize_q4_0(const BlockQ4_0* in, float* x, int64_t n);

}  // namespace tinyemo
