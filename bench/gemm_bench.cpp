// GEMM kernel choice: tinyemo's packed AVX-512 kernel (core::gemm) vs OpenBLAS
// sgemm (called directly, with whatever core type OPENBLAS_CORETYPE selects) vs
// the scalar reference, on the shapes tinyemo runs: the projector's training step
// (forward, and the two backward products) and CLIP ViT-L/14's linears at 257
// tokens. Reports GFLOP/s and the fraction of the measured f32 peak.
// Usage: gemm_bench [threads]. Prints one JSON object.
#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench_util.h"
#include "core/matmul.h"
#include "core/thread_pool.h"

using namespace tinyemo;

namespace {

struct Case {
  const char* what;
  bool trans_a, trans_b;
  int64_t M, N, K;
};

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  set_num_threads(threads);
  const Case cases[] = {
      {"projector fc1 fwd: x[32,768] W1^T", false, true, 32, 1280, 768},
      {"projector fc2 fwd: h[32,1280] W2^T", false, true, 32, 1280, 1280},
      {"projector fc2 dW: dy^T[1280,32] h", true, false, 1280, 1280, 32},
      {"projector fc2 dX: dy[32,1280] W2", false, false, 32, 1280, 1280},
      {"projector fc1 dW: dh^T[1280,32] x", true, false, 1280, 768, 32},
      {"clip-l14 q/k/v/out: 257x1024 -> 1024", false, true, 257, 1024, 1024},
      {"clip-l14 mlp fc1: 257x1024 -> 4096", false, true, 257, 4096, 1024},
      {"clip-l14 mlp fc2: 257x4096 -> 1024", false, true, 257, 1024, 4096},
      {"clip-l14 batch 8 fc1: 2056x1024 -> 4096", false, true, 2056, 4096, 1024},
  };
  const double peak = peak_gflops(PeakKind::F32Fma, threads);
  nlohmann::json results = nlohmann::json::array();
  std::mt19937 rng(0);
  std::normal_distribution<float> dist;
  for (const Case& c : cases) {
    std::vector<float> a(c.M * c.K), b(c.N * c.K), y(c.M * c.N), y_blas(c.M * c.N);
    for (auto& v : a) v = dist(rng);
    for (auto& v : b) v = dist(rng);
    const int64_t lda = c.trans_a ? c.M : c.K, ldb = c.trans_b ? c.K : c.N;
    const double flop = 2.0 * c.M * c.N * c.K;
    const int reps = flop > 1e9 ? 5 : 30;
    const double t_ours = bench::median_seconds(reps, [&] {
      gemm(c.trans_a, c.trans_b, c.M, c.N, c.K, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, y.data(), c.N);
    });
    const double t_blas = bench::median_seconds(reps, [&] {
      cblas_sgemm(CblasRowMajor, c.trans_a ? CblasTrans : CblasNoTrans, c.trans_b ? CblasTrans : CblasNoTrans,
                  static_cast<blasint>(c.M), static_cast<blasint>(c.N), static_cast<blasint>(c.K), 1.0f, a.data(),
                  static_cast<blasint>(lda), b.data(), static_cast<blasint>(ldb), 0.0f, y_blas.data(),
                  static_cast<blasint>(c.N));
    });
    // The scalar reference on the first rows only (it is ~100x slower).
    const int64_t ref_rows = std::min<int64_t>(c.M, 4);
    std::vector<float> y_ref(ref_rows * c.N);
    const double t_ref = bench::median_seconds(1, [&] {
      reference::gemm(c.trans_a, c.trans_b, ref_rows, c.N, c.K, 1.0f, a.data(), lda, b.data(), ldb, 0.0f,
                      y_ref.data(), c.N);
    });
    double max_diff = 0.0;
    for (int64_t i = 0; i < ref_rows * c.N; ++i) max_diff = std::max<double>(max_diff, std::fabs(y[i] - y_ref[i]));
    results.push_back({{"case", c.what},
                       {"trans_a", c.trans_a},
                       {"trans_b", c.trans_b},
                       {"M", c.M},
                       {"N", c.N},
                       {"K", c.K},
                       {"tinyemo_gflops", flop / t_ours / 1e9},
                       {"openblas_gflops", flop / t_blas / 1e9},
                       {"reference_gflops", 2.0 * ref_rows * c.N * c.K / t_ref / 1e9},
                       {"tinyemo_fraction_of_peak", flop / t_ours / 1e9 / peak},
                       {"tinyemo_vs_openblas", t_blas / t_ours},
                       {"max_abs_diff_vs_reference", max_diff}});
  }
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  nlohmann::json out = {{"benchmark", "gemm"},
                        {"machine", bench::machine_info()},
                        {"threads", threads},
                        {"peak_f32_gflops", peak},
                        {"openblas_coretype_env", coretype ? coretype : ""},
                        {"openblas_config", openblas_get_config()},
                        {"results", results}};
  std::puts(out.dump(2).c_str());
}
