// GGUF-compatible block quantisation (Q8_0, Q4_0): layouts and the scalar
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
