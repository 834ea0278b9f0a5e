#include "models/projector/losses.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "models/projector/mlp.h"

namespace tinyemo::projector {

std::string_view loss_name(LossKind kind) {
  switch (kind) {
    case LossKind::InfoNCE: return "infonce";
    case LossKind::Cosine: return "cosine";
    case LossKind::NTXent: return "ntxent";
    case LossKind::SoftmaxCE: return "ce";
  }
  return "?";
}

LossKind parse_loss(std::string_view name) {
  for (LossKind k : {LossKind::InfoNCE, LossKind::Cosine, LossKind::NTXent, LossKind::SoftmaxCE}) {
    if (name == loss_name(k)) return k;
  }
  fail("unknown loss \"{}\" (expected infonce, cosine, ntxent or ce)", name);
}

double default_temperature(LossKind kind) {
  switch (kind) {
    case LossKind::NTXent: return 0.07;
    default: return 0.1;
  }
}

namespace {

template <class T>
T info_nce(const T* C, const int64_t* y, int64_t B, int64_t L, T tau, T* dC) {
  // Per sample: the logits [pos, neg_1 .. neg_N] (negatives in batch order)
  // and the count P of its numerator entries.
  std::vector<T> s;
  std::vector<int64_t> col;
  T total = 0;
  int64_t used = 0;
  if (dC) std::fill_n(dC, B * L, T(0));
  for (int64_t i = 0; i < B; ++i) {
    s.clear();
    col.clear();
    int64_t same = 0;
    s.push_back(C[i * L + y[i]] / tau);
    col.push_back(y[i]);
    for (int64_t j = 0; j < B; ++j) {
      if (y[j] == y[i]) {
        ++same;
      } else {
        s.push_back(C[i * L + y[j]] / tau);
        col.push_back(y[j]);
      }
    }
    const int64_t P = same - 1, n = static_cast<int64_t>(s.size());
    if (P == 0 || n == 1) continue;
    const int64_t num_count = std::min(P, n);
    const T mx = *std::max_element(s.begin(), s.end());
    T den = 0, num = 0;
    for (int64_t k = 0; k < n; ++k) {
      const T e = std::exp(s[k] - mx);
      den += e;
      if (k < num_count) num += e;
    }
    total += std::log(den) - std::log(num);
    ++used;
    if (dC) {
      for (int64_t k = 0; k < n; ++k) {
        const T e = std::exp(s[k] - mx);
        const T ds = e / den - (k < num_count ? e / num : T(0));
        dC[i * L + col[k]] += ds / tau;
      }
    }
  }
  if (used == 0) return T(0);
  if (dC) {
    for (int64_t k = 0; k < B * L; ++k) dC[k] /= static_cast<T>(used);
  }
  return total / static_cast<T>(used);
}

template <class T>
T cosine_embedding(const T* C, const int64_t* y, int64_t B, int64_t L, T* dC) {
  T total = 0;
  if (dC) std::fill_n(dC, B * L, T(0));
  for (int64_t i = 0; i < B; ++i) {
    total += T(1) - C[i * L + y[i]];
    if (dC) dC[i * L + y[i]] = T(-1) / static_cast<T>(B);
  }
  return total / static_cast<T>(B);
}

template <class T>
T nt_xent(const T* C, const int64_t* y, int64_t B, int64_t L, T tau, T* dC) {
  if (dC) std::fill_n(dC, B * L, T(0));
  std::vector<int64_t> same(static_cast<size_t>(B), 0);
  int64_t pos_pairs = 0, neg_pairs = 0;
  for (int64_t i = 0; i < B; ++i) {
    for (int64_t j = 0; j < B; ++j) same[i] += y[j] == y[i];
    pos_pairs += same[i] - 1;
    neg_pairs += B - same[i];
  }
  // pytorch_metric_learning returns a zero loss when there are no pairs of
  // either kind (or at most one of each).
  if (pos_pairs == 0 || neg_pairs == 0 || (pos_pairs <= 1 && neg_pairs <= 1)) return T(0);
  // log(q + tiny) as the library writes it (tiny = float32's smallest normal).
  const T tiny = static_cast<T>(std::numeric_limits<float>::min());
  T total = 0;
  for (int64_t i = 0; i < B; ++i) {
    const int64_t P = same[i] - 1;
    if (P == 0) continue;
    const T sp = C[i * L + y[i]] / tau;
    T mx = sp;
    for (int64_t j = 0; j < B; ++j) {
      if (y[j] != y[i]) mx = std::max(mx, C[i * L + y[j]] / tau);
    }
    const T ep = std::exp(sp - mx);
    T den = ep;
    for (int64_t j = 0; j < B; ++j) {
      if (y[j] != y[i]) den += std::exp(C[i * L + y[j]] / tau - mx);
    }
    const T q = ep / den;
    total += static_cast<T>(P) * -std::log(q + tiny);
    if (dC) {
      // d(-log(q + tiny)) = -dq / (q + tiny); dq/dsp = q (1 - q), dq/dn_k = -q p_k.
      const T w = static_cast<T>(P) / static_cast<T>(pos_pairs) / (q + tiny) / tau;
      dC[i * L + y[i]] += -w * q * (T(1) - q);
      for (int64_t j = 0; j < B; ++j) {
        if (y[j] != y[i]) dC[i * L + y[j]] += w * q * std::exp(C[i * L + y[j]] / tau - mx) / den;
      }
    }
  }
  return total / static_cast<T>(pos_pairs);
}

template <class T>
T softmax_ce(const T* C, const int64_t* y, int64_t B, int64_t L, T tau, T eps, T* dC) {
  std::vector<T> p(static_cast<size_t>(L));
  T total = 0;
  for (int64_t i = 0; i < B; ++i) {
    const T* c = C + i * L;
    T mx = c[0] / tau;
    for (int64_t l = 1; l < L; ++l) mx = std::max(mx, c[l] / tau);
    T sum = 0;
    for (int64_t l = 0; l < L; ++l) sum += p[l] = std::exp(c[l] / tau - mx);
    const T log_sum = std::log(sum) + mx;
    for (int64_t l = 0; l < L; ++l) {
      const T target = (l == y[i] ? T(1) - eps : T(0)) + eps / static_cast<T>(L);
      total += target * (log_sum - c[l] / tau);
      if (dC) dC[i * L + l] = (p[l] / sum - target) / tau / static_cast<T>(B);
    }
  }
  return total / static_cast<T>(B);
}

}  // namespace

template <class T>
T loss_from_cosines(const LossSpec& spec, const T* cos, const int64_t* labels, int64_t B, int64_t L, T* dcos) {
  for (int64_t i = 0; i < B; ++i) {
    TE_CHECK(labels[i] >= 0 && labels[i] < L, "label id {} out of range for {} labels", labels[i], L);
  }
  const T tau = static_cast<T>(spec.temperature);
  switch (spec.kind) {
    case LossKind::InfoNCE: return info_nce(cos, labels, B, L, tau, dcos);
    case LossKind::Cosine: return cosine_embedding(cos, labels, B, L, dcos);
    case LossKind::NTXent: return nt_xent(cos, labels, B, L, tau, dcos);
    case LossKind::SoftmaxCE:
      return softmax_ce(cos, labels, B, L, tau, static_cast<T>(spec.label_smoothing), dcos);
  }
  fail("unknown loss");
}

template <class T>
T embedding_loss(const LossSpec& spec, const T* z, const T* anchors, const int64_t* labels, int64_t B, int64_t L,
                 int64_t H, T* dz, T* danchors, EmbeddingLossBuffers<T>& w) {
  w.u.resize(static_cast<size_t>(B * H));
  w.du.resize(static_cast<size_t>(B * H));
  w.a.resize(static_cast<size_t>(L * H));
  w.cos.resize(static_cast<size_t>(B * L));
  w.dcos.resize(static_cast<size_t>(B * L));
  normalize_rows<T>(z, B, H, w.u.data());
  normalize_rows<T>(anchors, L, H, w.a.data());
  gemm_any<T>(false, true, B, L, H, T(1), w.u.data(), H, w.a.data(), H, T(0), w.cos.data(), L);
  const T loss = loss_from_cosines<T>(spec, w.cos.data(), labels, B, L, w.dcos.data());
  gemm_any<T>(false, false, B, H, L, T(1), w.dcos.data(), L, w.a.data(), H, T(0), w.du.data(), H);
  normalize_rows_backward<T>(z, w.u.data(), w.du.data(), B, H, dz);
  if (danchors != nullptr) {
    w.da.resize(static_cast<size_t>(L * H));
    gemm_any<T>(true, false, L, H, B, T(1), w.dcos.data(), L, w.u.data(), H, T(0), w.da.data(), H);
    normalize_rows_backward<T>(anchors, w.a.data(), w.da.data(), L, H, danchors);
  }
  return loss;
}

template float embedding_loss<float>(const LossSpec&, const float*, const float*, const int64_t*, int64_t, int64_t,
                                     int64_t, float*, float*, EmbeddingLossBuffers<float>&);
template double embedding_loss<double>(const LossSpec&, const double*, const double*, const int64_t*, int64_t,
                                       int64_t, int64_t, double*, double*, EmbeddingLossBuffers<double>&);
template float loss_from_cosines<float>(const LossSpec&, const float*, const int64_t*, int64_t, int64_t, float*);
template double loss_from_cosines<double>(const LossSpec&, const double*, const int64_t*, int64_t, int64_t,
                                          double*);

}  // namespace tinyemo::projector
