#include "core/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace tinyemo {

namespace {

// One (head, query row) at a time: scores over the visible keys, softmax, weighted sum.
void attend_rows(const AttentionShape& s, float scale, int64_t h, int64_t q_begin, int64_t q_end, const float* q,
                 int64_t q_stride, const float* k, int64_t k_stride, const float* v, int64_t v_stride, float* out,
                 int64_t out_stride, std::vector<float>& scores) {
  const int64_t group = s.n_heads / s.n_kv_heads;
  const int64_t kvh = h / group;
  const int64_t d = s.head_dim;
  scores.resize(static_cast<size_t>(s.kv_len));
  for (int64_t i = q_begin; i < q_end; ++i) {
    const float* qi = q + i * q_stride + h * d;
    const int64_t visible = s.causal ? std::min(s.kv_len, s.q_pos0 + i + 1) : s.kv_len;
    float mx = -INFINITY;
    for (int64_t j = 0; j < visible; ++j) {
      const float* kj = k + j * k_stride + kvh * d;
      float acc = 0.0f;
      for (int64_t c = 0; c < d; ++c) acc += qi[c] * kj[c];
      scores[j] = acc * scale;
      mx = std::max(mx, scores[j]);
    }
    float sum = 0.0f;
    for (int64_t j = 0; j < visible; ++j) {
      scores[j] = std::exp(scores[j] - mx);
      sum += scores[j];
    }
    const float inv = visible > 0 ? 1.0f / sum : 0.0f;
    float* oi = out + i * out_stride + h * d;
    std::fill(oi, oi + d, 0.0f);
    for (int64_t j = 0; j < visible; ++j) {
      const float w = scores[j] * inv;
      const float* vj = v + j * v_stride + kvh * d;
      for (int64_t c = 0; c < d; ++c) oi[c] += w * vj[c];
    }
  }
}

void check_shape(const AttentionShape& s) {
  TE_CHECK(s.n_heads > 0 && s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0,
           "attention: {} query heads are not a multiple of {} key/value heads", s.n_heads, s.n_kv_heads);
  TE_CHECK(s.head_dim > 0, "attention: head_dim must be positive");
}

}  // namespace

void attention(const AttentionShape& s, float scale, const float* q, int64_t q_stride, const float* k,
               int64_t k_stride, const float* v, int64_t v_stride, float* out, int64_t out_stride) {
  check_shape(s);
  const int64_t blocks_per_head = std::max<int64_t>(1, (s.q_len + 15) / 16);
  thread_pool().run(s.n_heads * blocks_per_head, [&](int64_t task, int) {
    thread_local std::vector<float> scores;
    const int64_t h = task / blocks_per_head, b = task % blocks_per_head;
    const int64_t q0 = s.q_len * b / blocks_per_head, q1 = s.q_len * (b + 1) / blocks_per_head;
    attend_rows(s, scale, h, q0, q1, q, q_stride, k, k_stride, v, v_stride, out, out_stride, scores);
  });
}

namespace reference {
void attention(const AttentionShape& s, float scale, const float* q, int64_t q_stride, const float* k,
               int64_t k_stride, const float* v, int64_t v_stride, float* out, int64_t out_stride) {
  check_shape(s);
  std::vector<float> scores;
  for (int64_t h = 0; h < s.n_heads; ++h)
    attend_rows(s, scale, h, 0, s.q_len, q, q_stride, k, k_stride, v, v_stride, out, out_stride, scores);
}
}  // namespace reference

}  // namespace tinyemo
