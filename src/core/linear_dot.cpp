// linear() for a few activation rows (the decode mat-vec): each weight row is
// read once from memory and dotted with every activation row while it is in L1,
// so the speed is bounded by memory bandwidth, not FLOPs.
//
// Quantised weights follow ggml: the activations are quantised to 8 bits per
// block of 32 (scale = max|x| / 127) and blocks are multiplied with AVX512-VNNI
// integer dot products (vpdpbusd: unsigned x signed bytes). The weights are made
// unsigned (q8: w + 128, q4: the 0..15 codes) and the offset is removed with the
// activation block sums, precomputed once per row. Needs VNNI and VBMI (Ice Lake,
// Zen 4 and later); without them quantised weights take the packed GEMM.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "core/error.h"
#include "core/matmul_internal.h"
#include "core/quant.h"
#include "core/simd.h"
#include "core/linear_dot_tiles.h"
#include "core/thread_pool.h"

namespace tinyemo {
TINYEMO_ISA_BEGIN
namespace detail {

namespace {

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

template <DType T>
void dot_float(const float* x, int64_t M, int64_t ldx, const BOperand& w, int64_t N, int64_t K, const float* bias,
               float* y, int64_t ldy) {
  for_row_tasks(N, w.ld, [&](int64_t n0, int64_t n1) {
    for_activation_groups(M, [&]<int S>(int64_t m) {
      const float* xm = x + m * ldx;
      dot_rows<S>(n0, n1, y + m * ldy, ldy, bias,
                  [&]<int R, int S_>(int64_t n, float* out) { dot_tile_float<T, R, S_>(w, n, K, xm, ldx, out); });
    });
  });
}

#endif  // TINYEMO_AVX512

#if TINYEMO_AVX512 && defined(__AVX512VNNI__) && defined(__AVX512VBMI__)

// ---- quantised weights: 8-bit activations and VNNI -------------------------------
//
// Weights are read in groups of blocks (q8_0: 2 blocks = 64 codes per zmm;
// q4_0: 4 blocks = 64 bytes of nibbles, gathered from the 72-byte group with
// one vpermt2b and split into low and high nibbles). The activations are laid
// out to match each group, with the f32 scales and the offset correction
// (-offset x sum of the block's codes, in the first lane of the block) as
// vectors, so that one group costs a few vector instructions per weight row.

// One activation block: codes, scale and the sum of its codes.
struct ActivationBlock {
  int8_t q[32];
  float d;
  int32_t sum;
};

ActivationBlock quantize_activation_block(const float* xb) {
  ActivationBlock b;
  const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
  const float amax = simd::hmax(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
  b.d = amax / 127.0f;
  const __m512 id = _mm512_set1_ps(b.d != 0.0f ? 1.0f / b.d : 0.0f);
  const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(b.q), _mm512_cvtsepi32_epi8(q0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(b.q + 16), _mm512_cvtsepi32_epi8(q1));
  b.sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  return b;
}

// q8_0: two blocks per group; weights made unsigned by XOR 0x80 (w + 128).
struct Q8Group {
  static constexpr DType kType = DType::Q8_0;
  static constexpr int64_t kBlocks = 2;
  struct Activations {
    __m512i codes;       // block 2g in bytes 0-31, 2g+1 in 32-63
    __m512 scales;       // lanes 0-7 and 8-15
    __m512i correction;  // -128 x sum in lanes 0 and 8
  };
  struct Weights {
    __m512i codes;
    __m512 scales;
  };
  static void pack(const ActivationBlock* b, int64_t n, Activations* out) {
    alignas(64) int8_t codes[64] = {};
    alignas(64) float scales[16] = {};
    alignas(64) int32_t correction[16] = {};
    for (int64_t i = 0; i < n; ++i) {
      std::copy(b[i].q, b[i].q + 32, codes + 32 * i);
      std::fill(scales + 8 * i, scales + 8 * i + 8, b[i].d);
      correction[8 * i] = -128 * b[i].sum;
    }
    out->codes = _mm512_load_si512(codes);
    out->scales = _mm512_load_ps(scales);
    out->correction = _mm512_load_si512(correction);
  }
  static Weights load(const char* row, int64_t g, int64_t nb) {
    const BlockQ8_0* b = reinterpret_cast<const BlockQ8_0*>(row) + 2 * g;
    const bool has_second = 2 * g + 1 < nb;
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].q));
    const __m256i hi = has_second ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].q)) : _mm256_set1_epi8(0);
    Weights w;
    w.codes = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8(-128));
    w.scales = _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss(b[0].scale)),
                                  _mm256_set1_ps(has_second ? _cvtsh_ss(b[1].scale) : 0.0f), 1);
    return w;
  }
  static __m512i dot(const Weights& w, const Activations& a) {
    return _mm512_dpbusd_epi32(a.correction, w.codes, a.codes);
  }
};

// q4_0: four blocks (72 bytes) per group; the 0..15 codes are w + 8.
struct Q4Group {
  static constexpr DType kType = DType::Q4_0;
  static constexpr int64_t kBlocks = 4;
  struct Activations {
    __m512i low;         // elements 0-15 of blocks 4g..4g+3, 16 bytes each
    __m512i high;        // elements 16-31
    __m512 scales;       // lanes 4i..4i+3: block 4g+i
    __m512i correction;  // -8 x sum in lane 4i
  };
  struct Weights {
    __m512i low, high;
    __m512 scales;
  };
  static void pack(const ActivationBlock* b, int64_t n, Activations* out) {
    alignas(64) int8_t low[64] = {}, high[64] = {};
    alignas(64) float scales[16] = {};
    alignas(64) int32_t correction[16] = {};
    for (int64_t i = 0; i < n; ++i) {
      std::copy(b[i].q, b[i].q + 16, low + 16 * i);
      std::copy(b[i].q + 16, b[i].q + 32, high + 16 * i);
      std::fill(scales + 4 * i, scales + 4 * i + 4, b[i].d);
      correction[4 * i] = -8 * b[i].sum;
    }
    out->low = _mm512_load_si512(low);
    out->high = _mm512_load_si512(high);
    out->scales = _mm512_load_ps(scales);
    out->correction = _mm512_load_si512(correction);
  }
  // Byte j of the gathered codes is byte 2 + 18 (j / 16) + j % 16 of the group;
  // the scale of block i is 16-bit word 9 i.
  struct Indices {
    __m512i code_bytes, scale_words;
    Indices() {
      alignas(64) uint8_t cb[64];
      alignas(64) uint16_t sw[32] = {};
      for (int j = 0; j < 64; ++j) cb[j] = static_cast<uint8_t>(2 + 18 * (j / 16) + j % 16);
      for (int j = 0; j < 16; ++j) sw[j] = static_cast<uint16_t>(9 * (j / 4));
      code_bytes = _mm512_load_si512(cb);
      scale_words = _mm512_load_si512(sw);
    }
  };
  static Weights load(const char* row, int64_t g, int64_t nb) {
    static const Indices idx;
    const char* base = row + g * kBlocks * static_cast<int64_t>(sizeof(BlockQ4_0));
    const int64_t bytes = std::min<int64_t>(kBlocks, nb - g * kBlocks) * static_cast<int64_t>(sizeof(BlockQ4_0));
    // Masked loads: bytes past the row's last block read as zero (codes and scale 0).
    const __m512i z0 = _mm512_maskz_loadu_epi8(bytes >= 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1, base);
    const __m512i z1 = _mm512_maskz_loadu_epi8(bytes > 64 ? (__mmask64{1} << (bytes - 64)) - 1 : 0, base + 64);
    const __m512i packed = _mm512_permutex2var_epi8(z0, idx.code_bytes, z1);
    const __m512i nibble = _mm512_set1_epi8(0x0f);
    Weights w;
    w.low = _mm512_and_si512(packed, nibble);
    w.high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibble);
    w.scales = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx.scale_words, z0)));
    return w;
  }
  static __m512i dot(const Weights& w, const Activations& a) {
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a.correction, w.low, a.low), w.high, a.high);
  }
};

// Quantises x[K] (K % 32 == 0) into groups of the layout G expects.
template <class G>
void quantize_activation_row(const float* x, int64_t K, typename G::Activations* out) {
  const int64_t nb = K / 32;
  for (int64_t g = 0; g * G::kBlocks < nb; ++g) {
    ActivationBlock blocks[G::kBlocks];
    const int64_t n = std::min(G::kBlocks, nb - g * G::kBlocks);
    for (int64_t i = 0; i < n; ++i) blocks[i] = quantize_activation_block(x + (g * G::kBlocks + i) * 32);
    G::pack(blocks, n, out + g);
  }
}

template <class G, int R, int S>
void dot_tile_quant(const BOperand& w, int64_t n0, int64_t nb, const typename G::Activations* xq,
                    int64_t groups_per_row, float* out) {
  __m512 acc[R][S];
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) acc[r][s] = _mm512_setzero_ps();
  const char* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = row_ptr(w, n0 + r);
  constexpr int64_t kGroupBytes =
      G::kBlocks * static_cast<int64_t>(G::kType == DType::Q8_0 ? sizeof(BlockQ8_0) : sizeof(BlockQ4_0));
  const int64_t tile_bytes = R * w.ld;
  for (int64_t g = 0; g < groups_per_row; ++g) {
    for (int r = 0; r < R; ++r) {
      prefetch_next_tile(rows[r] + g * kGroupBytes, tile_bytes);
      prefetch_next_tile(rows[r] + g * kGroupBytes + 64, tile_bytes);
      const typename G::Weights wg = G::load(rows[r], g, nb);
      for (int s = 0; s < S; ++s) {
        const typename G::Activations& a = xq[s * groups_per_row + g];
        acc[r][s] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(G::dot(wg, a)), _mm512_mul_ps(wg.scales, a.scales), acc[r][s]);
      }
    }
  }
  for (int s = 0; s < S; ++s)
    for (int r = 0; r < R; ++r) out[s * R + r] = simd::hsum(acc[r][s]);
}

template <class G>
void dot_quant(const float* x, int64_t M, int64_t ldx, const BOperand& w, int64_t N, int64_t K, const float* bias,
               float* y, int64_t ldy) {
  TE_CHECK(K % 32 == 0, "linear: {} weights need K % 32 == 0, got K={}", dtype_name(G::kType), K);
  using Activations = typename G::Activations;
  const int64_t nb = K / 32, groups = (nb + G::kBlocks - 1) / G::kBlocks;
  struct Free {
    void operator()(Activations* p) const { std::free(p); }
  };
  std::unique_ptr<Activations, Free> xq(
      static_cast<Activations*>(std::aligned_alloc(64, static_cast<size_t>(M * groups) * sizeof(Activations))));
  TE_CHECK(xq != nullptr, "out of memory quantising {} x {} activations", M, K);
  for (int64_t m = 0; m < M; ++m) quantize_activation_row<G>(x + m * ldx, K, xq.get() + m * groups);
  for_row_tasks(N, w.ld, [&](int64_t n0, int64_t n1) {
    for_activation_groups(M, [&]<int S>(int64_t m) {
      const Activations* xm = xq.get() + m * groups;
      dot_rows<S>(n0, n1, y + m * ldy, ldy, bias,
                  [&]<int R, int S_>(int64_t n, float* out) { dot_tile_quant<G, R, S_>(w, n, nb, xm, groups, out); });
    });
  });
}

// ---- interleaved quantised weights (Q8_0x16, Q4_0x16) -----------------------
//
// A panel of 16 rows is one sequential stream; each 64-byte load holds the same
// 4 codes of 16 rows, multiplied with 4 activation codes broadcast (vpdpbusd):
// the 16 integer row sums of a block come out in one register, are scaled once
// and accumulated, so a block costs 8 (q8_0) or 12 (q4_0) vector instructions
// for 16 rows instead of ~6 per row in the row-major kernel above.

// One activation row quantised per block of 32: codes as 4-byte groups (group
// g of block b at 8 b + g), and per block the scale and the sum of the codes
// (which removes the weights' offset: sum (w + offset) x = sum w x + offset sum x).
struct ActivationRow {
  const int32_t* groups;
  const float* scales;
  const int32_t* code_sums;
};

struct Q8Panel {
  static constexpr DType kType = DType::Q8_0x16;
  static constexpr int64_t kCodeBytes = kInterleavedRows * 32;
  static constexpr int32_t kOffset = 128;
  template <int S>
  static void block(const uint8_t* codes, const ActivationRow* x, int64_t b, __m512i* sums) {
    for (int g = 0; g < 8; ++g) {
      const __m512i w = _mm512_loadu_si512(codes + 64 * g);
      for (int s = 0; s < S; ++s) sums[s] = _mm512_dpbusd_epi32(sums[s], w, _mm512_set1_epi32(x[s].groups[8 * b + g]));
    }
  }
};

struct Q4Panel {
  static constexpr DType kType = DType::Q4_0x16;
  static constexpr int64_t kCodeBytes = kInterleavedRows * 16;
  static constexpr int32_t kOffset = 8;
  template <int S>
  static void block(const uint8_t* codes, const ActivationRow* x, int64_t b, __m512i* sums) {
    const __m512i nibble = _mm512_set1_epi8(0x0f);
    for (int g = 0; g < 4; ++g) {
      const __m512i w = _mm512_loadu_si512(codes + 64 * g);
      const __m512i low = _mm512_and_si512(w, nibble), high = _mm512_and_si512(_mm512_srli_epi16(w, 4), nibble);
      for (int s = 0; s < S; ++s) {
        sums[s] = _mm512_dpbusd_epi32(sums[s], low, _mm512_set1_epi32(x[s].groups[8 * b + g]));
        sums[s] = _mm512_dpbusd_epi32(sums[s], high, _mm512_set1_epi32(x[s].groups[8 * b + 4 + g]));
      }
    }
  }
};

// Prefetch distance inside a panel's stream: ~2 block pairs of q8_0. Measured
// on the Zen 5 VM (a TinyLlama q8_0 stack, scratch program): none streams at
// 0.65x, 1 KiB slower than 2 KiB; 2, 4 and 8 KiB alike on 2 MiB pages; a far
// L2 prefetch (17 KiB, T1) 0.8x.
constexpr int64_t kPanelPrefetchBytes = 2048;

// How the prefetches mark the panel's lines. A panel read once (one group of
// activation rows) is prefetched non-temporally. On the Zen 5 VM, with the
// hints alternated in one process (scratch program, q8_0, medians of 8-16
// paired rounds per set), team mat-vecs read 1.02-1.13x and decode ran
// 1.03-1.15x (OpenELM-270M, 5 sets) and 1.05-1.13x (TinyLlama-1.1B, 4 sets)
// faster with the non-temporal hint. The likely reason (inferred; the VM shows
// no cache counters): the L3 is filled by the L2's evictions, and lines marked
// non-temporal skip it, so the weight stream no longer spends L3 fills on lines
// never read again nor pushes out the KV cache. A panel the next activation
// group reads again keeps T0.
enum class PanelReuse { kOnce, kAgain };

// out[s * 16 + r] = row r of the panel . x[s], for S activation rows.
template <class P, int S>
void dot_panel(const uint8_t* panel, int64_t nb, const ActivationRow* x, PanelReuse reuse, float* out) {
  __m512 acc[S];
  for (int s = 0; s < S; ++s) acc[s] = _mm512_setzero_ps();
  constexpr int64_t kBlockBytes = 2 * kInterleavedRows + P::kCodeBytes;
  auto block = [&](const uint8_t* scales, const uint8_t* codes, int64_t b) {
    const __m512 ws = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales)));
    __m512i sums[S];
    for (int s = 0; s < S; ++s) sums[s] = _mm512_set1_epi32(-P::kOffset * x[s].code_sums[b]);
    P::template block<S>(codes, x, b, sums);
    for (int s = 0; s < S; ++s)
      acc[s] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[s]), _mm512_mul_ps(ws, _mm512_set1_ps(x[s].scales[b])), acc[s]);
  };
  int64_t b = 0;
  const uint8_t* p = panel;
  for (; b + 2 <= nb; b += 2, p += 2 * kBlockBytes) {
    const char* ahead = reinterpret_cast<const char*>(p + kPanelPrefetchBytes);
    if (reuse == PanelReuse::kOnce) {
      for (int64_t line = 0; line < 2 * kBlockBytes; line += 64) _mm_prefetch(ahead + line, _MM_HINT_NTA);
    } else {
      for (int64_t line = 0; line < 2 * kBlockBytes; line += 64) _mm_prefetch(ahead + line, _MM_HINT_T0);
    }
    block(p, p + 4 * kInterleavedRows, b);
    block(p + 2 * kInterleavedRows, p + 4 * kInterleavedRows + P::kCodeBytes, b + 1);
  }
  if (b < nb) block(p, p + 2 * kInterleavedRows, b);
  for (int s = 0; s < S; ++s) _mm512_storeu_ps(out + 16 * s, acc[s]);
}

// Each thread streams its own contiguous share of the panels and then helps
// with the others' from their ends (parallel_for_stealing), claiming this many
// bytes at a time: the threads finish within ~1 us of each other.
constexpr int64_t kPanelGrainBytes = 32 << 10;

// Every output's mat-vec in one pass of the pool: the outputs' panels form one
// index space that the threads split (one synchronisation for all of them).
template <class P>
void dot_interleaved(const float* x, int64_t M, int64_t ldx, int64_t K, std::span<const DotOutput> outputs,
                     const PieceSplitter* split) {
  int64_t panels = 0;
  std::vector<int64_t> first_panel;  // of each output in the joint index space
  for (const DotOutput& o : outputs) {
    TE_CHECK(K % 32 == 0 && o.N % kInterleavedRows == 0 && o.w.dtype == P::kType,
             "linear: {} weights need K % 32 == 0 and N % {} == 0, got {} {} x {}", dtype_name(P::kType),
             kInterleavedRows, dtype_name(o.w.dtype), o.N, K);
    first_panel.push_back(panels);
    panels += o.N / kInterleavedRows;
  }
  first_panel.push_back(panels);
  const int64_t nb = K / 32;
  // Per activation row: K code bytes, then nb code sums (scales apart).
  const int64_t row_words = K / 4 + nb;
  std::vector<int32_t> buffer(static_cast<size_t>(M * row_words));
  std::vector<float> scales(static_cast<size_t>(M * nb));
  std::vector<ActivationRow> rows(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    int32_t* groups = buffer.data() + m * row_words;
    int32_t* code_sums = groups + K / 4;
    float* row_scales = scales.data() + m * nb;
    for (int64_t b = 0; b < nb; ++b) {
      const ActivationBlock q = quantize_activation_block(x + m * ldx + 32 * b);
      std::memcpy(groups + 8 * b, q.q, 32);
      row_scales[b] = q.d;
      code_sums[b] = q.sum;
    }
    rows[m] = {groups, row_scales, code_sums};
  }
  const int64_t panel_bytes = kInterleavedRows * dtype_bytes(P::kType, K);
  const PanelReuse reuse = M <= kMaxDotRows ? PanelReuse::kOnce : PanelReuse::kAgain;
  auto dot_panels = [&](int64_t p0, int64_t p1) {
    size_t i = 0;
    for (int64_t pn = p0; pn < p1; ++pn) {
      while (pn >= first_panel[i + 1]) ++i;
      const DotOutput& o = outputs[i];
      const int64_t local = pn - first_panel[i];
      for_activation_groups(M, [&]<int S>(int64_t m) {
        float out[S * kInterleavedRows];
        dot_panel<P, S>(static_cast<const uint8_t*>(o.w.data) + local * panel_bytes, nb, rows.data() + m, reuse, out);
        for (int s = 0; s < S; ++s)
          for (int64_t r = 0; r < kInterleavedRows; ++r) {
            const int64_t n = local * kInterleavedRows + r;
            o.y[(m + s) * o.ldy + n] = out[s * kInterleavedRows + r] + (o.bias ? o.bias[n] : 0.0f);
          }
      });
    }
  };
  const int64_t grain = (kPanelGrainBytes + panel_bytes - 1) / panel_bytes;
  if (split != nullptr) return (*split)(panels, grain, dot_panels);
  if (panels * panel_bytes < 2 * kMinTaskBytes) return dot_panels(0, panels);
  parallel_for_stealing(panels, grain, dot_panels);
}

constexpr bool kHasQuantDot = true;
#else
constexpr bool kHasQuantDot = false;
#endif

}  // namespace

// Crossovers measured with bench/linear_bench (few_rows_dot_vs_gemm, docs/perf/kernels.md):
// the dot path reads W once but does S FMAs per weight vector; the packed GEMM
// pays a pass over W to pack it. Quantised weights switch later because their
// GEMM also dequantises while packing.
int64_t dot_path_max_rows(DType weight_dtype) {
  if (dtype_is_gemm_panels(weight_dtype)) return 0;  // packed for the GEMM, which reads them as they are
  if (dtype_is_kquant(weight_dtype)) return has_kquant_dot() ? 8 : 0;
  if (dtype_is_quantized(weight_dtype)) return kHasQuantDot ? 8 : 0;
  return TINYEMO_AVX512 ? 5 : 0;
}

bool has_interleaved_dot() { return kHasQuantDot; }

void linear_rows_dot_shared_input(const float* x, int64_t M, int64_t ldx, int64_t K,
                                  std::span<const DotOutput> outputs, const PieceSplitter* split) {
  if (outputs.empty()) return;
#if TINYEMO_AVX512 && defined(__AVX512VNNI__) && defined(__AVX512VBMI__)
  if (outputs[0].w.dtype == DType::Q8_0x16) return dot_interleaved<Q8Panel>(x, M, ldx, K, outputs, split);
  if (outputs[0].w.dtype == DType::Q4_0x16) return dot_interleaved<Q4Panel>(x, M, ldx, K, outputs, split);
#endif
  (void)split;
  fail("linear: no shared-input kernel for {} weights in this build", dtype_name(outputs[0].w.dtype));
}

void linear_rows_dot(const float* x, int64_t M, int64_t ldx, const BOperand& w, int64_t N, int64_t K,
                     const float* bias, float* y, int64_t ldy) {
  if (dtype_is_kquant(w.dtype)) return linear_rows_dot_kquant(x, M, ldx, w, N, K, bias, y, ldy);
#if TINYEMO_AVX512
  switch (w.dtype) {
    case DType::F32: return dot_float<DType::F32>(x, M, ldx, w, N, K, bias, y, ldy);
    case DType::BF16: return dot_float<DType::BF16>(x, M, ldx, w, N, K, bias, y, ldy);
    case DType::F16: return dot_float<DType::F16>(x, M, ldx, w, N, K, bias, y, ldy);
#if defined(__AVX512VNNI__) && defined(__AVX512VBMI__)
    case DType::Q8_0: return dot_quant<Q8Group>(x, M, ldx, w, N, K, bias, y, ldy);
    case DType::Q4_0: return dot_quant<Q4Group>(x, M, ldx, w, N, K, bias, y, ldy);
    case DType::Q8_0x16:
    case DType::Q4_0x16: {
      const DotOutput output{w, N, bias, y, ldy};
      return linear_rows_dot_shared_input(x, M, ldx, K, {&output, 1}, nullptr);
    }
#endif
    default: break;
  }
#endif
  fail("linear: no dot-product kernel for {} weights in this build", dtype_name(w.dtype));
}

}  // namespace detail
TINYEMO_ISA_END
}  // namespace tinyemo
