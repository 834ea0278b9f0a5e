#include "models/lm/benchmark.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/machine_limits.h"
#include "core/thread_pool.h"
#include "models/lm/session.h"

namespace tinyemo::lm {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Decode is timed in this many chunks with a bandwidth probe between them.
constexpr int64_t kDecodeChunks = 4;

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

  // Probes the machine's bandwidth before the prefill and between the decode
  // chunks: a shared VM's bandwidth moves by tens of percent within seconds, so
  // the best probe of the run stands for the machine's limit.
  BandwidthProbe probe;
  std::vector<double> read_probes, copy_probes;
  auto measure_bandwidth = [&] {
    read_probes.push_back(probe.read());
    copy_probes.push_back(probe.copy());
  };
  measure_bandwidth();

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
  // Batch-1 decode from the cache (every step reads all weights once), in a few
  // chunks with a bandwidth probe after each.
  const int64_t chunks = std::min<int64_t>(kDecodeChunks, gen_tokens);
  double decode = 0.0;
  nlohmann::json chunk_tps = nlohmann::json::array();
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t steps = gen_tokens * (chunk + 1) / chunks - gen_tokens * chunk / chunks;
    const double t0 = now_seconds();
    for (int64_t i = 0; i < steps; ++i) {
      const int32_t id = argmax(logits);
      logits = session.forward(std::span<const int32_t>(&id, 1));
    }
    const double seconds = now_seconds() - t0;
    decode += seconds;
    chunk_tps.push_back(steps / seconds);
    measure_bandwidth();
  }

  // The same against the bandwidth around each chunk: its tokens/s over the
  // bound from the mean of the copy probes just before and after it, median
  // over the chunks. Best-of-run (above) is the conservative figure; this one
  // compares like with like when the VM's bandwidth moves between chunks.
  std::vector<double> chunk_fractions;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const double around = 0.5 * (copy_probes[chunk] + copy_probes[chunk + 1]);
    chunk_fractions.push_back(chunk_tps[chunk].get<double>() * model.weight_bytes_per_token() / (around * 1e9));
  }
  std::vector<double> sorted = chunk_fractions;
  std::sort(sorted.begin(), sorted.end());
  const size_t mid = sorted.size() / 2;
  const double adjacent_fraction = sorted.size() % 2 == 1 ? sorted[mid] : 0.5 * (sorted[mid - 1] + sorted[mid]);

  const double read_bw = *std::max_element(read_probes.begin(), read_probes.end());
  const double copy_bw = *std::max_element(copy_probes.begin(), copy_probes.end());
  const double peak = peak_gflops(PeakKind::F32Fma);
  // Attention FLOPs of a causal prefill: q.k and p.v, 2 flops each, over T(T+1)/2 pairs per head.
  double attention_flops = 0.0;
  for (const LmLayer& L : model.layers())
    attention_flops += 4.0 * L.shape.n_heads * c.head_dim * (prompt_tokens * (prompt_tokens + 1) / 2.0);
  const double prefill_flops = static_cast<double>(model.matmul_flops_per_token()) * prompt_tokens + attention_flops;
  const double bytes = static_cast<double>(model.weight_bytes_per_token());
  const double decode_tps = gen_tokens / decode;
  const double bound_tps = copy_bw * 1e9 / bytes;
  const double read_bound_tps = read_bw * 1e9 / bytes;
  return {{"architecture", c.architecture},
          {"weight_dtype", dtype_name(model.layers().front().down.weight.dtype())},
          {"threads", num_threads()},
          {"prefill_compute", model.prefill_compute() == LinearCompute::BF16 ? "bf16" : "f32"},
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
          {"decode_chunk_tokens_per_s", chunk_tps},
          {"read_bandwidth_gb_s", read_bw},
          {"copy_bandwidth_gb_s", copy_bw},
          {"read_bandwidth_probes_gb_s", read_probes},
          {"copy_bandwidth_probes_gb_s", copy_probes},
          {"decode_bound", "weight_bytes_per_token / copy_bandwidth_gb_s (best probe of the run)"},
          {"decode_bound_tokens_per_s", bound_tps},
          {"decode_fraction_of_bound", decode_tps / bound_tps},
          {"decode_chunk_fractions_of_adjacent_copy_bound", chunk_fractions},
          {"decode_fraction_of_adjacent_copy_bound", adjacent_fraction},
          {"decode_read_bound_tokens_per_s", read_bound_tps},
          {"decode_fraction_of_read_bound", decode_tps / read_bound_tps}};
}

}  // namespace tinyemo::lm
