#include "models/lm/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace tinyemo::lm {

void validate(const SamplingOptions& o) {
  TE_CHECK(o.greedy || (o.temperature > 0.0f && std::isfinite(o.temperature)),
           "sampling: temperature must be positive (use greedy decoding for 0), got {}", o.temperature);
  TE_CHECK(o.top_k >= 0, "sampling: top-k must be >= 0, got {}", o.top_k);
  TE_CHECK(o.top_p > 0.0f && o.top_p <= 1.0f, "sampling: top-p must be in (0, 1], got {}", o.top_p);
  TE_CHECK(o.repetition_penalty > 0.0f && std::isfinite(o.repetition_penalty),
           "sampling: repetition penalty must be positive, got {}", o.repetition_penalty);
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) { validate(options); }

int32_t Sampler::next(std::span<float> logits, std::span<const int32_t> seen) {
  const int64_t V = static_cast<int64_t>(logits.size());
  TE_CHECK(V > 0, "sampling from empty logits");
  if (options_.repetition_penalty != 1.0f) {
    std::vector<bool> done(static_cast<size_t>(V), false);
    for (int32_t id : seen) {
      if (id < 0 || id >= V || done[id]) continue;
      done[id] = true;
      float& l = logits[id];
      l = l < 0.0f ? l * options_.repetition_penalty : l / options_.repetition_penalty;
    }
  }
  if (options_.greedy) return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());

  // Candidates by decreasing logit (stable: lower id first on ties).
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  int64_t keep = V;
  if (options_.top_k > 0 && options_.top_k < V) {
    // Ties with the k-th logit stay, as torch.topk's threshold keeps them.
    const float kth = logits[order[options_.top_k - 1]];
    keep = options_.top_k;
    while (keep < V && logits[order[keep]] == kth) ++keep;
  }
  std::vector<double> p(static_cast<size_t>(keep));
  const double inv_t = 1.0 / options_.temperature;
  const double top = logits[order[0]] * inv_t;
  double total = 0.0;
  for (int64_t i = 0; i < keep; ++i) total += p[i] = std::exp(logits[order[i]] * inv_t - top);
  if (options_.top_p < 1.0f) {
    // Keep a token while the probability mass ranked above it is below top_p.
    double before = 0.0;
    int64_t n = 0;
    while (n < keep && before / total < options_.top_p) before += p[n++];
    keep = std::max<int64_t>(n, 1);
    total = std::accumulate(p.begin(), p.begin() + keep, 0.0);
  }
  const double u = rng_.uniform() * total;
  double acc = 0.0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += p[i];
    if (u < acc) return order[i];
  }
  return order[keep - 1];
}

}  // namespace tinyemo::lm
