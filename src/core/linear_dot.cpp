// linear() for a few activation rows (the decode mat-vec): each weight row is
// read once from memory and dotted with every activation row while it is in L1,
// so the speed is bounded by memory bandwidth, not FLOPs.
//
// Quantised weights follow ggml: the activations are quantised to 8 bits per
// block of 32 (scale = max|x| / 127) and blocks are multiplied with AVX512-VNNI
// integer dot products (vpdpbusd: unsigned x signed bytes). The weights are made
// unsigned (q8: w + 128, q4: the 0..15 codes) and the offset is removed with the
// activation block sums, precomputed once per row.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>

#include "core/error.h"
#include "core/matmul_internal.h"
#include "core/quant.h"
#include "core/simd.h"
#include "core/thread_pool.h"

namespace tinyemo::detail {

namespace {

constexpr int64_t kRowsPerTile = 4;  // weight rows per inner kernel call
constexpr int64_t kMaxDotRows = 4;   // activation rows per inner kernel call (more: another pass over L2)

// Weight rows [n0, n1) for each thread task: enough tasks to balance a shared
// machine, few enough that the per-task overhead stays small.
int64_t task_rows(int64_t N) {
  const int64_t want_tasks = 4 * num_threads();
  return std::max<int64_t>(32, (N + want_tasks - 1) / want_tasks + kRowsPerTile - 1) / kRowsPerTile * kRowsPerTile;
}

template <class Body>
void for_row_tasks(int64_t N, Body&& body) {
  const int64_t rows = task_rows(N);
  thread_pool().run((N + rows - 1) / rows, [&](int64_t t, int) { body(t * rows, std::min(N, (t + 1) * rows)); });
}

const char* row_ptr(const BOperand& w, int64_t n) { return static_cast<const char*>(w.data) + n * w.ld; }

#if TINYEMO_AVX512

// ---- f32 / bf16 / f16 weights --------------------------------------------------

template <DType T>
inline __m512 load_w(const char* row, int64_t k) {
  if constexpr (T == DType::F32) return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + k);
  if constexpr (T == DType::BF16) return simd::load_bf16(reinterpret_cast<const uint16_t*>(row) + k);
  if constexpr (T == DType::F16) return simd::load_f16(reinterpret_cast<const uint16_t*>(row) + k);
}
template <DType T>
inline __m512 maskz_load_w(__mmask16 m, const char* row, int64_t k) {
  if constexpr (T == DType::F32) return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + k);
  if constexpr (T == DType::BF16) return simd::maskz_load_bf16(m, reinterpret_cast<const uint16_t*>(row) + k);
  if constexpr (T == DType::F16) return simd::maskz_load_f16(m, reinterpret_cast<const uint16_t*>(row) + k);
}

// y[s][n0 + r] = W[n0 + r] . x[s] for R weight rows and S activation rows.
// Rows are short (1-8 KiB) and read R at a time, too briefly for the hardware
// prefetcher to lock on: each kernel prefetches the same bytes of the next R rows.
inline void prefetch_next_tile(const char* p, int64_t tile_bytes) {
  _mm_prefetch(p + tile_bytes, _MM_HINT_T0);
}

template <DType T, int R, int S>
void dot_tile_float(const BOperand& w, int64_t n0, int64_t K, const float* x, int64_t ldx, float* out) {
  __m512 acc[R][S];
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) acc[r][s] = _mm512_setzero_ps();
  const char* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = row_ptr(w, n0 + r);
  int64_t k = 0;
  constexpr int64_t kElemBytes = T == DType::F32 ? 4 : 2;
  const int64_t tile_bytes = R * w.ld;
  for (; k + 16 <= K; k += 16) {
    __m512 xv[S];
    for (int s = 0; s < S; ++s) xv[s] = _mm512_loadu_ps(x + s * ldx + k);
    for (int r = 0; r < R; ++r) {
      if (kElemBytes == 4 || k % 32 == 0) prefetch_next_tile(rows[r] + k * kElemBytes, tile_bytes);
      const __m512 wv = load_w<T>(rows[r], k);
      for (int s = 0; s < S; ++s) acc[r][s] = _mm512_fmadd_ps(wv, xv[s], acc[r][s]);
    }
  }
  if (k < K) {
    const __mmask16 m = simd::first_lanes(K - k);
    __m512 xv[S];
    for (int s = 0; s < S; ++s) xv[s] = _mm512_maskz_loadu_ps(m, x + s * ldx + k);
    for (int r = 0; r < R; ++r) {
      const __m512 wv = maskz_load_w<T>(m, rows[r], k);
      for (int s = 0; s < S; ++s) acc[r][s] = _mm512_fmadd_ps(wv, xv[s], acc[r][s]);
    }
  }
  for (int s = 0; s < S; ++s)
    for (int r = 0; r < R; ++r) out[s * R + r] = simd::hsum(acc[r][s]);
}

template <DType T, int S>
void dot_rows_float(const BOperand& w, int64_t n0, int64_t n1, int64_t K, const float* x, int64_t ldx,
                    float* y, int64_t ldy, const float* bias) {
  float out[S * kRowsPerTile];
  for (int64_t n = n0; n < n1;) {
    const int64_t r = std::min<int64_t>(kRowsPerTile, n1 - n);
    if (r == kRowsPerTile) {
      dot_tile_float<T, kRowsPerTile, S>(w, n, K, x, ldx, out);
      for (int s = 0; s < S; ++s)
        for (int64_t i = 0; i < r; ++i) y[s * ldy + n + i] = out[s * kRowsPerTile + i] + (bias ? bias[n + i] : 0.0f);
    } else {
      for (int64_t i = 0; i < r; ++i) {
        dot_tile_float<T, 1, S>(w, n + i, K, x, ldx, out);
        for (int s = 0; s < S; ++s) y[s * ldy + n + i] = out[s] + (bias ? bias[n + i] : 0.0f);
      }
    }
    n += r;
  }
}

template <DType T>
void dot_float(const float* x, int64_t M, int64_t ldx, const BOperand& w, int64_t N, int64_t K, const float* bias,
               float* y, int64_t ldy) {
  for_row_tasks(N, [&](int64_t n0, int64_t n1) {
    for (int64_t m = 0; m < M; m += kMaxDotRows) {
      const float* xm = x + m * ldx;
      float* ym = y + m * ldy;
      switch (std::min(kMaxDotRows, M - m)) {
        case 1: dot_rows_float<T, 1>(w, n0, n1, K, xm, ldx, ym, ldy, bias); break;
        case 2: dot_rows_float<T, 2>(w, n0, n1, K, xm, ldx, ym, ldy, bias); break;
        case 3: dot_rows_float<T, 3>(w, n0, n1, K, xm, ldx, ym, ldy, bias); break;
        default: dot_rows_float<T, 4>(w, n0, n1, K, xm, ldx, ym, ldy, bias); break;
      }
    }
  });
}

#endif  // TINYEMO_AVX512

#if TINYEMO_AVX512 && defined(__AVX512VNNI__)

// ---- quantised weights: 8-bit activations and VNNI -------------------------------

// One activation row quantised in pairs of blocks (64 values), each pair as
// three 64-byte vectors: the int8 codes, the f32 scales (lanes 0-7: block 2p,
// 8-15: block 2p+1) and the offset correction (-offset * sum of codes of each
// block in lanes 0 and 8), so that one vpdpbusd per pair gives the exact
// integer dot product against unsigned weights.
struct QuantizedPair {
  __m512i codes;
  __m512 scales;
  __m512i correction;
};

// Quantises x[K] (K % 32 == 0) into pairs; weight_offset is what was added to
// the signed weight codes to make them unsigned (128 for q8_0, 8 for q4_0).
void quantize_activation_row(const float* x, int64_t K, int weight_offset, QuantizedPair* out) {
  const int64_t nb = K / 32;
  for (int64_t p = 0; p < (nb + 1) / 2; ++p) {
    alignas(64) int8_t codes[64] = {};
    alignas(64) float scales[16] = {};
    alignas(64) int32_t correction[16] = {};
    for (int h = 0; h < 2 && 2 * p + h < nb; ++h) {
      const float* xb = x + (2 * p + h) * 32;
      const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
      const float amax = simd::hmax(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
      const float d = amax / 127.0f;
      const __m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
      const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
      _mm_store_si128(reinterpret_cast<__m128i*>(codes + h * 32), _mm512_cvtsepi32_epi8(q0));
      _mm_store_si128(reinterpret_cast<__m128i*>(codes + h * 32 + 16), _mm512_cvtsepi32_epi8(q1));
      for (int j = 0; j < 8; ++j) scales[h * 8 + j] = d;
      correction[h * 8] = -weight_offset * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
    out[p].codes = _mm512_load_si512(codes);
    out[p].scales = _mm512_load_ps(scales);
    out[p].correction = _mm512_load_si512(correction);
  }
}

// The weights of blocks 2p and 2p+1 of a row (the second may be missing at the
// end of an odd row) as 64 unsigned codes in the activation's order, and their scales.
template <DType T>
inline void load_weight_pair(const char* row, int64_t p, int64_t nb, __m512i* codes, __m512* scales) {
  const bool has_second = 2 * p + 1 < nb;
  if constexpr (T == DType::Q8_0) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + 2 * p;
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].q));
    const __m256i hi = has_second ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].q)) : _mm256_set1_epi8(0);
    *codes = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8(-128));
    *scales = _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss(b[0].scale)),
                                 _mm256_set1_ps(has_second ? _cvtsh_ss(b[1].scale) : 0.0f), 1);
  } else {
    const BlockQ4_0* b = reinterpret_cast<const BlockQ4_0*>(row) + 2 * p;
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].q));
    const __m128i hi = has_second ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].q)) : _mm_setzero_si128();
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
    const __m256i nib = _mm256_set1_epi8(0x0f);
    const __m256i low = _mm256_and_si256(both, nib), high = _mm256_and_si256(_mm256_srli_epi16(both, 4), nib);
    // [b0 low | b1 low | b0 high | b1 high] -> [b0 low | b0 high | b1 low | b1 high]
    const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
    *codes = _mm512_shuffle_i64x2(z, z, 0xd8);
    *scales = _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss(b[0].scale)),
                                 _mm256_set1_ps(has_second ? _cvtsh_ss(b[1].scale) : 0.0f), 1);
  }
}

template <DType T, int R, int S>
void dot_tile_quant(const BOperand& w, int64_t n0, int64_t nb, const QuantizedPair* xq, int64_t pairs_per_row,
                    float* out) {
  __m512 acc[R][S];
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) acc[r][s] = _mm512_setzero_ps();
  const char* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = row_ptr(w, n0 + r);
  const int64_t pairs = (nb + 1) / 2;
  constexpr int64_t kPairBytes = 2 * static_cast<int64_t>(T == DType::Q8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0));
  const int64_t tile_bytes = R * w.ld;
  for (int64_t p = 0; p < pairs; ++p) {
    for (int r = 0; r < R; ++r) {
      prefetch_next_tile(rows[r] + p * kPairBytes, tile_bytes);
      if (kPairBytes > 64) prefetch_next_tile(rows[r] + p * kPairBytes + 64, tile_bytes);
      __m512i wc;
      __m512 ws;
      load_weight_pair<T>(rows[r], p, nb, &wc, &ws);
      for (int s = 0; s < S; ++s) {
        const QuantizedPair& q = xq[s * pairs_per_row + p];
        const __m512i dot = _mm512_dpbusd_epi32(q.correction, wc, q.codes);
        acc[r][s] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(ws, q.scales), acc[r][s]);
      }
    }
  }
  for (int s = 0; s < S; ++s)
    for (int r = 0; r < R; ++r) out[s * R + r] = simd::hsum(acc[r][s]);
}

template <DType T, int S>
void dot_rows_quant(const BOperand& w, int64_t n0, int64_t n1, int64_t nb, const QuantizedPair* xq,
                    int64_t pairs_per_row, float* y, int64_t ldy, const float* bias) {
  float out[S * kRowsPerTile];
  for (int64_t n = n0; n < n1;) {
    const int64_t r = std::min<int64_t>(kRowsPerTile, n1 - n);
    if (r == kRowsPerTile) {
      dot_tile_quant<T, kRowsPerTile, S>(w, n, nb, xq, pairs_per_row, out);
      for (int s = 0; s < S; ++s)
        for (int64_t i = 0; i < r; ++i) y[s * ldy + n + i] = out[s * kRowsPerTile + i] + (bias ? bias[n + i] : 0.0f);
    } else {
      for (int64_t i = 0; i < r; ++i) {
        dot_tile_quant<T, 1, S>(w, n + i, nb, xq, pairs_per_row, out);
        for (int s = 0; s < S; ++s) y[s * ldy + n + i] = out[s] + (bias ? bias[n + i] : 0.0f);
      }
    }
    n += r;
  }
}

template <DType T>
void dot_quant(const float* x, int64_t M, int64_t ldx, const BOperand& w, int64_t N, int64_t K, const float* bias,
               float* y, int64_t ldy) {
  TE_CHECK(K % 32 == 0, "linear: {} weights need K % 32 == 0, got K={}", dtype_name(T), K);
  const int64_t nb = K / 32, pairs = (nb + 1) / 2;
  struct Free {
    void operator()(QuantizedPair* p) const { std::free(p); }
  };
  std::unique_ptr<QuantizedPair, Free> xq(
      static_cast<QuantizedPair*>(std::aligned_alloc(64, static_cast<size_t>(M * pairs) * sizeof(QuantizedPair))));
  TE_CHECK(xq != nullptr, "out of memory quantising {} x {} activations", M, K);
  const int offset = T == DType::Q8_0 ? 128 : 8;
  for (int64_t m = 0; m < M; ++m) quantize_activation_row(x + m * ldx, K, offset, xq.get() + m * pairs);
  for_row_tasks(N, [&](int64_t n0, int64_t n1) {
    for (int64_t m = 0; m < M; m += kMaxDotRows) {
      const QuantizedPair* xm = xq.get() + m * pairs;
      float* ym = y + m * ldy;
      switch (std::min(kMaxDotRows, M - m)) {
        case 1: dot_rows_quant<T, 1>(w, n0, n1, nb, xm, pairs, ym, ldy, bias); break;
        case 2: dot_rows_quant<T, 2>(w, n0, n1, nb, xm, pairs, ym, ldy, bias); break;
        case 3: dot_rows_quant<T, 3>(w, n0, n1, nb, xm, pairs, ym, ldy, bias); break;
        default: dot_rows_quant<T, 4>(w, n0, n1, nb, xm, pairs, ym, ldy, bias); break;
      }
    }
  });
}

constexpr bool kHasQuantDot = true;
#else
constexpr bool kHasQuantDot = false;
#endif

}  // namespace

// Crossovers measured with bench/linear_bench (few_rows_dot_vs_gemm, docs/kernels.md):
// the dot path reads W once but does S FMAs per weight vector; the packed GEMM
// pays a pass over W to pack it. Quantised weights switch later because their
// GEMM also dequantises while packing.
int64_t dot_path_max_rows(DType weight_dtype) {
  if (dtype_is_quantized(weight_dtype)) return kHasQuantDot ? 8 : 0;
  return TINYEMO_AVX512 ? 5 : 0;
}

void linear_rows_dot(const float* x, int64_t M, int64_t ldx, const BOperand& w, int64_t N, int64_t K,
                     const float* bias, float* y, int64_t ldy) {
#if TINYEMO_AVX512
  switch (w.dtype) {
    case DType::F32: return dot_float<DType::F32>(x, M, ldx, w, N, K, bias, y, ldy);
    case DType::BF16: return dot_float<DType::BF16>(x, M, ldx, w, N, K, bias, y, ldy);
    case DType::F16: return dot_float<DType::F16>(x, M, ldx, w, N, K, bias, y, ldy);
#if defined(__AVX512VNNI__)
    case DType::Q8_0: return dot_quant<DType::Q8_0>(x, M, ldx, w, N, K, bias, y, ldy);
    case DType::Q4_0: return dot_quant<DType::Q4_0>(x, M, ldx, w, N, K, bias, y, ldy);
#endif
    default: break;
  }
#endif
  fail("linear: no dot-product kernel for {} weights in this build", dtype_name(w.dtype));
}

}  // namespace tinyemo::detail
