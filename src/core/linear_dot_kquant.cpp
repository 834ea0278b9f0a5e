// linear() for a few activation rows with llama.cpp's k-quant weights (Q4_K,
// Q5_K, Q6_K; layouts in core/quant.h): the decode mat-vec.
//
// As llama.cpp does for k-quants, the activations are quantised to 8 bits per
// super-block of 256 (one scale, max|x| / 127) with the sums of their codes per
// 16 and per 32. A super-block of a weight row is then integer work: its codes
// (unsigned, 0..15 / 0..31 / 0..63) times the activation codes in pairs
// (vpmaddubsw), each pair sum times its sub-block's integer scale
// (vpdpwssd / vpmaddwd), summed in 32 bits; one float multiply by
// d x activation scale per super-block. The offsets (Q4_K/Q5_K's mins, Q6_K's
// -32) are the sub-block code sums of the activations times the weights' mins
// or scales. AVX-512 BW (VNNI when present); other builds take the packed GEMM,
// which dequantises with the scalar reference.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>

#include "core/error.h"
#include "core/linear_dot_tiles.h"
#include "core/matmul_internal.h"
#include "core/quant.h"
#include "core/simd.h"

namespace tinyemo {
TINYEMO_ISA_BEGIN
namespace detail {

namespace {

#if TINYEMO_AVX512

// One super-block of one activation row.
struct alignas(64) KActivations {
  int8_t q[kKQuantBlock];
  int16_t sums16[16];  // of q over each 16 elements (Q6_K's sub-blocks)
  int16_t sums32[8];   // of q over each 32 elements (Q4_K/Q5_K's sub-blocks)
  float d;
};

void quantize_activations(const float* x, int64_t K, KActivations* out) {
  for (int64_t b = 0; b < K / kKQuantBlock; ++b, x += kKQuantBlock) {
    KActivations& a = out[b];
    __m512 amax = _mm512_setzero_ps();
    for (int i = 0; i < 16; ++i) amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * i)));
    a.d = simd::hmax(amax) / 127.0f;
    const __m512 inverse = _mm512_set1_ps(a.d != 0.0f ? 1.0f / a.d : 0.0f);
    for (int i = 0; i < 16; ++i) {
      const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * i), inverse));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(a.q + 16 * i), _mm512_cvtsepi32_epi8(q));
      a.sums16[i] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
    for (int j = 0; j < 8; ++j) a.sums32[j] = static_cast<int16_t>(a.sums16[2 * j] + a.sums16[2 * j + 1]);
  }
}

// acc + the pairwise products of 16-bit lanes (vpdpwssd where the CPU has VNNI).
inline __m512i add_pair_products(__m512i acc, __m512i a, __m512i b) {
#if defined(__AVX512VNNI__)
  return _mm512_dpwssd_epi32(acc, a, b);
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}

// 16-bit lane index vectors, built once.
struct Lanes {
  __m512i nibble_shift;  // words 0-15: 0, words 16-31: 4 (low nibbles, then high ones, of 32 bytes)
  __m512i q5_bit[4];     // words 0-15: 2c, 16-31: 2c + 1 (Q5_K's fifth bits of chunk c)
  __m512i q6_bits[2];    // [0]: words 0-15: 0, 16-31: 2; [1]: 4 and 6 (Q6_K's high bits)
  __m512i pair_scale[4];  // Q4_K/Q5_K: word i -> sub-block 2c + i / 16
  __m512i quad_scale[4];  // Q6_K: word i -> sub-block 4k + i / 8
  Lanes() {
    alignas(64) uint16_t v[32];
    auto make = [&](auto f) {
      for (int i = 0; i < 32; ++i) v[i] = static_cast<uint16_t>(f(i));
      return _mm512_load_si512(v);
    };
    nibble_shift = make([](int i) { return i < 16 ? 0 : 4; });
    for (int c = 0; c < 4; ++c) {
      q5_bit[c] = make([c](int i) { return 2 * c + i / 16; });
      pair_scale[c] = make([c](int i) { return 2 * c + i / 16; });
      quad_scale[c] = make([c](int i) { return 4 * c + i / 8; });
    }
    q6_bits[0] = make([](int i) { return i < 16 ? 0 : 2; });
    q6_bits[1] = make([](int i) { return i < 16 ? 4 : 6; });
  }
};
const Lanes& lanes() {
  static const Lanes l;
  return l;
}

// 32 code bytes as 64 nibbles in element order (low nibbles, then high ones).
inline __m512i unpack_nibbles(const uint8_t* p, const Lanes& l) {
  const __m512i both = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_and_si512(_mm512_srlv_epi16(both, l.nibble_shift), _mm512_set1_epi8(0x0f));
}

// Q4_K / Q5_K's 6-bit scales and mins as 8 bytes each.
inline void unpack_scales_mins(const uint8_t* packed, uint64_t* scales, uint64_t* mins) {
  uint32_t a[3];
  std::memcpy(a, packed, 12);
  const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, two = 0x03030303;
  const uint32_t s_lo = a[0] & low6, m_lo = a[1] & low6;
  const uint32_t s_hi = (a[2] & low4) | (((a[0] >> 6) & two) << 4);
  const uint32_t m_hi = ((a[2] >> 4) & low4) | (((a[1] >> 6) & two) << 4);
  *scales = s_lo | (uint64_t{s_hi} << 32);
  *mins = m_lo | (uint64_t{m_hi} << 32);
}

// A weight super-block decoded for the dot products with S activation rows.
struct DecodedSuperBlock {
  __m512i codes[4];   // 64 codes each, elements 64 k .. 64 k + 63
  __m512i scales[4];  // the matching 16-bit sub-block scale of each code pair
  __m128i mins;       // Q4_K/Q5_K: 8 x 16-bit mins; Q6_K: unused
  __m256i scales16;   // Q6_K: the 16 sub-block scales (for the -32 offset)
  float d, dmin;
};

template <DType T>
inline void decode(const uint8_t* block, const Lanes& l, DecodedSuperBlock* w) {
  if constexpr (T == DType::Q4_K || T == DType::Q5_K) {
    using Block = std::conditional_t<T == DType::Q4_K, BlockQ4_K, BlockQ5_K>;
    const Block* b = reinterpret_cast<const Block*>(block);
    uint64_t scales, mins;
    unpack_scales_mins(b->scales, &scales, &mins);
    const __m512i sc = _mm512_zextsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(scales))));
    w->mins = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(mins)));
    __m512i high_bits = _mm512_setzero_si512();
    if constexpr (T == DType::Q5_K)
      high_bits = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qh)));
    for (int c = 0; c < 4; ++c) {
      w->codes[c] = unpack_nibbles(b->qs + 32 * c, l);
      if constexpr (T == DType::Q5_K) {
        const __m512i bit = _mm512_and_si512(_mm512_srlv_epi16(high_bits, l.q5_bit[c]), _mm512_set1_epi8(1));
        w->codes[c] = _mm512_or_si512(w->codes[c], _mm512_slli_epi16(bit, 4));
      }
      w->scales[c] = _mm512_permutexvar_epi16(l.pair_scale[c], sc);
    }
    w->d = _cvtsh_ss(b->d);
    w->dmin = _cvtsh_ss(b->dmin);
  } else {
    const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(block);
    w->scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales)));
    const __m512i sc = _mm512_zextsi256_si512(w->scales16);
    const __m512i nibble = _mm512_set1_epi8(0x0f), two_bits = _mm512_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qh + 32 * h)));
      const __m512i high0 = _mm512_and_si512(_mm512_srlv_epi16(qh, l.q6_bits[0]), two_bits);
      const __m512i high1 = _mm512_and_si512(_mm512_srlv_epi16(qh, l.q6_bits[1]), two_bits);
      w->codes[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, nibble), _mm512_slli_epi16(high0, 4));
      w->codes[2 * h + 1] =
          _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), nibble), _mm512_slli_epi16(high1, 4));
    }
    for (int k = 0; k < 4; ++k) w->scales[k] = _mm512_permutexvar_epi16(l.quad_scale[k], sc);
    w->d = _cvtsh_ss(b->d);
    w->dmin = 0.0f;
  }
}

// acc += the super-block's dot product with one activation super-block.
template <DType T>
inline __m512 accumulate(const DecodedSuperBlock& w, const KActivations& a, __m512 acc) {
  __m512i sums = _mm512_setzero_si512();
  for (int k = 0; k < 4; ++k) {
    const __m512i pairs = _mm512_maddubs_epi16(w.codes[k], _mm512_load_si512(a.q + 64 * k));
    sums = add_pair_products(sums, pairs, w.scales[k]);
  }
  if constexpr (T == DType::Q6_K) {
    // Codes are value + 32: remove 32 x sum over sub-blocks of scale x activation code sum.
    const __m256i offset = _mm256_madd_epi16(w.scales16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.sums16)));
    sums = _mm512_sub_epi32(sums, _mm512_zextsi256_si512(_mm256_slli_epi32(offset, 5)));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_set1_ps(w.d * a.d), acc);
  } else {
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_set1_ps(w.d * a.d), acc);
    const __m128i mins = _mm_madd_epi16(w.mins, _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.sums32)));
    return _mm512_fnmadd_ps(_mm512_zextps128_ps512(_mm_cvtepi32_ps(mins)), _mm512_set1_ps(w.dmin * a.d), acc);
  }
}

template <DType T, int R, int S>
void dot_tile(const BOperand& w, int64_t n0, int64_t nb, const KActivations* xa, float* out) {
  const Lanes& l = lanes();
  const int64_t block_bytes = static_cast<int64_t>(dtype_size(T));
  __m512 acc[R][S];
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) acc[r][s] = _mm512_setzero_ps();
  const char* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = row_ptr(w, n0 + r);
  const int64_t tile_bytes = R * w.ld;
  for (int64_t b = 0; b < nb; ++b) {
    for (int r = 0; r < R; ++r) {
      const char* block = rows[r] + b * block_bytes;
      for (int64_t line = 0; line < block_bytes; line += 64) _mm_prefetch(block + tile_bytes + line, _MM_HINT_T0);
      DecodedSuperBlock d;
      decode<T>(reinterpret_cast<const uint8_t*>(block), l, &d);
      for (int s = 0; s < S; ++s) acc[r][s] = accumulate<T>(d, xa[s * nb + b], acc[r][s]);
    }
  }
  for (int s = 0; s < S; ++s)
    for (int r = 0; r < R; ++r) out[s * R + r] = simd::hsum(acc[r][s]);
}

template <DType T>
void dot_kquant(const float* x, int64_t M, int64_t ldx, const BOperand& w, int64_t N, int64_t K, const float* bias,
                float* y, int64_t ldy) {
  const int64_t nb = K / kKQuantBlock;
  struct Free {
    void operator()(KActivations* p) const { std::free(p); }
  };
  std::unique_ptr<KActivations, Free> xa(
      static_cast<KActivations*>(std::aligned_alloc(64, static_cast<size_t>(M * nb) * sizeof(KActivations))));
  TE_CHECK(xa != nullptr, "out of memory quantising {} x {} activations", M, K);
  for (int64_t m = 0; m < M; ++m) quantize_activations(x + m * ldx, K, xa.get() + m * nb);
  for_row_tasks(N, w.ld, [&](int64_t n0, int64_t n1) {
    for_activation_groups(M, [&]<int S>(int64_t m) {
      const KActivations* xm = xa.get() + m * nb;
      dot_rows<S>(n0, n1, y + m * ldy, ldy, bias,
                  [&]<int R, int S_>(int64_t n, float* out) { dot_tile<T, R, S_>(w, n, nb, xm, out); });
    });
  });
}

constexpr bool kHasKQuantDot = true;
#else
constexpr bool kHasKQuantDot = false;
#endif

}  // namespace

bool has_kquant_dot() { return kHasKQuantDot; }

void linear_rows_dot_kquant(const float* x, int64_t M, int64_t ldx, const BOperand& w, int64_t N, int64_t K,
                            const float* bias, float* y, int64_t ldy) {
  TE_CHECK(K % kKQuantBlock == 0, "linear: {} weights need K % {} == 0, got K={}", dtype_name(w.dtype), kKQuantBlock,
           K);
#if TINYEMO_AVX512
  switch (w.dtype) {
    case DType::Q4_K: return dot_kquant<DType::Q4_K>(x, M, ldx, w, N, K, bias, y, ldy);
    case DType::Q5_K: return dot_kquant<DType::Q5_K>(x, M, ldx, w, N, K, bias, y, ldy);
    case DType::Q6_K: return dot_kquant<DType::Q6_K>(x, M, ldx, w, N, K, bias, y, ldy);
    default: break;
  }
#else
  (void)x, (void)M, (void)ldx, (void)N, (void)bias, (void)y, (void)ldy;
#endif
  fail("linear: no k-quant dot-product kernel for {} weights in this build", dtype_name(w.dtype));
}

}  // namespace detail
TINYEMO_ISA_END
}  // namespace tinyemo
