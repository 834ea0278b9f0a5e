// Runs an LmModel over a growing sequence: a prefill of many rows, then one row
// per decode step, keeping every layer's keys (after RoPE) and values so each
// step attends to all earlier positions without recomputing them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "models/lm/model.h"
#include "models/lm/rope.h"

namespace tinyemo::lm {

class LmSession {
 public:
  explicit LmSession(const LmModel& model);

  const LmModel& model() const { return model_; }
  // Positions consumed so far (the KV cache length).
  int64_t length() const { return length_; }
  // Forgets the sequence (keeps the allocations).
  void reset() { length_ = 0; }
  // Forgets the positions from `length` on; the cache before them stays valid,
  // so a shared prefix (a system prompt) is computed once and rewound to.
  // A copy of a session (copy construction) is a snapshot of its cache.
  void truncate(int64_t length);
  // Makes room for `positions` without regrowing the cache later.
  void reserve(int64_t positions);

  // Appends `embeddings` (F32 [T, hidden]) at positions length() .. length()+T-1
  // and returns F32 logits: [T, vocab] when all_positions, else [1, vocab] for
  // the last row. Refuses sequences longer than the model's context
  // (ContextFullError, nothing appended). The rows are what the model's
  // embedding layer gives (embed_tokens, inserted image rows): the model's own
  // input scale (Gemma's sqrt(hidden_size), config.embedding_scale) is applied
  // here, to every row alike.
  Tensor forward(const Tensor& embeddings, bool all_positions = false);
  // The same for token ids.
  Tensor forward(std::span<const int32_t> ids, bool all_positions = false);

 private:
  struct LayerCache {
    std::vector<float> k, v;  // [capacity, n_kv_heads * head_dim]
  };
  void attention_block(const LmLayer& L, LayerCache& cache, int64_t T);
  // The T new rows' heads of key/value heads [kv0, kv1) and their query heads:
  // taken out of OpenELM's fused rows (qkv_), q/k-normed and rotated in place.
  void prepare_heads(const LmLayer& L, int64_t T, int64_t kv0, int64_t kv1, float* k_new, float* v_new);
  // Attention of those query heads over the cache, into attn_.
  void attend(const LmLayer& L, const LayerCache& cache, int64_t T, int64_t kv0, int64_t kv1);
  void mlp_block(const LmLayer& L, int64_t T, const float* in, float* out);
  // One position (decode) as one team of the pool's threads: mat-vecs split by
  // rows, attention by key/value heads, the residual stream and norms computed
  // by every member on its own copy (docs/lm.md).
  void decode_step(const float* embedding, float* logits);
  void decode_attention(Team& team, const LmLayer& L, LayerCache& cache, const float* h);
  void decode_mlp(Team& team, const LmLayer& L, const float* h, float* out);
  void norm(const LmNorm& n, NormKind kind, double eps, const float* x, int64_t rows, int64_t cols, float* out) const;

  const LmModel& model_;
  Rope rope_;
  int64_t length_ = 0;
  int64_t capacity_ = 0;
  std::vector<LayerCache> cache_;
  // Scratch, sized per call.
  std::vector<float> x_, h_, q_, qkv_, attn_, attn_out_, mlp_, mlp_up_, mlp_out_, cos_, sin_;
  std::vector<float> member_x_, member_h_;  // decode: each team member's residual stream and normed input
  int64_t widest_q_ = 0, widest_qkv_ = 0, widest_ffn_ = 0;  // over the layers: decode's buffer sizes
};

}  // namespace tinyemo::lm
