#include "models/lm/session.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/attention.h"
#include "core/memory_budget.h"
#include "core/matmul.h"
#include "core/ops.h"
#include "models/lm/embeddings.h"

namespace tinyemo::lm {

namespace {

void activate(Activation a, float* x, int64_t n) {
  switch (a) {
    case Activation::Silu: silu(x, n); return;
    case Activation::GeluTanh: gelu_tanh(x, n); return;
    case Activation::GeluErf: gelu_erf(x, n); return;
  }
}

// gate = act(gate) * up over n elements (up null: act(gate) alone).
void glu(Activation a, float* gate, const float* up, int64_t n) {
  activate(a, gate, n);
  if (up != nullptr)
    for (int64_t i = 0; i < n; ++i) gate[i] *= up[i];
}

// x *= scale over n elements: the model's input scale (config.embedding_scale).
void scale_rows(float scale, float* x, int64_t n) {
  if (scale == 1.0f) return;
  for (int64_t i = 0; i < n; ++i) x[i] *= scale;
}

}  // namespace

LmSession::LmSession(const LmModel& model)
    : model_(model),
      rope_(model.config().rotary_dim, model.config().rope_theta, model.config().rope_scaling),
      cache_(model.layers().size()) {
  for (const LmLayer& L : model.layers()) {
    widest_q_ = std::max(widest_q_, L.shape.n_heads * model.config().head_dim);
    widest_qkv_ = std::max(widest_qkv_, (L.shape.n_heads + 2 * L.shape.n_kv_heads) * model.config().head_dim);
    widest_ffn_ = std::max(widest_ffn_, L.shape.ffn_dim);
  }
}

void LmSession::truncate(int64_t length) {
  TE_CHECK(length >= 0 && length <= length_, "LM session: cannot truncate {} positions to {}", length_, length);
  length_ = length;
}

void LmSession::reserve(int64_t positions) {
  if (positions <= capacity_) return;
  const LmConfig& c = model_.config();
  double bytes = 0.0;  // per position: keys and values of every layer
  for (const LmLayer& L : model_.layers()) bytes += 2.0 * 4.0 * static_cast<double>(L.shape.n_kv_heads * c.head_dim);
  // Doubling keeps regrowth rare; near the memory's end only what is needed is taken.
  int64_t capacity = std::max(positions, std::min<int64_t>(c.max_context, 2 * capacity_));
  if (bytes * static_cast<double>(capacity) > static_cast<double>(physical_memory_bytes())) capacity = positions;
  check_memory_request(bytes * static_cast<double>(capacity), fmt::format("a KV cache of {} positions", capacity));
  capacity_ = capacity;
  for (size_t l = 0; l < cache_.size(); ++l) {
    const size_t n = static_cast<size_t>(capacity_ * model_.layers()[l].shape.n_kv_heads * c.head_dim);
    cache_[l].k.resize(n);
    cache_[l].v.resize(n);
  }
}

void LmSession::norm(const LmNorm& n, NormKind kind, double eps, const float* x, int64_t rows, int64_t cols,
                     float* out) const {
  if (kind == NormKind::Rms) {
    rms_norm(x, rows, cols, n.weight.data<float>(), static_cast<float>(eps), out);
  } else {
    layer_norm(x, rows, cols, n.weight.data<float>(), n.bias_data(), static_cast<float>(eps), out);
  }
}

void LmSession::prepare_heads(const LmLayer& L, int64_t T, int64_t kv0, int64_t kv1, float* k_new, float* v_new) {
  const LmConfig& c = model_.config();
  const int64_t hd = c.head_dim, group = L.shape.n_heads / L.shape.n_kv_heads, heads = kv1 - kv0;
  const int64_t qdim = L.shape.n_heads * hd, kvdim = L.shape.n_kv_heads * hd;
  const int64_t q0 = kv0 * group * hd, k0 = kv0 * hd;
  for (int64_t t = 0; t < T; ++t) {
    float* q = q_.data() + t * qdim + q0;
    float* k = k_new + t * kvdim + k0;
    if (L.qkv.defined()) {  // OpenELM's fused rows: [q heads | k heads | v heads]
      const float* row = qkv_.data() + t * (qdim + 2 * kvdim);
      std::memcpy(q, row + q0, sizeof(float) * heads * group * hd);
      std::memcpy(k, row + qdim + k0, sizeof(float) * heads * hd);
      std::memcpy(v_new + t * kvdim + k0, row + qdim + kvdim + k0, sizeof(float) * heads * hd);
    }
    if (c.qk_norm) {
      norm(L.q_norm, c.qk_norm_kind, c.qk_norm_eps, q, heads * group, hd, q);
      norm(L.k_norm, c.qk_norm_kind, c.qk_norm_eps, k, heads, hd, k);
    }
  }
  rope_.apply(cos_, sin_, q_.data() + q0, T, qdim, heads * group, hd);
  rope_.apply(cos_, sin_, k_new + k0, T, kvdim, heads, hd);
}

void LmSession::attend(const LmLayer& L, const LayerCache& cache, int64_t T, int64_t kv0, int64_t kv1) {
  const int64_t hd = model_.config().head_dim, group = L.shape.n_heads / L.shape.n_kv_heads;
  const int64_t qdim = L.shape.n_heads * hd, kvdim = L.shape.n_kv_heads * hd;
  AttentionShape s;
  s.q_len = T;
  s.kv_len = length_ + T;
  s.n_heads = (kv1 - kv0) * group;
  s.n_kv_heads = kv1 - kv0;
  s.head_dim = hd;
  s.causal = true;
  s.q_pos0 = length_;
  attention(s, 1.0f / std::sqrt(static_cast<float>(hd)), q_.data() + kv0 * group * hd, qdim,
            cache.k.data() + kv0 * hd, kvdim, cache.v.data() + kv0 * hd, kvdim, attn_.data() + kv0 * group * hd, qdim);
}

void LmSession::attention_block(const LmLayer& L, LayerCache& cache, int64_t T) {
  const LmConfig& c = model_.config();
  const int64_t hd = c.head_dim, nkv = L.shape.n_kv_heads;
  const int64_t qdim = L.shape.n_heads * hd, kvdim = nkv * hd;
  q_.resize(static_cast<size_t>(T * qdim));
  float* k_new = cache.k.data() + length_ * kvdim;
  float* v_new = cache.v.data() + length_ * kvdim;
  if (L.qkv.defined()) {
    qkv_.resize(static_cast<size_t>(T * (qdim + 2 * kvdim)));
    linear(h_.data(), T, L.qkv.weight, L.qkv.bias_data(), qkv_.data(), 0, 0, model_.prefill_compute());
  } else {
    const LinearTarget qkv[] = {{&L.q.weight, L.q.bias_data(), q_.data()},
                                {&L.k.weight, L.k.bias_data(), k_new},
                                {&L.v.weight, L.v.bias_data(), v_new}};
    linear_shared_input(h_.data(), T, qkv, model_.prefill_compute());
  }
  prepare_heads(L, T, 0, nkv, k_new, v_new);
  attn_.resize(static_cast<size_t>(T * qdim));
  attend(L, cache, T, 0, nkv);
  attn_out_.resize(static_cast<size_t>(T * c.hidden));
  linear(attn_.data(), T, L.o.weight, L.o.bias_data(), attn_out_.data(), 0, 0, model_.prefill_compute());
}

void LmSession::mlp_block(const LmLayer& L, int64_t T, const float* in, float* out) {
  const LmConfig& c = model_.config();
  const int64_t F = L.shape.ffn_dim;
  if (L.gate_up.defined()) {
    // OpenELM's proj_1: act(first half) * second half, in place in the first half.
    mlp_.resize(static_cast<size_t>(T * 2 * F));
    linear(in, T, L.gate_up.weight, L.gate_up.bias_data(), mlp_.data(), 0, 0, model_.prefill_compute());
    for (int64_t t = 0; t < T; ++t) glu(c.activation, mlp_.data() + t * 2 * F, mlp_.data() + t * 2 * F + F, F);
    linear(mlp_.data(), T, L.down.weight, L.down.bias_data(), out, 2 * F, 0, model_.prefill_compute());
    return;
  }
  mlp_.resize(static_cast<size_t>(T * F));
  if (L.gate.defined()) {
    mlp_up_.resize(static_cast<size_t>(T * F));
    const LinearTarget gate_up[] = {{&L.gate.weight, L.gate.bias_data(), mlp_.data()},
                                    {&L.up.weight, L.up.bias_data(), mlp_up_.data()}};
    linear_shared_input(in, T, gate_up, model_.prefill_compute());
    glu(c.activation, mlp_.data(), mlp_up_.data(), T * F);
  } else {
    linear(in, T, L.up.weight, L.up.bias_data(), mlp_.data(), 0, 0, model_.prefill_compute());
    glu(c.activation, mlp_.data(), nullptr, T * F);
  }
  linear(mlp_.data(), T, L.down.weight, L.down.bias_data(), out, 0, 0, model_.prefill_compute());
}

void LmSession::decode_attention(Team& team, const LmLayer& L, LayerCache& cache, const float* h) {
  const int64_t kvdim = L.shape.n_kv_heads * model_.config().head_dim;
  float* k_new = cache.k.data() + length_ * kvdim;
  float* v_new = cache.v.data() + length_ * kvdim;
  if (L.qkv.defined()) {
    linear(team, h, 1, L.qkv.weight, L.qkv.bias_data(), qkv_.data());
  } else {
    const LinearTarget qkv[] = {{&L.q.weight, L.q.bias_data(), q_.data()},
                                {&L.k.weight, L.k.bias_data(), k_new},
                                {&L.v.weight, L.v.bias_data(), v_new}};
    linear_shared_input(team, h, 1, qkv);
  }
  // This member's key/value heads, with the query heads that attend to them.
  const auto [kv0, kv1] = team.share(L.shape.n_kv_heads);
  if (kv0 < kv1) {
    prepare_heads(L, 1, kv0, kv1, k_new, v_new);
    attend(L, cache, 1, kv0, kv1);
  }
  team.barrier();
  linear(team, attn_.data(), 1, L.o.weight, L.o.bias_data(), attn_out_.data());
}

void LmSession::decode_mlp(Team& team, const LmLayer& L, const float* h, float* out) {
  const int64_t F = L.shape.ffn_dim;
  const float* up = nullptr;
  if (L.gate_up.defined()) {
    linear(team, h, 1, L.gate_up.weight, L.gate_up.bias_data(), mlp_.data());
    up = mlp_.data() + F;
  } else if (L.gate.defined()) {
    const LinearTarget gate_up[] = {{&L.gate.weight, L.gate.bias_data(), mlp_.data()},
                                    {&L.up.weight, L.up.bias_data(), mlp_up_.data()}};
    linear_shared_input(team, h, 1, gate_up);
    up = mlp_up_.data();
  } else {
    linear(team, h, 1, L.up.weight, L.up.bias_data(), mlp_.data());
  }
  const auto [i0, i1] = team.share(F, 16);
  glu(model_.config().activation, mlp_.data() + i0, up ? up + i0 : nullptr, i1 - i0);
  team.barrier();
  linear(team, mlp_.data(), 1, L.down.weight, L.down.bias_data(), out);
}

void LmSession::decode_step(const float* embedding, float* logits) {
  const LmConfig& c = model_.config();
  const int64_t H = c.hidden;
  // Shared buffers at the widest layer's sizes: members never resize them.
  q_.resize(static_cast<size_t>(widest_q_));
  attn_.resize(static_cast<size_t>(widest_q_));
  qkv_.resize(static_cast<size_t>(widest_qkv_));
  attn_out_.resize(static_cast<size_t>(H));
  mlp_.resize(static_cast<size_t>(2 * widest_ffn_));
  mlp_up_.resize(static_cast<size_t>(widest_ffn_));
  mlp_out_.resize(static_cast<size_t>(H));
  const int members = num_threads();
  member_x_.resize(static_cast<size_t>(members * H));
  member_h_.resize(static_cast<size_t>(members * H));
  run_team([&](Team& team) {
    float* x = member_x_.data() + team.index() * H;
    float* h = member_h_.data() + team.index() * H;
    std::copy(embedding, embedding + H, x);
    scale_rows(c.embedding_scale, x, H);
    for (size_t l = 0; l < model_.layers().size(); ++l) {
      const LmLayer& L = model_.layers()[l];
      norm(L.attn_norm, c.norm, c.norm_eps, x, 1, H, h);
      decode_attention(team, L, cache_[l], h);
      if (c.parallel_block) {
        decode_mlp(team, L, h, mlp_out_.data());
        add_inplace(x, attn_out_.data(), H);
        add_inplace(x, mlp_out_.data(), H);
      } else {
        add_inplace(x, attn_out_.data(), H);
        norm(L.mlp_norm, c.norm, c.norm_eps, x, 1, H, h);
        decode_mlp(team, L, h, mlp_out_.data());
        add_inplace(x, mlp_out_.data(), H);
      }
    }
    norm(model_.final_norm(), c.norm, c.norm_eps, x, 1, H, h);
    linear(team, h, 1, model_.lm_head().weight, model_.lm_head().bias_data(), logits);
  });
}

Tensor LmSession::forward(std::span<const int32_t> ids, bool all_positions) {
  return forward(embed_tokens(model_, ids), all_positions);
}

Tensor LmSession::forward(const Tensor& embeddings, bool all_positions) {
  const LmConfig& c = model_.config();
  const int64_t H = c.hidden;
  TE_CHECK(embeddings.ndim() == 2 && embeddings.dim(1) == H && embeddings.dtype() == DType::F32,
           "LM input: expected F32 embeddings [T, {}], got {} {}", H, dtype_name(embeddings.dtype()),
           shape_str(embeddings.shape()));
  const int64_t T = embeddings.dim(0);
  TE_CHECK(T > 0, "LM input: empty sequence");
  if (length_ + T > c.max_context) {
    throw ContextFullError(fmt::format("the sequence would be {} positions long, more than the model's context of {} ({}: {})",
                                       length_ + T, c.max_context, c.where, lm_context_field(c.arch)));
  }
  reserve(length_ + T);
  rope_.tables(length_, T, &cos_, &sin_);
  if (T == 1) {
    Tensor logits = Tensor::empty(DType::F32, {1, c.vocab});
    decode_step(embeddings.data<float>(), logits.mutable_data<float>());
    length_ += 1;
    return logits;
  }

  x_.assign(embeddings.data<float>(), embeddings.data<float>() + T * H);
  scale_rows(c.embedding_scale, x_.data(), T * H);
  h_.resize(static_cast<size_t>(T * H));
  mlp_out_.resize(static_cast<size_t>(T * H));
  for (size_t l = 0; l < model_.layers().size(); ++l) {
    const LmLayer& L = model_.layers()[l];
    norm(L.attn_norm, c.norm, c.norm_eps, x_.data(), T, H, h_.data());
    attention_block(L, cache_[l], T);
    if (c.parallel_block) {
      // Phi: attention and MLP both read the same normalised input.
      mlp_block(L, T, h_.data(), mlp_out_.data());
      add_inplace(x_.data(), attn_out_.data(), T * H);
      add_inplace(x_.data(), mlp_out_.data(), T * H);
    } else {
      add_inplace(x_.data(), attn_out_.data(), T * H);
      norm(L.mlp_norm, c.norm, c.norm_eps, x_.data(), T, H, h_.data());
      mlp_block(L, T, h_.data(), mlp_out_.data());
      add_inplace(x_.data(), mlp_out_.data(), T * H);
    }
  }
  length_ += T;

  const int64_t first = all_positions ? 0 : T - 1, rows = T - first;
  norm(model_.final_norm(), c.norm, c.norm_eps, x_.data() + first * H, rows, H, h_.data());
  Tensor logits = Tensor::empty(DType::F32, {rows, c.vocab});
  linear(h_.data(), rows, model_.lm_head().weight, model_.lm_head().bias_data(), logits.mutable_data<float>());
  return logits;
}

}  // namespace tinyemo::lm
