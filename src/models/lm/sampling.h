// Choosing the next token from logits: greedy, or sampling with temperature,
// top-k and top-p; a repetition penalty applies to both. Semantics follow
// Hugging Face's generate (RepetitionPenaltyLogitsProcessor, then
// Temperature / TopK / TopP warpers). Sampling is deterministic for a seed.
#pragma once

#include <cstdint>
#include <span>

#include "core/rng.h"

namespace tinyemo::lm {

struct SamplingOptions {
  bool greedy = true;  // argmax (first on ties); temperature / top_k / top_p unused
  float temperature = 1.0f;
  int64_t top_k = 0;    // keep the k most likely (0: off)
  float top_p = 1.0f;   // keep the most likely tokens whose mass before them is < top_p (1: off)
  float repetition_penalty = 1.0f;  // logits of seen ids: positive / p, negative * p (1: off)
  uint64_t seed = 0;
};

// Checks ranges (temperature > 0, top_p in (0, 1], ...); errors name the option.
void validate(const SamplingOptions& options);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // Next id from logits [vocab] (modified in place); `seen` are the ids the
  // repetition penalty applies to (prompt and generated so far).
  int32_t next(std::span<float> logits, std::span<const int32_t> seen);

 private:
  SamplingOptions options_;
  Rng rng_;
};

}  // namespace tinyemo::lm
