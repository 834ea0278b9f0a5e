// Scaled dot-product attention over row-major activations, heads packed in
// the columns (head h of a row lives at columns [h*head_dim, (h+1)*head_dim)).
#pragma once

#include <cstdint>

#include "core/isa.h"

namespace tinyemo {

struct AttentionShape {
  int64_t q_len = 0;       // query rows
  int64_t kv_len = 0;      // key/value rows
  int64_t n_heads = 0;     // query heads
  int64_t n_kv_heads = 0;  // key/value heads (grouped-query attention when < n_heads)
  int64_t head_dim = 0;
  // Causal masking: query row i sits at absolute position q_pos0 + i and sees
  // keys 0..q_pos0 + i. Non-causal: every query sees every key.
  bool causal = false;
  int64_t q_pos0 = 0;
};

// out = softmax(scale * q k^T [+ mask]) v for each head. Row strides are in floats.
TINYEMO_ISA_BEGIN
void attention(const AttentionShape& s, float scale, const float* q, int64_t q_stride, const float* k,
               int64_t k_stride, const float* v, int64_t v_stride, float* out, int64_t out_stride);

namespace reference {
void attention(const AttentionShape& s, float scale, const float* q, int64_t q_stride, const float* k,
               int64_t k_stride, const float* v, int64_t v_stride, float* out, int64_t out_stride);
}  // namespace reference
TINYEMO_ISA_END

}  // namespace tinyemo
