// BF16 (and, for the LM prefill shape, Q8_0) weights four ways through
// linear(): as stored (widened/dequantised to f32 while packed per call, f32
// FMAs, exact f32 activations), as stored with LinearCompute::BF16 (packed per
// call as bf16 pairs, activations rounded to bf16, vdpbf16ps), packed once as
// f32 panels (pack_linear_weight F32: no per-call packing) and packed once as
// bf16 pairs (pack_linear_weight BF16: two products per lane per instruction). Speed in GFLOP/s against the measured
// f32 and bf16-dot peaks, and accuracy against an f64 reference with the same
// bf16 weights.
// Usage: bf16_gemm_bench [threads]. Prints one JSON object.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "core/matmul.h"
#include "core/thread_pool.h"

using namespace tinyemo;

namespace {

double rel_error(const std::vector<float>& a, const std::vector<double>& ref) {
  double e = 0.0, n = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    e += (a[i] - ref[i]) * (a[i] - ref[i]);
    n += ref[i] * ref[i];
  }
  return std::sqrt(e / n);
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  set_num_threads(threads);
  const double peak_f32 = peak_gflops(PeakKind::F32Fma, threads), peak_bf16 = peak_gflops(PeakKind::Bf16Dot, threads);
  struct Case {
    const char* what;
    int64_t M, N, K;
    DType dtype;
  };
  const Case cases[] = {{"clip-l14 fc1 257x1024 -> 4096", 257, 4096, 1024, DType::BF16},
                        {"clip-l14 q/k/v 257x1024 -> 1024", 257, 1024, 1024, DType::BF16},
                        {"lm prefill 128x2048 -> 5632", 128, 5632, 2048, DType::BF16},
                        {"lm prefill q8_0 128x2048 -> 5632", 128, 5632, 2048, DType::Q8_0}};
  std::mt19937 rng(0);
  std::normal_distribution<float> dist;
  nlohmann::json results = nlohmann::json::array();
  for (const Case& c : cases) {
    std::vector<float> x(c.M * c.K), w32(c.N * c.K);
    for (auto& v : x) v = dist(rng);
    for (auto& v : w32) v = dist(rng) * 0.03f;
    const Tensor w = prepare_linear_weight(Tensor::from_vector<float>({c.N, c.K}, w32).to(c.dtype));
    const std::vector<float> wq = w.to_f32_vector();
    // f64 reference on the first 8 rows, with the weights as stored.
    const int64_t ref_rows = 8;
    std::vector<double> ref(ref_rows * c.N);
    for (int64_t m = 0; m < ref_rows; ++m)
      for (int64_t n = 0; n < c.N; ++n) {
        double acc = 0.0;
        for (int64_t k = 0; k < c.K; ++k) acc += static_cast<double>(x[m * c.K + k]) * wq[n * c.K + k];
        ref[m * c.N + n] = acc;
      }
    const double flop = 2.0 * c.M * c.N * c.K;
    std::vector<float> y(c.M * c.N);
    const Tensor w_f32_panels = pack_linear_weight(w, LinearCompute::F32);
    const Tensor w_bf16_panels = pack_linear_weight(w, LinearCompute::BF16);
    nlohmann::json r = {{"case", c.what}, {"dtype", dtype_name(c.dtype)}, {"M", c.M}, {"N", c.N}, {"K", c.K}};
    double t_stored = 0.0;
    struct Method {
      const char* name;
      const Tensor* weight;
      LinearCompute compute;
    };
    for (const Method& m : {Method{"stored", &w, LinearCompute::F32}, Method{"stored_bf16", &w, LinearCompute::BF16},
                            Method{"f32_panels", &w_f32_panels, LinearCompute::F32},
                            Method{"bf16_panels", &w_bf16_panels, LinearCompute::F32}}) {
      const std::string name = m.name;
      const bool bf16 = name == "bf16_panels" || name == "stored_bf16";
      if (bf16 && !has_native_bf16_linear()) continue;
      if (name != "stored" && name != "stored_bf16" && m.weight->dtype() == w.dtype()) continue;  // not packable
      const double t =
          bench::median_seconds(7, [&] { linear(x.data(), c.M, *m.weight, nullptr, y.data(), 0, 0, m.compute); });
      if (t_stored == 0.0) t_stored = t;
      const double peak = bf16 ? peak_bf16 : peak_f32;
      r[name] = {{"gflops", flop / t / 1e9},
                 {"fraction_of_peak", flop / t / 1e9 / peak},
                 {"rel_error", rel_error(std::vector<float>(y.begin(), y.begin() + ref_rows * c.N), ref)},
                 {"speed_over_stored", t_stored / t}};
    }
    results.push_back(r);
  }
  const nlohmann::json out = {{"benchmark", "bf16_gemm"},       {"machine", bench::machine_info()},
                              {"threads", threads},             {"peak_f32_gflops", peak_f32},
                              {"peak_bf16_dot_gflops", peak_bf16}, {"results", results}};
  std::puts(out.dump(2).c_str());
}
