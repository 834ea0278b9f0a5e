// GGUF-compatible block quantisation: Q8_0, Q4_0 (blocks of 32) and llama.cpp's
// k-quants Q4_K, Q5_K, Q6_K (super-blocks of 256): layouts and the scalar
// reference quantise/dequantise routines.
#pragma once

#include <cstdint>

#include "core/dtype.h"

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

// ---- k-quants (ggml's block_q4_K / block_q5_K / block_q6_K, byte for byte) ------
//
// Q4_K / Q5_K: 8 sub-blocks of 32 weights, x = d * sc[j] * q - dmin * m[j] with
// 6-bit sc[j], m[j] packed in 12 bytes (kquant_scale_min) and q in 0..15 / 0..31.
// Codes: qs byte 32 c + l holds element 64 c + l in its low nibble and element
// 64 c + 32 + l in its high one; Q5_K's fifth bit of element 64 c + l is bit 2 c of
// qh[l], of element 64 c + 32 + l bit 2 c + 1.
struct BlockQ4_K {
  uint16_t d;          // f16 scale of the sub-block scales
  uint16_t dmin;       // f16 scale of the sub-block mins
  uint8_t scales[12];  // 8 x 6-bit scale, 8 x 6-bit min
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ4_K) == 144);

struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 16 sub-blocks of 16 weights, x = d * scales[j] * (q - 32), q in 0..63.
// In each half h (128 elements) and for l < 32: ql[64 h + l] holds elements
// 128 h + l (low nibble) and 128 h + 64 + l (high), ql[64 h + 32 + l] elements
// 128 h + 32 + l and 128 h + 96 + l; qh[32 h + l] holds the two high bits of
// elements 128 h + l, + 32, + 64, + 96 at bits 0, 2, 4, 6.
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;  // f16
};
static_assert(sizeof(BlockQ6_K) == 210);

// Sub-block j's 6-bit scale and min from Q4_K/Q5_K's 12 packed bytes.
inline void kquant_scale_min(const uint8_t* packed, int j, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = packed[j] & 63;
    *min = packed[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((packed[j + 4] & 0x0f) | ((packed[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((packed[j + 4] >> 4) | ((packed[j] >> 6) << 4));
  }
}

// n must be a multiple of 256. The quantisers follow llama.cpp's reference
// quantisation (quantize_row_q*_K_ref, no importance matrix): per sub-block a
// weighted least-squares search for scale and min, then the sub-block scales
// quantised against the super-block's.
void quantize_q4_k(const float* x, BlockQ4_K* out, int64_t n);
void quantize_q5_k(const float* x, BlockQ5_K* out, int64_t n);
void quantize_q6_k(const float* x, BlockQ6_K* out, int64_t n);
void dequantize_q4_k(const BlockQ4_K* in, float* x, int64_t n);
void dequantize_q5_k(const BlockQ5_K* in, float* x, int64_t n);
void dequantize_q6_k(const BlockQ6_K* in, float* x, int64_t n);

// ---- Row-interleaved layouts (DType::Q8_0x16, DType::Q4_0x16) ----------------
//
// A [rows, cols] matrix with rows % 16 == 0 is stored as rows / 16 panels of 16
// rows, one after another. A panel holds its blocks column by column, two at a
// time (a last odd block alone):
//   [16 f16 scales of block b][16 scales of block b+1][codes of b][codes of b+1]
// with row r's scale at index r. A block's codes are 4-byte groups, row r's
// group g at byte 64 g + 4 r:
//   q8_0: 8 groups; group g = elements 4g..4g+3, + 128 (stored unsigned);
//   q4_0: 4 groups; group g = the block's bytes 4g..4g+3 as stored (elements
//         4g+j in the low nibbles, 16+4g+j in the high ones).
// One 64-byte load thus holds the same 4 elements of 16 rows: the decode kernel
// multiplies it with 4 activation bytes broadcast to 16 row sums at once, and a
// panel is one sequential stream (docs/perf/kernels.md). The bytes per matrix equal
// the row-major layout's.
inline constexpr int64_t kInterleavedRows = 16;

// Byte offsets, inside a panel, of block b's scales and codes (nb blocks per row,
// code_bytes = 16 x the block's code bytes: 512 for q8_0, 256 for q4_0).
struct InterleavedOffsets {
  int64_t scales, codes;
};
constexpr InterleavedOffsets interleaved_offsets(int64_t b, int64_t nb, int64_t code_bytes) {
  const int64_t first = b - b % 2, in_pair = nb - first < 2 ? 1 : 2;
  const int64_t base = first * (2 * kInterleavedRows + code_bytes);
  return {base + (b % 2) * 2 * kInterleavedRows, base + in_pair * 2 * kInterleavedRows + (b % 2) * code_bytes};
}

// `interleaved` is DType::Q8_0x16 or DType::Q4_0x16; nb blocks per row.
// rows x nb row-major blocks of dtype_of_rows(interleaved) -> the interleaved layout (rows % 16 == 0).
void interleave_rows(DType interleaved, const void* in, void* out, int64_t rows, int64_t nb);
// Blocks [b0, b1) of row `row`, back in the row-major layout.
void interleaved_row_blocks(DType interleaved, const void* in, int64_t nb, int64_t row, int64_t b0, int64_t b1,
                            void* out);
// Elements [32 b0, 32 b1) of row `row` as f32.
void dequantize_interleaved_row(DType interleaved, const void* in, int64_t nb, int64_t row, int64_t b0, int64_t b1,
                                float* out);

// n must be a multiple of 32. Rounding follows ggml's reference quantisers.
void quantize_q8_0(const float* x, BlockQ8_0* out, int64_t n);
void quantize_q4_0(const float* x, BlockQ4_0* out, int64_t n);
void dequantize_q8_0(const BlockQ8_0* in, float* x, int64_t n);
void dequantize_q4_0(const BlockQ4_0* in, float* x, int64_t n);

}  // namespace tinyemo
