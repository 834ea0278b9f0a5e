// Element types of tensors, with the conversions between them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/isa.h"

namespace tinyemo {

enum class DType : uint8_t {
  F32,
  F16,
  BF16,
  F64,
  I64,
  I32,
  I16,
  I8,
  U8,
  Bool,
  // Block-quantised types (GGUF layouts): 32 weights per block, one scale.
  Q8_0,  // block: f16 scale + 32 x int8               (34 bytes)
  Q4_0,  // block: f16 scale + 16 bytes of 4-bit codes (18 bytes)
  // The same blocks with 16 rows interleaved (core/quant.h): the layout the
  // decode mat-vec streams. Only whole [rows, cols] matrices with rows % 16 == 0
  // (Tensor::to converts to and from them); single rows are not addressable.
  Q8_0x16,
  Q4_0x16,
  // llama.cpp's k-quants: super-blocks of 256 weights in 8 (Q4_K, Q5_K) or 16
  // (Q6_K) sub-blocks with quantised scales (core/quant.h).
  Q4_K,  // 144 bytes per 256
  Q5_K,  // 176 bytes per 256
  Q6_K,  // 210 bytes per 256
  // Weight matrices [rows, cols] packed once for the GEMM (core/matmul.h
  // pack_linear_weight), so that no call re-packs them: 32 rows side by side.
  // rows % 32 == 0; single rows are not addressable (Tensor::to converts back).
  F32x32,   // panel p (rows 32p..32p+31): [cols][32] f32
  BF16x32,  // panel p: [cols / 2][32][2] bf16, pairs along cols (vdpbf16ps's operand); cols % 2 == 0
};

inline constexpr int64_t kQuantBlock = 32;    // Q8_0, Q4_0
inline constexpr int64_t kKQuantBlock = 256;  // Q4_K, Q5_K, Q6_K

// Bytes of one element; for block types, bytes of one block.
size_t dtype_size(DType t);
bool dtype_is_quantized(DType t);  // any block type (32 or 256 elements per block)
bool dtype_is_kquant(DType t);     // Q4_K, Q5_K, Q6_K
// Elements per storage unit: 1, 32 (Q8_0, Q4_0 and their interleaved layouts) or 256 (k-quants).
int64_t dtype_block_elems(DType t);
// Q8_0 for Q8_0x16, Q4_0 for Q4_0x16, F32 for F32x32, BF16 for BF16x32, t
// itself otherwise: the row-major dtype whose blocks or elements a layout holds.
DType dtype_of_rows(DType t);
// Rows stored side by side: 16 (Q8_0x16, Q4_0x16), 32 (F32x32, BF16x32), else 1.
int64_t dtype_panel_rows(DType t);
bool dtype_is_gemm_panels(DType t);  // F32x32, BF16x32
// Bytes needed for n elements (n must be a multiple of the block for block types).
size_t dtype_bytes(DType t, int64_t n);
std::string_view dtype_name(DType t);
// Parses names as tinyemo prints them ("f32", "bf16", "q8_0", ...);
// returns false when unknown.
bool parse_dtype(std::string_view name, DType* out);

// Scalar conversions (round to nearest even, as PyTorch does).
inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Bulk conversion between any two of F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool
// (block types: dequantisation to F32 and quantisation from F32).
TINYEMO_ISA_BEGIN
void convert(DType from, const void* src, DType to, void* dst, int64_t n);
TINYEMO_ISA_END

}  // namespace tinyemo
