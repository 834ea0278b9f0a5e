#include "core/dtype.h"

#include <cmath>

#include "core/error.h"
#include "core/quant.h"

namespace tinyemo {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::F64: return 8;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::I16: return 2;
    case DType::I8: return 1;
    case DType::U8: return 1;
    case DType::Bool: return 1;
    case DType::Q8_0:
    case DType::Q8_0x16: return sizeof(BlockQ8_0);
    case DType::Q4_0:
    case DType::Q4_0x16: return sizeof(BlockQ4_0);
    case DType::Q4_K: return sizeof(BlockQ4_K);
    case DType::Q5_K: return sizeof(BlockQ5_K);
    case DType::Q6_K: return sizeof(BlockQ6_K);
    case DType::F32x32: return 4;
    case DType::BF16x32: return 2;
  }
  return 0;
}

bool dtype_is_kquant(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }

bool dtype_is_quantized(DType t) {
  return dtype_of_rows(t) == DType::Q8_0 || dtype_of_rows(t) == DType::Q4_0 || dtype_is_kquant(t);
}

int64_t dtype_block_elems(DType t) {
  if (dtype_is_kquant(t)) return kKQuantBlock;
  return dtype_is_quantized(t) ? kQuantBlock : 1;
}

DType dtype_of_rows(DType t) {
  if (t == DType::Q8_0x16) return DType::Q8_0;
  if (t == DType::Q4_0x16) return DType::Q4_0;
  if (t == DType::F32x32) return DType::F32;
  if (t == DType::BF16x32) return DType::BF16;
  return t;
}

bool dtype_is_gemm_panels(DType t) { return t == DType::F32x32 || t == DType::BF16x32; }

int64_t dtype_panel_rows(DType t) {
  if (dtype_is_gemm_panels(t)) return 32;
  return dtype_of_rows(t) != t ? kInterleavedRows : 1;
}

size_t dtype_bytes(DType t, int64_t n) {
  if (dtype_is_quantized(t)) {
    const int64_t block = dtype_block_elems(t);
    TE_CHECK(n % block == 0, "{} tensors need a multiple of {} elements, got {}", dtype_name(t), block, n);
    return static_cast<size_t>(n / block) * dtype_size(t);
  }
  return static_cast<size_t>(n) * dtype_size(t);
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::F64: return "f64";
    case DType::I64: return "i64";
    case DType::I32: return "i32";
    case DType::I16: return "i16";
    case DType::I8: return "i8";
    case DType::U8: return "u8";
    case DType::Bool: return "bool";
    case DType::Q8_0: return "q8_0";
    case DType::Q4_0: return "q4_0";
    case DType::Q8_0x16: return "q8_0x16";
    case DType::Q4_0x16: return "q4_0x16";
    case DType::Q4_K: return "q4_k";
    case DType::Q5_K: return "q5_k";
    case DType::Q6_K: return "q6_k";
    case DType::F32x32: return "f32x32";
    case DType::BF16x32: return "bf16x32";
  }
  return "?";
}

bool parse_dtype(std::string_view name, DType* out) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64, DType::I32, DType::I16,
                  DType::I8, DType::U8, DType::Bool, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K,
                  DType::Q6_K}) {
    if (dtype_name(t) == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs >= 0x7f800000u) return sign | (abs > 0x7f800000u ? 0x7e00u : 0x7c00u);
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: infinity
  if (abs < 0x38800000u) {                          // below the smallest normal f16: subnormal
    if (abs < 0x33000000u) return sign;             // below half of the smallest subnormal
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // 14..24
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
    return sign | static_cast<uint16_t>(half);
  }
  uint32_t v = abs - 0x38000000u;  // rebias exponent 127 -> 15
  v += 0xfffu + ((v >> 13) & 1u);
  return sign | static_cast<uint16_t>(v >> 13);
}

}  // namespace tinyemo
