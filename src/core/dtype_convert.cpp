// convert(): the bulk conversions between element types, with AVX-512 paths
// for the 16-bit ones (an ISA-sensitive file, cmake/Isa.cmake).
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant.h"
#include "core/simd.h"

namespace tinyemo {
TINYEMO_ISA_BEGIN

namespace {

template <class T>
double load_as_double(const void* src, int64_t i) {
  T v;
  std::memcpy(&v, static_cast<const char*>(src) + i * sizeof(T), sizeof(T));
  return static_cast<double>(v);
}

double load_element(DType t, const void* src, int64_t i) {
  switch (t) {
    case DType::F32: return load_as_double<float>(src, i);
    case DType::F64: return load_as_double<double>(src, i);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
    case DType::I64: return load_as_double<int64_t>(src, i);
    case DType::I32: return load_as_double<int32_t>(src, i);
    case DType::I16: return load_as_double<int16_t>(src, i);
    case DType::I8: return load_as_double<int8_t>(src, i);
    case DType::U8: return load_as_double<uint8_t>(src, i);
    case DType::Bool: return static_cast<const uint8_t*>(src)[i] != 0 ? 1.0 : 0.0;
    default: fail("cannot convert from {} element-wise", dtype_name(t));
  }
}

template <class T>
void store_as(void* dst, int64_t i, double v) {
  const T x = static_cast<T>(v);
  std::memcpy(static_cast<char*>(dst) + i * sizeof(T), &x, sizeof(T));
}

void store_element(DType t, void* dst, int64_t i, double v) {
  switch (t) {
    case DType::F32: store_as<float>(dst, i, v); break;
    case DType::F64: store_as<double>(dst, i, v); break;
    case DType::F16: static_cast<uint16_t*>(dst)[i] = f32_to_f16(static_cast<float>(v)); break;
    case DType::BF16: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(static_cast<float>(v)); break;
    case DType::I64: store_as<int64_t>(dst, i, v); break;
    case DType::I32: store_as<int32_t>(dst, i, v); break;
    case DType::I16: store_as<int16_t>(dst, i, v); break;
    case DType::I8: store_as<int8_t>(dst, i, v); break;
    case DType::U8: store_as<uint8_t>(dst, i, v); break;
    case DType::Bool: static_cast<uint8_t*>(dst)[i] = v != 0.0; break;
    default: fail("cannot convert to {} element-wise", dtype_name(t));
  }
}

}  // namespace

namespace {

// Bulk 16-bit <-> f32 conversions, bit-identical to the scalar ones above
// (round to nearest even; NaN stays NaN; f16 subnormals exact), 16 at a time.
void f16_to_f32_n(const uint16_t* in, float* out, int64_t n) {
  int64_t i = 0;
#if TINYEMO_AVX512
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, simd::load_f16(in + i));
#endif
  for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

void bf16_to_f32_n(const uint16_t* in, float* out, int64_t n) {
  int64_t i = 0;
#if TINYEMO_AVX512
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, simd::load_bf16(in + i));
#endif
  for (; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}

void f32_to_f16_n(const float* in, uint16_t* out, int64_t n) {
  int64_t i = 0;
#if TINYEMO_AVX512
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; i < n; ++i) out[i] = f32_to_f16(in[i]);
}

void f32_to_bf16_n(const float* in, uint16_t* out, int64_t n) {
  int64_t i = 0;
#if TINYEMO_AVX512
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm512_cvtepi32_epi16(simd::round_to_bf16_bits(_mm512_loadu_ps(in + i))));
#endif
  for (; i < n; ++i) out[i] = f32_to_bf16(in[i]);
}

}  // namespace

void convert(DType from, const void* src, DType to, void* dst, int64_t n) {
  if (from == to) {
    std::memcpy(dst, src, dtype_bytes(from, n));
    return;
  }
  // Fast paths for the conversions on hot paths (weight loading, feature files).
  if (to == DType::F32) {
    float* out = static_cast<float*>(dst);
    if (from == DType::F16) return f16_to_f32_n(static_cast<const uint16_t*>(src), out, n);
    if (from == DType::BF16) return bf16_to_f32_n(static_cast<const uint16_t*>(src), out, n);
    if (from == DType::Q8_0) return dequantize_q8_0(static_cast<const BlockQ8_0*>(src), out, n);
    if (from == DType::Q4_0) return dequantize_q4_0(static_cast<const BlockQ4_0*>(src), out, n);
    if (from == DType::Q4_K) return dequantize_q4_k(static_cast<const BlockQ4_K*>(src), out, n);
    if (from == DType::Q5_K) return dequantize_q5_k(static_cast<const BlockQ5_K*>(src), out, n);
    if (from == DType::Q6_K) return dequantize_q6_k(static_cast<const BlockQ6_K*>(src), out, n);
  }
  if (from == DType::F32) {
    const float* in = static_cast<const float*>(src);
    if (to == DType::F16) return f32_to_f16_n(in, static_cast<uint16_t*>(dst), n);
    if (to == DType::BF16) return f32_to_bf16_n(in, static_cast<uint16_t*>(dst), n);
    if (to == DType::Q8_0) return quantize_q8_0(in, static_cast<BlockQ8_0*>(dst), n);
    if (to == DType::Q4_0) return quantize_q4_0(in, static_cast<BlockQ4_0*>(dst), n);
    if (to == DType::Q4_K) return quantize_q4_k(in, static_cast<BlockQ4_K*>(dst), n);
    if (to == DType::Q5_K) return quantize_q5_k(in, static_cast<BlockQ5_K*>(dst), n);
    if (to == DType::Q6_K) return quantize_q6_k(in, static_cast<BlockQ6_K*>(dst), n);
  }
  TE_CHECK(!dtype_is_quantized(from) && !dtype_is_quantized(to), "cannot convert {} to {}",
           dtype_name(from), dtype_name(to));
  for (int64_t i = 0; i < n; ++i) store_element(to, dst, i, load_element(from, src, i));
}

TINYEMO_ISA_END
}  // namespace tinyemo
