// BF16 weights: the shipped path (linear(): bf16 widened to f32 while packing,
// f32 FMAs, exact f32 activations) vs a native AVX512-BF16 prototype kept here
// for the comparison (activations rounded to bf16, vdpbf16ps: two products per
// lane per instruction). Speed in GFLOP/s against the measured f32 and bf16-dot
// peaks, and accuracy against an f64 reference with the same bf16 weights.
// Usage: bf16_gemm_bench [threads]. Prints one JSON object.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench_util.h"
#include "core/matmul.h"
#include "core/simd.h"
#include "core/thread_pool.h"

using namespace tinyemo;

namespace {

#if defined(__AVX512BF16__) && TINYEMO_AVX512

constexpr int64_t kMR = 14, kNR = 32;

// y[M,N] = bf16(x)[M,K] W[N,K]^T, K even. Per 32-column panel (task): the panel
// is packed as [K/2][32 columns][2] bf16 (a bf16 pair is one 32-bit word of a
// weight row, so packing transposes 32-bit words); x rows are rounded to bf16
// once and their pairs broadcast.
void native_bf16_linear(const float* x, int64_t M, const uint16_t* w, int64_t N, int64_t K, float* y) {
  std::vector<uint16_t> xb(static_cast<size_t>(M * K));
  for (int64_t i = 0; i < M * K; ++i) xb[i] = f32_to_bf16(x[i]);
  const int64_t panels = (N + kNR - 1) / kNR, kp = K / 2;
  parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
    std::vector<uint32_t> panel(static_cast<size_t>(kp * kNR));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n0 = p * kNR, nr = std::min(kNR, N - n0);
      for (int64_t j = 0; j < kNR; ++j) {
        const uint32_t* row = reinterpret_cast<const uint32_t*>(w + (n0 + std::min(j, nr - 1)) * K);
        for (int64_t k = 0; k < kp; ++k) panel[k * kNR + j] = j < nr ? row[k] : 0u;
      }
      for (int64_t m0 = 0; m0 < M; m0 += kMR) {
        const int64_t mr = std::min(kMR, M - m0);
        __m512 acc[kMR][2];
        for (auto& a : acc) a[0] = a[1] = _mm512_setzero_ps();
        const uint32_t* xr[kMR];
        for (int64_t i = 0; i < kMR; ++i) xr[i] = reinterpret_cast<const uint32_t*>(xb.data() + (m0 + std::min(i, mr - 1)) * K);
        for (int64_t k = 0; k < kp; ++k) {
          const __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel.data() + k * kNR);
          const __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel.data() + k * kNR + 16);
#pragma GCC unroll 14
          for (int64_t i = 0; i < kMR; ++i) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(xr[i][k]));
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
          }
        }
        const __mmask16 m0k = simd::first_lanes(nr), m1k = simd::first_lanes(nr - 16);
        for (int64_t i = 0; i < mr; ++i) {
          _mm512_mask_storeu_ps(y + (m0 + i) * N + n0, m0k, acc[i][0]);
          _mm512_mask_storeu_ps(y + (m0 + i) * N + n0 + 16, m1k, acc[i][1]);
        }
      }
    }
  });
}
#endif

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
  };
  const Case cases[] = {{"clip-l14 fc1 257x1024 -> 4096", 257, 4096, 1024},
                        {"clip-l14 q/k/v 257x1024 -> 1024", 257, 1024, 1024},
                        {"lm prefill 128x2048 -> 5632", 128, 5632, 2048}};
  std::mt19937 rng(0);
  std::normal_distribution<float> dist;
  nlohmann::json results = nlohmann::json::array();
  for (const Case& c : cases) {
    std::vector<float> x(c.M * c.K), w32(c.N * c.K);
    for (auto& v : x) v = dist(rng);
    for (auto& v : w32) v = dist(rng) * 0.03f;
    const Tensor w = Tensor::from_vector<float>({c.N, c.K}, w32).to(DType::BF16);
    const std::vector<float> wq = w.to_f32_vector();
    // f64 reference on the first 8 rows, with the bf16 weights as stored.
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
    const double t_ours = bench::median_seconds(7, [&] { linear(x.data(), c.M, w, nullptr, y.data()); });
    nlohmann::json r = {{"case", c.what},
                        {"M", c.M},
                        {"N", c.N},
                        {"K", c.K},
                        {"convert_in_packing_gflops", flop / t_ours / 1e9},
                        {"convert_in_packing_fraction_of_f32_peak", flop / t_ours / 1e9 / peak_f32},
                        {"convert_in_packing_rel_error", rel_error(std::vector<float>(y.begin(), y.begin() + ref_rows * c.N), ref)}};
#if defined(__AVX512BF16__) && TINYEMO_AVX512
    const double t_native = bench::median_seconds(7, [&] {
      native_bf16_linear(x.data(), c.M, static_cast<const uint16_t*>(w.raw()), c.N, c.K, y.data());
    });
    r["native_bf16_gflops"] = flop / t_native / 1e9;
    r["native_bf16_fraction_of_bf16_peak"] = flop / t_native / 1e9 / peak_bf16;
    r["native_bf16_rel_error"] = rel_error(std::vector<float>(y.begin(), y.begin() + ref_rows * c.N), ref);
    r["native_over_convert_speed"] = t_ours / t_native;
#endif
    results.push_back(r);
  }
  const nlohmann::json out = {{"benchmark", "bf16_gemm"},       {"machine", bench::machine_info()},
                              {"threads", threads},             {"peak_f32_gflops", peak_f32},
                              {"peak_bf16_dot_gflops", peak_bf16}, {"results", results}};
  std::puts(out.dump(2).c_str());
}
