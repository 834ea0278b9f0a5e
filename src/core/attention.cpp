// Attention as two GEMMs per head on the packed f32 kernel (scores = scale Q K^T,
// row softmax, out = P V), heads in parallel on the pool. A query block's scores
// (rows x visible keys) stay in a per-thread buffer in L2. Decode (one query row)
// treats the query heads that share a key/value head as the rows of one GEMM, so
// each K and V row is read once per token.
#include "core/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/matmul_internal.h"
#include "core/ops.h"
#include "core/simd.h"
#include "core/thread_pool.h"

namespace tinyemo {
TINYEMO_ISA_BEGIN

namespace {

// Query rows per task: bounds the score buffer (rows x kv_len floats).
constexpr int64_t kQueryBlock = 256;

// Decode attends through decode_scores + weighted_value_sum. For head_dim a
// multiple of 16 (up to 128) at any cache length: attention_bench's TinyLlama
// decode at 1024 / 4096 keys 48-50 / 175-182 us against 67-68 / 272 through the
// packed GEMM. Other head sizes take the generic mat-vec kernel for the scores,
// one horizontal sum per score, and the GEMM beyond this many keys (before the
// tiled scores, 1024 / 4096 keys: 87 / 392 us through the mat-vec kernel).
constexpr int64_t kMaxDotDecodeKeys = 256;
bool tiled_decode_scores(int64_t head_dim) { return TINYEMO_AVX512 && head_dim % 16 == 0 && head_dim <= 128; }

// Decode reads the whole K/V cache on one thread below this many bytes.
constexpr int64_t kMinParallelCacheBytes = 64 << 10;

void check_shape(const AttentionShape& s) {
  TE_CHECK(s.n_heads > 0 && s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0,
           "attention: {} query heads are not a multiple of {} key/value heads", s.n_heads, s.n_kv_heads);
  TE_CHECK(s.head_dim > 0, "attention: head_dim must be positive");
  TE_CHECK(s.q_len >= 0 && s.kv_len >= 0 && s.q_pos0 >= 0, "attention: negative length");
}

// Keys visible to query row i.
int64_t visible_keys(const AttentionShape& s, int64_t i) {
  return s.causal ? std::min(s.kv_len, s.q_pos0 + i + 1) : s.kv_len;
}

// `rows` query rows (row r at q + r * q_row) against one key/value head, all
// seeing keys [0, visible_keys(first_query + r)). Writes out rows r at out + r * out_row.
void attend_block(const AttentionShape& s, float scale, int64_t rows, int64_t first_query, const float* q,
                  int64_t q_row, const float* k, int64_t k_stride, const float* v, int64_t v_stride, float* out,
                  int64_t out_row, bool all_rows_same_query) {
  const int64_t d = s.head_dim;
  // Causal: the block's last query sees the most keys.
  const int64_t last_query = all_rows_same_query ? first_query : first_query + rows - 1;
  const int64_t kv = visible_keys(s, last_query);
  if (kv == 0) {
    for (int64_t r = 0; r < rows; ++r) std::fill(out + r * out_row, out + r * out_row + d, 0.0f);
    return;
  }
  thread_local std::vector<float> scores;
  scores.resize(static_cast<size_t>(rows * kv));
  detail::BOperand keys;  // K^T: key rows of d floats
  keys.layout = detail::BOperand::Layout::Rows;
  keys.data = k;
  keys.ld = k_stride * static_cast<int64_t>(sizeof(float));
  detail::gemm_packed(rows, kv, d, scale, q, q_row, 1, keys, 0.0f, nullptr, scores.data(), kv);
  if (s.causal && !all_rows_same_query) {
    for (int64_t r = 0; r < rows; ++r) {
      float* row = scores.data() + r * kv;
      std::fill(row + visible_keys(s, first_query + r), row + kv, -INFINITY);
    }
  }
  softmax_rows(scores.data(), rows, kv);
  detail::BOperand values;  // V: kv rows of d floats, row-major [kv, d]
  values.layout = detail::BOperand::Layout::RowMajorF32;
  values.data = v;
  values.ld = v_stride;
  detail::gemm_packed(rows, d, kv, 1.0f, scores.data(), kv, 1, values, 0.0f, nullptr, out, out_row);
}

#if TINYEMO_AVX512
// Decode reads each cached key and value row once per token, after the weight
// stream has pushed them out of the caches, in streams too short for the
// hardware prefetchers to ramp up: the score and value loops prefetch this
// many rows ahead (4 KiB at head_dim 64). OpenELM-270M q8_0 decode at a
// 700-token context, prefetch on against off alternated in one process:
// median speed-ups 1.035-1.076 (8, 16 or 32 rows ahead, 12 rounds each);
// 1.017 at 128 tokens, where the cache is small (docs/lm.md).
constexpr int64_t kPrefetchKeys = 16;

// Lane j of the result is the sum of the 16 lanes of a[j]: three rounds of
// interleave-and-add instead of 16 horizontal sums.
inline __m512 transpose_sums(const __m512 (&a)[16]) {
  __m512 pairs[8];  // per 128-bit lane: partial sums of keys 2i, 2i+1, 2i, 2i+1
  for (int i = 0; i < 8; ++i)
    pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  __m512 quads[4];  // per 128-bit lane: partial sums of keys 4i .. 4i+3
  for (int i = 0; i < 4; ++i) {
    const __m512d x = _mm512_castps_pd(pairs[2 * i]), y = _mm512_castps_pd(pairs[2 * i + 1]);
    quads[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  // Lane pairs added across 128-bit lanes (0x88: lanes 0, 2 of each; 0xDD: lanes 1, 3).
  const __m512 low = _mm512_add_ps(_mm512_shuffle_f32x4(quads[0], quads[1], 0x88),
                                   _mm512_shuffle_f32x4(quads[0], quads[1], 0xDD));
  const __m512 high = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2], quads[3], 0x88),
                                    _mm512_shuffle_f32x4(quads[2], quads[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(low, high, 0x88), _mm512_shuffle_f32x4(low, high, 0xDD));
}

// decode_scores for d = 16 C: each block of 16 keys is copied into a
// contiguous tile first, so that the 16 accumulators and the tile's constant
// offsets fit the registers (16 key pointers did not).
template <int C>
void decode_scores_tiled(const float* q, int64_t rows, const float* k, int64_t k_stride, int64_t kv, float* scores) {
  alignas(64) float tile[16 * 16 * C];
  for (int64_t j0 = 0; j0 < kv; j0 += 16) {
    const int64_t n = std::min<int64_t>(16, kv - j0);
    for (int64_t j = j0 + kPrefetchKeys; j < std::min(kv, j0 + kPrefetchKeys + 16); ++j)
      for (int c = 0; c < C; ++c) _mm_prefetch(reinterpret_cast<const char*>(k + j * k_stride + 16 * c), _MM_HINT_T0);
    for (int64_t j = 0; j < 16; ++j)
      for (int c = 0; c < C; ++c)
        _mm512_store_ps(tile + (j * C + c) * 16,
                        j < n ? _mm512_loadu_ps(k + (j0 + j) * k_stride + 16 * c) : _mm512_setzero_ps());
    for (int64_t r = 0; r < rows; ++r) {
      __m512 acc[16];
      for (auto& a : acc) a = _mm512_setzero_ps();
      for (int c = 0; c < C; ++c) {
        const __m512 qv = _mm512_loadu_ps(q + (r * C + c) * 16);
        for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(_mm512_load_ps(tile + (j * C + c) * 16), qv, acc[j]);
      }
      _mm512_mask_storeu_ps(scores + r * kv + j0, simd::first_lanes(n), transpose_sums(acc));
    }
  }
}
#endif

// scores[r * kv + j] = q_r . k_j for `rows` query rows of d floats and kv key
// rows: for head_dim 16-128 in steps of 16, 16 keys at a time with one vector
// of partial sums per key, summed across by transpose_sums (the generic
// mat-vec kernel sums each score on its own).
void decode_scores(const float* q, int64_t rows, int64_t d, const float* k, int64_t k_stride, int64_t kv,
                   float* scores) {
#if TINYEMO_AVX512
  switch (tiled_decode_scores(d) ? d / 16 : 0) {
    case 1: return decode_scores_tiled<1>(q, rows, k, k_stride, kv, scores);
    case 2: return decode_scores_tiled<2>(q, rows, k, k_stride, kv, scores);
    case 3: return decode_scores_tiled<3>(q, rows, k, k_stride, kv, scores);
    case 4: return decode_scores_tiled<4>(q, rows, k, k_stride, kv, scores);
    case 5: return decode_scores_tiled<5>(q, rows, k, k_stride, kv, scores);
    case 6: return decode_scores_tiled<6>(q, rows, k, k_stride, kv, scores);
    case 7: return decode_scores_tiled<7>(q, rows, k, k_stride, kv, scores);
    case 8: return decode_scores_tiled<8>(q, rows, k, k_stride, kv, scores);
    default: break;
  }
#else
  // Without AVX-512 there is no mat-vec kernel (detail::linear_rows_dot has no
  // f32 path there): dot products the compiler vectorises for the target.
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < kv; ++j) scores[r * kv + j] = dot(q + r * d, k + j * k_stride, d);
  return;
#endif
  detail::BOperand keys;  // key rows of d floats
  keys.layout = detail::BOperand::Layout::Rows;
  keys.data = k;
  keys.ld = k_stride * static_cast<int64_t>(sizeof(float));
  detail::linear_rows_dot(q, rows, d, keys, kv, d, nullptr, scores, kv);
}

// out[r] = sum_j p[r][j] v[j] for `rows` rows of probabilities (kv each): each
// value row is read once and added into every row's accumulator.
void weighted_value_sum(const float* p, int64_t rows, int64_t kv, const float* v, int64_t v_stride, int64_t d,
                        float* out) {
#if TINYEMO_AVX512
  // 4 rows x 4 vectors of 16 accumulators, fixed so that they stay in
  // registers; fewer rows or columns are computed on clamped or masked inputs
  // and not stored.
  constexpr int kRows = 4, kVecs = 4;
  for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
    const int64_t nr = std::min<int64_t>(kRows, rows - r0);
    const float* prob[kRows];
    for (int r = 0; r < kRows; ++r) prob[r] = p + (r0 + std::min<int64_t>(r, nr - 1)) * kv;
    for (int64_t c0 = 0; c0 < d; c0 += 16 * kVecs) {
      __mmask16 mask[kVecs];
      for (int c = 0; c < kVecs; ++c) mask[c] = simd::first_lanes(std::max<int64_t>(0, d - c0 - 16 * c));
      __m512 acc[kRows][kVecs];
      for (auto& row : acc)
        for (auto& a : row) a = _mm512_setzero_ps();
      for (int64_t j = 0; j < kv; ++j) {
        const float* vj = v + j * v_stride + c0;
        if (j + kPrefetchKeys < kv)
          for (int c = 0; c < kVecs; ++c)
            if (mask[c])
              _mm_prefetch(reinterpret_cast<const char*>(vj + kPrefetchKeys * v_stride + 16 * c), _MM_HINT_T0);
        __m512 x[kVecs];
        for (int c = 0; c < kVecs; ++c) x[c] = _mm512_maskz_loadu_ps(mask[c], vj + 16 * c);
        for (int r = 0; r < kRows; ++r) {
          const __m512 pr = _mm512_set1_ps(prob[r][j]);
          for (int c = 0; c < kVecs; ++c) acc[r][c] = _mm512_fmadd_ps(pr, x[c], acc[r][c]);
        }
      }
      for (int r = 0; r < kRows; ++r)  // constant indices keep acc out of memory
        if (r < nr)
          for (int c = 0; c < kVecs; ++c) _mm512_mask_storeu_ps(out + (r0 + r) * d + c0 + 16 * c, mask[c], acc[r][c]);
    }
  }
#else
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(out + r * d, out + (r + 1) * d, 0.0f);
    for (int64_t j = 0; j < kv; ++j)
      for (int64_t c = 0; c < d; ++c) out[r * d + c] += p[r * kv + j] * v[j * v_stride + c];
  }
#endif
}

// Decode: the `group` query heads of one key/value head (consecutive rows of d
// floats at q) against the kv > 0 keys the query sees. Two passes over the
// cache rows instead of two packed GEMMs (which repack K and V every token):
// the scores (decode_scores), then the probability-weighted sum of the value rows.
void attend_decode(const AttentionShape& s, int64_t kv, float scale, int64_t group, const float* q, const float* k,
                   int64_t k_stride, const float* v, int64_t v_stride, float* out) {
  const int64_t d = s.head_dim;
  thread_local std::vector<float> scaled_q, scores;
  scaled_q.resize(static_cast<size_t>(group * d));
  for (int64_t i = 0; i < group * d; ++i) scaled_q[i] = q[i] * scale;
  scores.resize(static_cast<size_t>(group * kv));
  decode_scores(scaled_q.data(), group, d, k, k_stride, kv, scores.data());
  softmax_rows(scores.data(), group, kv);
  weighted_value_sum(scores.data(), group, kv, v, v_stride, d, out);
}

}  // namespace

void attention(const AttentionShape& s, float scale, const float* q, int64_t q_stride, const float* k,
               int64_t k_stride, const float* v, int64_t v_stride, float* out, int64_t out_stride) {
  check_shape(s);
  if (s.q_len == 0) return;
  const int64_t d = s.head_dim, group = s.n_heads / s.n_kv_heads;
  if (s.q_len == 1) {
    // Decode: the `group` query heads of a key/value head are consecutive
    // columns of the single query row: one GEMM of `group` rows per kv head.
    // A small cache (tiny models, short contexts) is read on the calling
    // thread: forking the pool would cost more than the work.
    const int64_t cache_bytes = 2 * s.n_kv_heads * s.kv_len * d * static_cast<int64_t>(sizeof(float));
    const int64_t tasks = cache_bytes < kMinParallelCacheBytes ? 1 : s.n_kv_heads;
    const int64_t kv = visible_keys(s, 0);
    thread_pool().run(tasks, [&](int64_t task, int) {
      for (int64_t kvh = s.n_kv_heads * task / tasks; kvh < s.n_kv_heads * (task + 1) / tasks; ++kvh) {
        const int64_t h0 = kvh * group;
        if (kv > 0 && (kv <= kMaxDotDecodeKeys || tiled_decode_scores(d))) {
          attend_decode(s, kv, scale, group, q + h0 * d, k + kvh * d, k_stride, v + kvh * d, v_stride, out + h0 * d);
        } else {
          attend_block(s, scale, group, 0, q + h0 * d, d, k + kvh * d, k_stride, v + kvh * d, v_stride,
                       out + h0 * d, d, /*all_rows_same_query=*/true);
        }
      }
    });
    return;
  }
  const int64_t blocks = (s.q_len + kQueryBlock - 1) / kQueryBlock;
  thread_pool().run(s.n_heads * blocks, [&](int64_t task, int) {
    const int64_t h = task / blocks, b = task % blocks;
    const int64_t q0 = s.q_len * b / blocks, q1 = s.q_len * (b + 1) / blocks;
    const int64_t kvh = h / group;
    attend_block(s, scale, q1 - q0, q0, q + q0 * q_stride + h * d, q_stride, k + kvh * d, k_stride, v + kvh * d,
                 v_stride, out + q0 * out_stride + h * d, out_stride, /*all_rows_same_query=*/false);
  });
}

namespace reference {

void attention(const AttentionShape& s, float scale, const float* q, int64_t q_stride, const float* k,
               int64_t k_stride, const float* v, int64_t v_stride, float* out, int64_t out_stride) {
  check_shape(s);
  const int64_t group = s.n_heads / s.n_kv_heads, d = s.head_dim;
  std::vector<double> scores(static_cast<size_t>(s.kv_len));
  for (int64_t h = 0; h < s.n_heads; ++h) {
    const int64_t kvh = h / group;
    for (int64_t i = 0; i < s.q_len; ++i) {
      const float* qi = q + i * q_stride + h * d;
      const int64_t visible = visible_keys(s, i);
      double mx = -INFINITY;
      for (int64_t j = 0; j < visible; ++j) {
        const float* kj = k + j * k_stride + kvh * d;
        double acc = 0.0;
        for (int64_t c = 0; c < d; ++c) acc += static_cast<double>(qi[c]) * kj[c];
        scores[j] = acc * scale;
        mx = std::max(mx, scores[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < visible; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      float* oi = out + i * out_stride + h * d;
      for (int64_t c = 0; c < d; ++c) {
        double acc = 0.0;
        for (int64_t j = 0; j < visible; ++j) acc += scores[j] * v[j * v_stride + kvh * d + c];
        oi[c] = visible > 0 ? static_cast<float>(acc / sum) : 0.0f;
      }
    }
  }
}

}  // namespace reference

TINYEMO_ISA_END
}  // namespace tinyemo
