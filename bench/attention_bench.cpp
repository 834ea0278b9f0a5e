// attention() on the shapes tinyemo runs: CLIP ViT-L/14 @224 (16 heads x 257
// tokens x 64, non-causal, per image), TinyLlama-1.1B causal prefill (32 query /
// 4 key-value heads, 128 tokens) and decode (one query row against a KV cache of
// 1024 and 4096 rows). Prefill is reported in GFLOP/s against the measured f32
// peak; decode in GB/s of K and V read against the measured read bandwidth. The
// scalar reference runs once per shape for the speed-up.
// Usage: attention_bench [threads]. Prints one JSON object.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench_util.h"
#include "core/attention.h"
#include "core/thread_pool.h"

using namespace tinyemo;

namespace {

struct Case {
  const char* what;
  int64_t q_len, kv_len, n_heads, n_kv_heads, head_dim;
  bool causal;
};

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  set_num_threads(threads);
  const double peak = peak_gflops(PeakKind::F32Fma, threads);
  const double read_bw = measure_read_bandwidth(threads);
  const Case cases[] = {
      {"clip-vit-l14 @224, one image", 257, 257, 16, 16, 64, false},
      {"tinyllama prefill 128 tokens", 128, 128, 32, 4, 64, true},
      {"tinyllama decode, cache 1024", 1, 1024, 32, 4, 64, true},
      {"tinyllama decode, cache 4096", 1, 4096, 32, 4, 64, true},
  };
  std::mt19937 rng(0);
  std::normal_distribution<float> dist;
  nlohmann::json results = nlohmann::json::array();
  for (const Case& c : cases) {
    AttentionShape s;
    s.q_len = c.q_len;
    s.kv_len = c.kv_len;
    s.n_heads = c.n_heads;
    s.n_kv_heads = c.n_kv_heads;
    s.head_dim = c.head_dim;
    s.causal = c.causal;
    s.q_pos0 = c.kv_len - c.q_len;
    const int64_t qw = s.n_heads * s.head_dim, kw = s.n_kv_heads * s.head_dim;
    std::vector<float> q(s.q_len * qw), k(s.kv_len * kw), v(s.kv_len * kw), out(s.q_len * qw), ref(s.q_len * qw);
    for (auto* buf : {&q, &k, &v})
      for (auto& x : *buf) x = dist(rng);
    const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
    const double t = bench::median_seconds(c.q_len == 1 ? 200 : 10, [&] {
      attention(s, scale, q.data(), qw, k.data(), kw, v.data(), kw, out.data(), qw);
    });
    const double t_ref = bench::median_seconds(1, [&] {
      reference::attention(s, scale, q.data(), qw, k.data(), kw, v.data(), kw, ref.data(), qw);
    });
    // QK^T and PV: 2 flops per multiply-add each; causal rows see (on average) half.
    double pairs = 0.0;
    for (int64_t i = 0; i < s.q_len; ++i)
      pairs += static_cast<double>(c.causal ? std::min(s.kv_len, s.q_pos0 + i + 1) : s.kv_len);
    const double flop = 4.0 * pairs * s.head_dim * s.n_heads;
    const double kv_bytes = 2.0 * s.kv_len * kw * sizeof(float);
    double err = 0.0, norm = 0.0;
    for (size_t i = 0; i < out.size(); ++i) {
      err += (out[i] - ref[i]) * (out[i] - ref[i]);
      norm += ref[i] * ref[i];
    }
    nlohmann::json r = {{"case", c.what},       {"q_len", c.q_len},         {"kv_len", c.kv_len},
                        {"heads", c.n_heads},   {"kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
                        {"causal", c.causal},   {"seconds", t},             {"gflops", flop / t / 1e9},
                        {"fraction_of_f32_peak", flop / t / 1e9 / peak},
                        {"reference_seconds", t_ref},
                        {"speedup_vs_reference", t_ref / t},
                        {"rel_error_vs_reference", std::sqrt(err / norm)}};
    if (c.q_len == 1) {
      r["kv_gb_per_s"] = kv_bytes / t / 1e9;
      r["fraction_of_read_bandwidth"] = kv_bytes / t / 1e9 / read_bw;
    }
    results.push_back(r);
  }
  const nlohmann::json out = {{"benchmark", "attention"},   {"machine", bench::machine_info()},
                              {"threads", threads},         {"peak_f32_gflops", peak},
                              {"read_bandwidth_gb_s", read_bw}, {"results", results}};
  std::puts(out.dump(2).c_str());
}
