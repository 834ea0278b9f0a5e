// Decoder-LM speed: batch-1 decode tokens/s of the OpenELM-270M and
// TinyLlama-1.1B shapes (random weights) at f32, bf16, q8_0 and q4_0, each set
// against the bandwidth bound (weight bytes per token / copy bandwidth, best of
// the probes taken between the decode chunks of the same run; and the same over
// the read bandwidth), and prefill GFLOP/s against the measured f32 FMA peak.
// Prints one JSON object.
//
//   lm_bench [threads=2] [prompt_tokens=128] [gen_tokens=64] [arch...]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_util.h"
#include "core/thread_pool.h"
#include "models/lm/benchmark.h"
#include "models/lm/presets.h"

using namespace tinyemo;

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int64_t prompt_tokens = argc > 2 ? std::atoll(argv[2]) : 128;
  const int64_t gen_tokens = argc > 3 ? std::atoll(argv[3]) : 64;
  std::vector<std::string> archs;
  for (int i = 4; i < argc; ++i) archs.push_back(argv[i]);
  if (archs.empty()) archs = {"openelm-270m", "tinyllama-1.1b"};
  set_num_threads(threads);

  nlohmann::json results = nlohmann::json::array();
  for (const std::string& arch : archs) {
    for (DType dtype : {DType::F32, DType::BF16, DType::Q8_0, DType::Q4_0}) {
      try {
        const lm::LmModel model = lm::random_lm(lm::lm_preset_config(arch), dtype);
        nlohmann::json r = benchmark_lm(model, prompt_tokens, gen_tokens);
        r["arch"] = arch;
        r["dtype"] = dtype_name(dtype);
        std::fprintf(stderr,
                     "%s %s: decode %.2f tok/s (%.0f%% of the copy bound %.2f, %.0f%% of the read bound %.2f, "
                     "median chunk %.0f%% of the copy bound around it), "
                     "prefill %.1f tok/s (%.1f GFLOP/s)\n",
                     arch.c_str(), std::string(dtype_name(dtype)).c_str(), r["decode_tokens_per_s"].get<double>(),
                     100.0 * r["decode_fraction_of_bound"].get<double>(), r["decode_bound_tokens_per_s"].get<double>(),
                     100.0 * r["decode_fraction_of_read_bound"].get<double>(),
                     r["decode_read_bound_tokens_per_s"].get<double>(),
                     100.0 * r["decode_fraction_of_adjacent_copy_bound"].get<double>(),
                     r["prefill_tokens_per_s"].get<double>(),
                     r["prefill_gflops"].get<double>());
        results.push_back(std::move(r));
      } catch (const Error& e) {
        results.push_back({{"arch", arch}, {"dtype", dtype_name(dtype)}, {"error", e.what()}});
      }
    }
  }
  const nlohmann::json out = {{"benchmark", "lm"},
                              {"machine", bench::machine_info()},
                              {"threads", threads},
                              {"prompt_tokens", prompt_tokens},
                              {"gen_tokens", gen_tokens},
                              {"comparison",
                               "decode tokens/s vs weight_bytes_per_token / copy bandwidth (decode_fraction_of_bound; "
                               "per chunk against the probes around it: decode_fraction_of_adjacent_copy_bound) "
                               "and / read bandwidth (decode_fraction_of_read_bound), best probes between the decode "
                               "chunks of each run; "
                               "prefill GFLOP/s vs measured f32 FMA peak"},
                              {"results", results}};
  std::puts(out.dump(2).c_str());
}
