// Blocked, packed f32 GEMM (GotoBLAS/BLIS structure) whose B operand may be a
// weight matrix of any tinyemo dtype: B is converted to f32 while it is packed,
// so 16-bit and quantised weights cost one conversion per element per call and
// then run at the f32 kernel's speed. See docs/perf/kernels.md for the measurements.
//
// Loops (per task = a chunk of N columns x a range of M rows):
//   for each k block (kc):  pack op(B)[kc, chunk] into 32-column panels [k][32]
//     for each m tile (<= kMaxMR rows): pack A[tile, kc] as [k][MR]
//       for each panel: micro-kernel MR x 32 over kc, accumulate into C.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/matmul_internal.h"
#include "core/quant.h"
#include "core/simd.h"
#include "core/thread_pool.h"

namespace tinyemo {
TINYEMO_ISA_BEGIN
namespace detail {

namespace {

constexpr int64_t kNR = 32;     // panel width: two 16-float vectors
constexpr int kMaxMR = 14;      // 28 accumulators + 2 B vectors + 1 broadcast < 32 zmm registers
constexpr int64_t kMaxKC = 512; // packed panel [kc][32] = 64 KiB
constexpr int64_t kNC = 256;    // columns per chunk: packed B block kc x nc <= 512 KiB (in L2)

// A per-thread scratch buffer, 64-byte aligned, grown on demand.
class Scratch {
 public:
  float* get(size_t floats) {
    if (floats > size_) {
      data_.reset(static_cast<float*>(std::aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64)));
      TE_CHECK(data_ != nullptr, "out of memory for a {}-float GEMM buffer", floats);
      size_ = floats;
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> data_;
  size_t size_ = 0;
};

// c[i][0, n_valid) = alpha * acc[i] + bias (+ beta * c[i]): the store of the
// scalar micro-kernels (the portable fallback, and bf16 without AVX512-BF16).
template <int MR>
void store_tile_scalar(const float (&acc)[MR][kNR], float* c, int64_t ldc, int64_t n_valid, float alpha, float beta,
                       const float* bias) {
  for (int i = 0; i < MR; ++i) {
    for (int64_t j = 0; j < n_valid; ++j) {
      float r = alpha * acc[i][j] + (bias ? bias[j] : 0.0f);
      if (beta != 0.0f) r += beta * c[i * ldc + j];
      c[i * ldc + j] = r;
    }
  }
}

// ---- Packing op(B) rows into f32 panels -------------------------------------------
//
// pack_rows_panel: `nr` (<= 32) weight rows starting at row n0, elements [k0, k0+kc),
// converted to f32 and transposed into panel[k * 32 + j]; missing rows are zero.

// Row element access for each dtype, scalar (the fallback and the ragged edges).
float row_element(const BOperand& b, int64_t n, int64_t k) {
  const char* row = static_cast<const char*>(b.data) + n * b.ld;
  switch (b.dtype) {
    case DType::F32: return reinterpret_cast<const float*>(row)[k];
    case DType::BF16: return bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
    case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(row)[k]);
    case DType::Q8_0: {
      const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(row)[k / 32];
      return f16_to_f32(blk.scale) * blk.q[k % 32];
    }
    case DType::Q4_0: {
      const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(row)[k / 32];
      const int j = static_cast<int>(k % 32);
      const int code = j < 16 ? (blk.q[j] & 0x0f) : (blk.q[j - 16] >> 4);
      return f16_to_f32(blk.scale) * static_cast<float>(code - 8);
    }
    default: fail("linear: unsupported weight dtype {}", dtype_name(b.dtype));
  }
}

#if TINYEMO_AVX512

// 16 consecutive elements [k, k+16) of row n as f32 (k + 16 <= K; for quantised
// rows k is a multiple of 16, so the 16 lie in one block).
inline __m512 load_row16(const BOperand& b, int64_t n, int64_t k) {
  const char* row = static_cast<const char*>(b.data) + n * b.ld;
  switch (b.dtype) {
    case DType::F32: return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + k);
    case DType::BF16: return simd::load_bf16(reinterpret_cast<const uint16_t*>(row) + k);
    case DType::F16: return simd::load_f16(reinterpret_cast<const uint16_t*>(row) + k);
    case DType::Q8_0: {
      const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(row)[k / 32];
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.q + k % 32));
      return _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(blk.scale)), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)));
    }
    case DType::Q4_0: {
      const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(row)[k / 32];
      __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.q));
      if (k % 32 != 0) q = _mm_srli_epi16(q, 4);
      q = _mm_and_si128(q, _mm_set1_epi8(0x0f));
      const __m512 codes = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(q), _mm512_set1_epi32(8)));
      return _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(blk.scale)), codes);
    }
    default: fail("linear: unsupported weight dtype {}", dtype_name(b.dtype));
  }
}

// In-register transpose of 16 rows of 16 floats: out[j] holds column j.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

void pack_rows_panel(const BOperand& b, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* panel) {
  const int64_t kv = kc / 16 * 16;  // vectorised part; quantised kc is a multiple of 32
  for (int64_t half = 0; half < 2; ++half) {
    const int64_t j0 = half * 16;
    for (int64_t k = 0; k < kv; k += 16) {
      __m512 r[16];
      for (int64_t j = 0; j < 16; ++j)
        r[j] = j0 + j < nr ? load_row16(b, n0 + j0 + j, k0 + k) : _mm512_setzero_ps();
      transpose16(r);
      for (int64_t i = 0; i < 16; ++i) _mm512_store_ps(panel + (k + i) * kNR + j0, r[i]);
    }
  }
  for (int64_t k = kv; k < kc; ++k) {
    for (int64_t j = 0; j < kNR; ++j) panel[k * kNR + j] = j < nr ? row_element(b, n0 + j, k0 + k) : 0.0f;
  }
}

// Interleaved Q8_0x16/Q4_0x16 rows (core/quant.h) are already 16 rows side by
// side: each 64-byte code group gives 4 columns of the panel for 16 rows, one
// vector per element without a transpose. n0 and nr are multiples of 16 (N is,
// and panels start at multiples of 32); k0 and kc of 32.
void pack_interleaved_panel(const BOperand& b, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* panel) {
  const bool q8 = b.dtype == DType::Q8_0x16;
  const int64_t nb = b.ld / static_cast<int64_t>(dtype_size(b.dtype));
  const int64_t code_bytes = kInterleavedRows * (q8 ? 32 : 16);
  for (int64_t j0 = 0; j0 < kNR; j0 += kInterleavedRows) {
    if (j0 >= nr) {
      for (int64_t k = 0; k < kc; ++k) _mm512_store_ps(panel + k * kNR + j0, _mm512_setzero_ps());
      continue;
    }
    const uint8_t* rows = static_cast<const uint8_t*>(b.data) + (n0 + j0) * b.ld;  // the panel of 16 rows
    for (int64_t blk = k0 / 32; blk < (k0 + kc) / 32; ++blk) {
      const InterleavedOffsets o = interleaved_offsets(blk, nb, code_bytes);
      const __m512 scales = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows + o.scales)));
      float* out = panel + (blk * 32 - k0) * kNR + j0;  // element e of the block at out[e * kNR]
      auto store = [&](int64_t e, __m512i codes) {
        _mm512_store_ps(out + e * kNR, _mm512_mul_ps(scales, _mm512_cvtepi32_ps(codes)));
      };
      for (int64_t g = 0; g < (q8 ? 8 : 4); ++g) {
        const __m512i w = _mm512_loadu_si512(rows + o.codes + 64 * g);
        for (int i = 0; i < 4; ++i) {
          if (q8) {
            // Byte i of each lane, sign-extended, after undoing the +128.
            const __m512i signed_codes = _mm512_xor_si512(w, _mm512_set1_epi8(-128));
            store(4 * g + i, _mm512_srai_epi32(_mm512_slli_epi32(signed_codes, 24 - 8 * i), 24));
          } else {
            const __m512i byte = _mm512_and_si512(_mm512_srli_epi32(w, 8 * i), _mm512_set1_epi32(0xff));
            const __m512i eight = _mm512_set1_epi32(8);
            store(4 * g + i, _mm512_sub_epi32(_mm512_and_si512(byte, _mm512_set1_epi32(0x0f)), eight));
            store(16 + 4 * g + i, _mm512_sub_epi32(_mm512_srli_epi32(byte, 4), eight));
          }
        }
      }
    }
  }
}

// k-quant rows: each row's super-blocks in [k0, k0 + kc) dequantised with the
// scalar reference (k0 and kc are multiples of 256), then written as a column.
void pack_kquant_panel(const BOperand& b, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* panel) {
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(kc));
  const int64_t unit = static_cast<int64_t>(dtype_size(b.dtype));
  for (int64_t j = 0; j < kNR; ++j) {
    if (j < nr) {
      const char* src = static_cast<const char*>(b.data) + (n0 + j) * b.ld + k0 / kKQuantBlock * unit;
      convert(b.dtype, src, DType::F32, row.data(), kc);
    }
    for (int64_t k = 0; k < kc; ++k) panel[k * kNR + j] = j < nr ? row[static_cast<size_t>(k)] : 0.0f;
  }
}

void pack_rowmajor_panel(const BOperand& b, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* panel) {
  const float* src = static_cast<const float*>(b.data);
  const __mmask16 m0 = simd::first_lanes(nr), m1 = simd::first_lanes(nr - 16);
  for (int64_t k = 0; k < kc; ++k) {
    const float* s = src + (k0 + k) * b.ld + n0;
    _mm512_store_ps(panel + k * kNR, _mm512_maskz_loadu_ps(m0, s));
    _mm512_store_ps(panel + k * kNR + 16, nr > 16 ? _mm512_maskz_loadu_ps(m1, s + 16) : _mm512_setzero_ps());
  }
}

// c[i][0, n_valid) = alpha * acc[i] + bias (+ beta * c[i]) for a tile of MR x 32.
template <int MR>
inline void store_tile(const __m512 (&acc0)[MR], const __m512 (&acc1)[MR], float* c, int64_t ldc, int64_t n_valid,
                       float alpha, float beta, const float* bias) {
  const __mmask16 m0 = simd::first_lanes(n_valid), m1 = simd::first_lanes(n_valid - 16);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 bias1 = bias && n_valid > 16 ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    __m512 r0 = _mm512_fmadd_ps(va, acc0[i], bias0), r1 = _mm512_fmadd_ps(va, acc1[i], bias1);
    if (beta != 0.0f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
      if (n_valid > 16) r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
    }
    _mm512_mask_storeu_ps(ci, m0, r0);
    if (n_valid > 16) _mm512_mask_storeu_ps(ci + 16, m1, r1);
  }
}

// C[MR, 32] (+)= Apacked[kc][MR] * panel[kc][32]; n_valid of the 32 columns are stored.
template <int MR>
void micro_kernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int64_t n_valid,
                  float alpha, float beta, const float* bias) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(bp + k * kNR), b1 = _mm512_load_ps(bp + k * kNR + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(ap[k * MR + i]);
      acc0[i] = _mm512_fmadd_ps(a, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(a, b1, acc1[i]);
    }
  }
  store_tile<MR>(acc0, acc1, c, ldc, n_valid, alpha, beta, bias);
}

#else  // portable fallback: the same blocking with plain loops (auto-vectorised)

void pack_rows_panel(const BOperand& b, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* panel) {
  for (int64_t j = 0; j < kNR; ++j) {
    for (int64_t k = 0; k < kc; ++k) panel[k * kNR + j] = j < nr ? row_element(b, n0 + j, k0 + k) : 0.0f;
  }
}

void pack_interleaved_panel(const BOperand& b, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* panel) {
  const int64_t nb = b.ld / static_cast<int64_t>(dtype_size(b.dtype));
  std::vector<float> row(static_cast<size_t>(kc));
  for (int64_t j = 0; j < kNR; ++j) {
    if (j < nr) dequantize_interleaved_row(b.dtype, b.data, nb, n0 + j, k0 / 32, (k0 + kc) / 32, row.data());
    for (int64_t k = 0; k < kc; ++k) panel[k * kNR + j] = j < nr ? row[k] : 0.0f;
  }
}

void pack_kquant_panel(const BOperand& b, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* panel) {
  std::vector<float> row(static_cast<size_t>(kc));
  const int64_t unit = static_cast<int64_t>(dtype_size(b.dtype));
  for (int64_t j = 0; j < kNR; ++j) {
    if (j < nr) {
      const char* src = static_cast<const char*>(b.data) + (n0 + j) * b.ld + k0 / kKQuantBlock * unit;
      convert(b.dtype, src, DType::F32, row.data(), kc);
    }
    for (int64_t k = 0; k < kc; ++k) panel[k * kNR + j] = j < nr ? row[static_cast<size_t>(k)] : 0.0f;
  }
}

void pack_rowmajor_panel(const BOperand& b, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* panel) {
  const float* src = static_cast<const float*>(b.data);
  for (int64_t k = 0; k < kc; ++k) {
    for (int64_t j = 0; j < kNR; ++j) panel[k * kNR + j] = j < nr ? src[(k0 + k) * b.ld + n0 + j] : 0.0f;
  }
}

template <int MR>
void micro_kernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, int64_t n_valid,
                  float alpha, float beta, const float* bias) {
  float acc[MR][kNR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i) {
      for (int64_t j = 0; j < kNR; ++j) acc[i][j] += ap[k * MR + i] * bp[k * kNR + j];
    }
  }
  store_tile_scalar<MR>(acc, c, ldc, n_valid, alpha, beta, bias);
}

#endif

// A micro-kernel per tile height 1..kMaxMR: table[mr - 1] = pick(mr)'s instance.
template <typename Pick, int... MRs>
constexpr auto kernel_table(Pick pick, std::integer_sequence<int, MRs...>) {
  return std::array{pick(std::integral_constant<int, MRs + 1>{})...};
}
constexpr auto kKernels =
    kernel_table([](auto mr) { return &micro_kernel<decltype(mr)::value>; }, std::make_integer_sequence<int, kMaxMR>{});

// A tile of `mr` rows x kc columns as ap[k * mr + i].
void pack_a(const float* a, int64_t a_row, int64_t a_col, int64_t mr, int64_t kc, float* ap) {
  if (a_col == 1) {
    for (int64_t i = 0; i < mr; ++i) {
      const float* src = a + i * a_row;
      for (int64_t k = 0; k < kc; ++k) ap[k * mr + i] = src[k];
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = a + k * a_col;
      for (int64_t i = 0; i < mr; ++i) ap[k * mr + i] = src[i * a_row];
    }
  }
}

struct Plan {
  int64_t kc = 0, k_blocks = 0;
  int64_t nc = 0, n_chunks = 0, m_splits = 0;
};

Plan make_plan(int64_t M, int64_t N, int64_t K, int64_t block) {
  const bool quantized = block > 1;
  Plan p;
  p.k_blocks = std::max<int64_t>(1, (K + kMaxKC - 1) / kMaxKC);
  p.kc = (K + p.k_blocks - 1) / p.k_blocks;
  const int64_t align = std::max<int64_t>(32, block);  // block-aligned for quantised rows, vector-aligned otherwise
  p.kc = (p.kc + align - 1) / align * align;
  if (!quantized && p.k_blocks == 1) p.kc = K;
  // Enough tasks for every thread (twice over, for balance); splitting M repacks B.
  // Inside a pool task the loop runs serially: one task, B packed once.
  const int64_t threads = in_parallel_region() ? 1 : num_threads();
  const int64_t want = 2 * threads;
  // Chunks of <= kNC columns, as many as a multiple of the thread count when
  // that costs little (1280 columns on 2 threads: 6 x 224 rather than 5 x 256).
  int64_t chunks = (N + kNC - 1) / kNC;
  if (chunks >= threads) chunks = (chunks + threads - 1) / threads * threads;
  p.nc = std::min(kNC, std::max<int64_t>(kNR, ((N + chunks - 1) / chunks + kNR - 1) / kNR * kNR));
  p.n_chunks = (N + p.nc - 1) / p.nc;
  const int64_t m_tiles = (M + kMaxMR - 1) / kMaxMR;
  p.m_splits = p.n_chunks >= want ? 1 : std::min(m_tiles, (want + p.n_chunks - 1) / p.n_chunks);
  p.m_splits = std::max<int64_t>(1, p.m_splits);
  return p;
}

// Panel [kc][32] f32 of rows [n0, n0 + nr) of a weight stored as rows or row-major.
void pack_panel(const BOperand& b, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* panel) {
  if (dtype_of_rows(b.dtype) != b.dtype) {
    pack_interleaved_panel(b, n0, nr, k0, kc, panel);
  } else if (dtype_is_kquant(b.dtype)) {
    pack_kquant_panel(b, n0, nr, k0, kc, panel);
  } else if (b.layout == BOperand::Layout::Rows) {
    pack_rows_panel(b, n0, nr, k0, kc, panel);
  } else {
    pack_rowmajor_panel(b, n0, nr, k0, kc, panel);
  }
}

// ---- BF16x32 weights: vdpbf16ps ---------------------------------------------------
//
// The weights are packed at load (core/panels.h): panel p is [K/2][32][2] bf16,
// one 32-bit word per (pair of k, column), i.e. one zmm per 16 columns and
// pair. x is rounded to bf16 once per call and packed per tile of <= kMaxMR
// rows as [K/2][mr] words; the micro-kernel broadcasts a row's pair and
// multiplies it with two such zmm (MR x 32 outputs, 2 * MR vdpbf16ps per pair).

// Rows of x (bf16 pairs) for the m tiles of a call: tile t covers rows
// [M t / tiles, M (t + 1) / tiles) and starts at word row_begin * K / 2.
struct Bf16Tiles {
  int64_t tiles = 0;
  int64_t row_begin(int64_t t, int64_t M) const { return M * t / tiles; }
};

void pack_bf16_tiles(const float* a, int64_t a_row, int64_t M, int64_t K, const Bf16Tiles& tiling, uint32_t* out) {
  const int64_t pairs = K / 2;
  parallel_for(tiling.tiles, 1, [&](int64_t t0, int64_t t1) {
    std::vector<uint16_t> row(static_cast<size_t>(K));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = tiling.row_begin(t, M), mr = tiling.row_begin(t + 1, M) - m0;
      uint32_t* tile = out + m0 * pairs;
      for (int64_t i = 0; i < mr; ++i) {
        convert(DType::F32, a + (m0 + i) * a_row, DType::BF16, row.data(), K);
        for (int64_t k = 0; k < pairs; ++k) {
          uint32_t word;
          std::memcpy(&word, row.data() + 2 * k, 4);
          tile[k * mr + i] = word;
        }
      }
    }
  });
}

#if TINYEMO_AVX512 && defined(__AVX512BF16__)
constexpr bool kNativeBf16 = true;

// C[MR, 32] (+)= ap[pairs][MR] . bp[pairs][32][2]; stored as micro_kernel does.
template <int MR>
void bf16_micro_kernel(int64_t pairs, const uint32_t* ap, const uint16_t* bp, float* c, int64_t ldc, int64_t n_valid,
                       float alpha, float beta, const float* bias) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < pairs; ++k) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(bp + k * 64), b1 = (__m512bh)_mm512_load_si512(bp + k * 64 + 32);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[k * MR + i]));
      acc0[i] = _mm512_dpbf16_ps(acc0[i], a, b0);
      acc1[i] = _mm512_dpbf16_ps(acc1[i], a, b1);
    }
  }
  store_tile<MR>(acc0, acc1, c, ldc, n_valid, alpha, beta, bias);
}

#else  // the same products in scalar code (vdpbf16ps's order: odd element, then even)
constexpr bool kNativeBf16 = false;

template <int MR>
void bf16_micro_kernel(int64_t pairs, const uint32_t* ap, const uint16_t* bp, float* c, int64_t ldc, int64_t n_valid,
                       float alpha, float beta, const float* bias) {
  float acc[MR][kNR] = {};
  for (int64_t k = 0; k < pairs; ++k) {
    for (int i = 0; i < MR; ++i) {
      const float a_even = bf16_to_f32(static_cast<uint16_t>(ap[k * MR + i]));
      const float a_odd = bf16_to_f32(static_cast<uint16_t>(ap[k * MR + i] >> 16));
      for (int64_t j = 0; j < kNR; ++j) {
        acc[i][j] += a_odd * bf16_to_f32(bp[k * 64 + 2 * j + 1]);
        acc[i][j] += a_even * bf16_to_f32(bp[k * 64 + 2 * j]);
      }
    }
  }
  store_tile_scalar<MR>(acc, c, ldc, n_valid, alpha, beta, bias);
}
#endif

constexpr auto kBf16Kernels = kernel_table([](auto mr) { return &bf16_micro_kernel<decltype(mr)::value>; },
                                           std::make_integer_sequence<int, kMaxMR>{});

// f32 panel [kc][32] (kc even) -> bf16 pairs [kc/2][32][2], the BF16x32 layout,
// rounded as convert() rounds.
void panel_to_bf16_pairs(const float* panel, int64_t kc, uint16_t* out) {
  for (int64_t k = 0; k < kc; k += 2) {
    const float* even = panel + k * kNR;
    const float* odd = even + kNR;
    uint16_t* pair = out + k / 2 * 2 * kNR;
#if TINYEMO_AVX512
    for (int64_t h = 0; h < kNR; h += 16) {
      const __m512i lo = simd::round_to_bf16_bits(_mm512_load_ps(even + h));
      const __m512i hi = simd::round_to_bf16_bits(_mm512_load_ps(odd + h));
      _mm512_store_si512(pair + 2 * h, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
#else
    for (int64_t j = 0; j < kNR; ++j) {
      pair[2 * j] = f32_to_bf16(even[j]);
      pair[2 * j + 1] = f32_to_bf16(odd[j]);
    }
#endif
  }
}

// BF16x32 weights (panels read in place), or any other weight with
// b.bf16_products: each task packs its panels per k block as f32 (as
// gemm_packed does) and rounds them to bf16 pairs.
void gemm_bf16(int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_row, int64_t a_col,
               const BOperand& b, float beta, const float* bias, float* c, int64_t ldc) {
  TE_CHECK(a_col == 1 && K % 2 == 0, "gemm: bf16 products need row-major activations and an even K, got K={}", K);
  const bool prepacked = b.dtype == DType::BF16x32;
  TE_CHECK(prepacked || !dtype_is_gemm_panels(b.dtype), "gemm: {} weights have no bf16 products",
           dtype_name(b.dtype));
  Bf16Tiles tiling;
  tiling.tiles = (M + kMaxMR - 1) / kMaxMR;
  thread_local std::vector<uint32_t> a_words;  // the caller's: tasks read it through `ap` below
  a_words.resize(static_cast<size_t>(M * K / 2));
  pack_bf16_tiles(a, a_row, M, K, tiling, a_words.data());
  const uint32_t* ap = a_words.data();
  const Plan plan = make_plan(M, N, K, dtype_block_elems(b.dtype));
  thread_pool().run(plan.n_chunks * plan.m_splits, [&](int64_t task, int) {
    thread_local Scratch f32_scratch, bf16_scratch;
    const int64_t chunk = task / plan.m_splits, split = task % plan.m_splits;
    const int64_t n0 = chunk * plan.nc, nc = std::min(plan.nc, N - n0);
    const int64_t panels = (nc + kNR - 1) / kNR;
    const int64_t t_begin = tiling.tiles * split / plan.m_splits, t_end = tiling.tiles * (split + 1) / plan.m_splits;
    float* f32_panel = prepacked ? nullptr : f32_scratch.get(static_cast<size_t>(plan.kc * kNR));
    // bf16 pairs [kc/2][32][2] per panel: half the floats of an f32 panel.
    const size_t bf16_floats = static_cast<size_t>(panels * plan.kc * kNR / 2);
    uint16_t* bpack = prepacked ? nullptr : reinterpret_cast<uint16_t*>(bf16_scratch.get(bf16_floats));
    for (int64_t k0 = 0; k0 < K; k0 += plan.kc) {
      const int64_t kc = std::min(plan.kc, K - k0);  // even: plan.kc is K or a multiple of 32
      const auto panel_at = [&](int64_t p) -> const uint16_t* {
        if (prepacked) return static_cast<const uint16_t*>(b.data) + (n0 + p * kNR) * K + k0 * kNR;
        return bpack + p * kc * kNR;
      };
      for (int64_t p = 0; p < panels && !prepacked; ++p) {
        const int64_t pn0 = n0 + p * kNR;
        pack_panel(b, pn0, std::min(kNR, N - pn0), k0, kc, f32_panel);
        panel_to_bf16_pairs(f32_panel, kc, bpack + p * kc * kNR);
      }
      const bool first = k0 == 0;
      for (int64_t t = t_begin; t < t_end; ++t) {
        const int64_t m0 = tiling.row_begin(t, M), mr = tiling.row_begin(t + 1, M) - m0;
        if (mr == 0) continue;
        const uint32_t* tile = ap + m0 * (K / 2) + (k0 / 2) * mr;
        for (int64_t p = 0; p < panels; ++p) {
          const int64_t pn0 = n0 + p * kNR;
          kBf16Kernels[mr - 1](kc / 2, tile, panel_at(p), c + m0 * ldc + pn0, ldc, std::min(kNR, N - pn0), alpha,
                               first ? beta : 1.0f, first && bias ? bias + pn0 : nullptr);
        }
      }
    }
  });
}

}  // namespace

bool has_native_bf16_gemm() { return kNativeBf16; }

void gemm_packed(int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_row, int64_t a_col,
                 const BOperand& b, float beta, const float* bias, float* c, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const int64_t block = dtype_block_elems(b.dtype);
  TE_CHECK(K % block == 0, "gemm: {} weights need K % {} == 0, got K={}", dtype_name(b.dtype), block, K);
  TE_CHECK(N % dtype_panel_rows(b.dtype) == 0, "gemm: {} weights need N % {} == 0, got N={}", dtype_name(b.dtype),
           dtype_panel_rows(b.dtype), N);
  if (b.dtype == DType::BF16x32 || b.bf16_products) {
    return gemm_bf16(M, N, K, alpha, a, a_row, a_col, b, beta, bias, c, ldc);
  }
  const bool prepacked = b.dtype == DType::F32x32;
  const Plan plan = make_plan(M, N, K, block);
  thread_pool().run(plan.n_chunks * plan.m_splits, [&](int64_t task, int) {
    thread_local Scratch b_scratch, a_scratch;
    const int64_t chunk = task / plan.m_splits, split = task % plan.m_splits;
    const int64_t n0 = chunk * plan.nc, nc = std::min(plan.nc, N - n0);
    const int64_t panels = (nc + kNR - 1) / kNR;
    const int64_t m_begin = M * split / plan.m_splits, m_end = M * (split + 1) / plan.m_splits;
    float* bpack = prepacked ? nullptr : b_scratch.get(static_cast<size_t>(panels * plan.kc * kNR));
    float* apack = a_scratch.get(static_cast<size_t>(plan.kc * kMaxMR));
    for (int64_t k0 = 0; k0 < K; k0 += plan.kc) {
      const int64_t kc = std::min(plan.kc, K - k0);
      // Panel p of this k block: in the weight itself when it is packed already
      // (panel n0 / 32 holds [K][32] floats), else packed here.
      const auto panel_at = [&](int64_t p) -> const float* {
        if (prepacked) return static_cast<const float*>(b.data) + (n0 + p * kNR) * K + k0 * kNR;
        return bpack + p * kc * kNR;
      };
      for (int64_t p = 0; p < panels && !prepacked; ++p) {
        const int64_t pn0 = n0 + p * kNR, nr = std::min(kNR, N - pn0);
        pack_panel(b, pn0, nr, k0, kc, bpack + p * kc * kNR);
      }
      const bool first = k0 == 0;
      const float beta_k = first ? beta : 1.0f;
      // Split the rows into tiles of near-equal height <= kMaxMR (32 rows: 11+11+10).
      const int64_t rows = m_end - m_begin;
      const int64_t tiles = (rows + kMaxMR - 1) / kMaxMR;
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t m0 = m_begin + rows * t / tiles, mr = m_begin + rows * (t + 1) / tiles - m0;
        if (mr == 0) continue;
        pack_a(a + m0 * a_row + k0 * a_col, a_row, a_col, mr, kc, apack);
        const auto kernel = kKernels[mr - 1];
        for (int64_t p = 0; p < panels; ++p) {
          const int64_t pn0 = n0 + p * kNR;
          kernel(kc, apack, panel_at(p), c + m0 * ldc + pn0, ldc, std::min(kNR, N - pn0), alpha, beta_k,
                 first && bias ? bias + pn0 : nullptr);
        }
      }
    }
  });
}

}  // namespace detail
TINYEMO_ISA_END
}  // namespace tinyemo
