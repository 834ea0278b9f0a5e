#include "models/lm/benchmark.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/machine_limits.h"
#include "core/thread_pool.h"
#include "models/lm/session.h"

namespace tinyemo {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int32_t argmax(const Tensor& logits) {
  const float* p = logits.data<float>();
  return static_cast<int32_t>(std::max_element(p, p + logits.numel()) - p);
}

}  // namespace

nlohmann::json benchmark_lm(const LmModel& model, int64_t prompt_tokens, int64_t gen_tokens) {
  const LmConfig& c = model.config();
  TE_CHECK(prompt_tokens > 0 && gen_tokens > 0, "benchmark: prompt and generated token counts must be positive");
  TE_CHECK(prompt_tokens + gen_tokens <= c.max_context, "benchmark: {} + {} tokens exceed the context of {}",
           prompt_tokens, gen_tokens, c.max_context);
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_tokens));
  for (int64_t i = 0; i < prompt_tokens; ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % c.vocab);

  // Prefill twice (the first run also faults in pages and warms caches); keep the faster.
  LmSession session(model);
  session.reserve(prompt_tokens + gen_tokens);
  double prefill = 1e30;
  Tensor logits;
  for (int rep = 0; rep < 2; ++rep) {
    session.reset();
    const double t0 = now_seconds();
    logits = session.forward(prompt);
    prefill = std::min(prefill, now_seconds() - t0);
  }
  // Batch-1 decode from the cache: every step reads all weights once.
  const double t0 = now_seconds();
  for (int64_t i = 0; i < gen_tokens; ++i) {
    const int32_t id = argmax(logits);
    logits = session.forward(std::span<const int32_t>(&id, 1));
  }
  const double decode = now_seconds() - t0;

  const double read_bw = measure_read_bandwidth();
  const double copy_bw = measure_copy_bandwidth();
  const double peak = peak_gflops(PeakKind::F32Fma);
  // Attention FLOPs of a causal prefill: q.k and p.v, 2 flops each, over T(T+1)/2 pairs per head.
  double attention_flops = 0.0;
  for (const LmLayer& L : model.layers())
    attention_flops += 4.0 * L.shape.n_heads * c.head_dim * (prompt_tokens * (prompt_tokens + 1) / 2.0);
  const double prefill_flops = static_cast<double>(model.matmul_flops_per_token()) * prompt_tokens + attention_flops;
  const double bytes = static_cast<double>(model.weight_bytes_per_token());
  const double decode_tps = gen_tokens / decode;
  const double bound_tps = read_bw * 1e9 / bytes;
  return {{"architecture", c.architecture},
          {"weight_dtype", dtype_name(model.layers().front().down.weight.dtype())},
          {"threads", num_threads()},
          {"parameters", model.parameter_count()},
          {"prompt_tokens", prompt_tokens},
          {"gen_tokens", gen_tokens},
          {"prefill_seconds", prefill},
          {"prefill_tokens_per_s", prompt_tokens / prefill},
          {"prefill_gflops", prefill_flops / prefill / 1e9},
          {"peak_f32_gflops", peak},
          {"prefill_fraction_of_peak", prefill_flops / prefill / 1e9 / peak},
          {"decode_seconds", decode},
          {"decode_tokens_per_s", decode_tps},
          {"weight_bytes_per_token", model.weight_bytes_per_token()},
          {"read_bandwidth_gb_s", read_bw},
          {"copy_bandwidth_gb_s", copy_bw},
          {"decode_bound_tokens_per_s", bound_tps},
          {"decode_fraction_of_bound", decode_tps / bound_tps}};
}

}  // namespace tinyemo
