// GEMM kernel choice: tinyemo's packed AVX-512 kernel (core::gemm) vs OpenBLAS
// sgemm (called directly, with whatever core type OPENBLAS_CORETYPE selects) vs
// a straightforward Highway kernel (below; NT shapes only) vs the scalar
// reference, on the shapes tinyemo runs: the projector's training step (forward,
// and the two backward products) and CLIP ViT-L/14's linears at 257 tokens.
// Reports GFLOP/s and the fraction of the measured f32 peak.
// Usage: gemm_bench [threads]. Prints one JSON object.
#include <cblas.h>
// Highway 1.0.3's target detection stops with "best baseline should be included
// in dynamic targets" under GCC 12 -march=native on Zen 5; the benchmark only
// needs the static (native) target anyway.
#define HWY_COMPILE_ONLY_STATIC 1
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench_util.h"
#include "core/matmul.h"
#include "core/thread_pool.h"

using namespace tinyemo;

namespace {

namespace hn = hwy::HWY_NAMESPACE;

// The Highway candidate: C[M,N] = A[M,K] B[N,K]^T with B packed per call into
// panels of two vectors' width ([k][2L]), an 8-row register tile broadcasting A,
// panels spread over the pool. No k-blocking or A packing (the kernel as one
// would first write it with Highway's portable ops).
void highway_gemm_nt(int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C) {
  const hn::ScalableTag<float> d;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d)), NR = 2 * L;
  constexpr int64_t kMR = 8;
  const int64_t panels = (N + NR - 1) / NR;
  parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
    std::vector<float> bp(static_cast<size_t>(K * NR));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t j0 = p * NR, nr = std::min(NR, N - j0);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < NR; ++j) bp[k * NR + j] = j < nr ? B[(j0 + j) * K + k] : 0.0f;
      for (int64_t m0 = 0; m0 < M; m0 += kMR) {
        const int64_t mr = std::min(kMR, M - m0);
        auto c00 = hn::Zero(d), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
        auto c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
        const float* a = A + m0 * K;
        auto row = [&](int64_t i) { return a + std::min(i, mr - 1) * K; };  // clamp: ragged tiles recompute a row
        const float *a0 = row(0), *a1 = row(1), *a2 = row(2), *a3 = row(3), *a4 = row(4), *a5 = row(5),
                    *a6 = row(6), *a7 = row(7);
        for (int64_t k = 0; k < K; ++k) {
          const auto b0 = hn::LoadU(d, bp.data() + k * NR), b1 = hn::LoadU(d, bp.data() + k * NR + L);
#define TINYEMO_HWY_ROW(i)                     \
  {                                            \
    const auto ai = hn::Set(d, a##i[k]);       \
    c##i##0 = hn::MulAdd(ai, b0, c##i##0);     \
    c##i##1 = hn::MulAdd(ai, b1, c##i##1);     \
  }
          TINYEMO_HWY_ROW(0) TINYEMO_HWY_ROW(1) TINYEMO_HWY_ROW(2) TINYEMO_HWY_ROW(3)
          TINYEMO_HWY_ROW(4) TINYEMO_HWY_ROW(5) TINYEMO_HWY_ROW(6) TINYEMO_HWY_ROW(7)
#undef TINYEMO_HWY_ROW
        }
        alignas(64) float tile[kMR][64];
        const hn::Vec<decltype(d)> acc[kMR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                                                 {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
        for (int64_t i = 0; i < mr; ++i) {
          hn::Store(acc[i][0], d, tile[i]);
          hn::Store(acc[i][1], d, tile[i] + L);
          std::copy(tile[i], tile[i] + nr, C + (m0 + i) * N + j0);
        }
      }
    }
  });
}

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
    double hwy_gflops = 0.0;
    if (!c.trans_a && c.trans_b) {
      std::vector<float> y_hwy(c.M * c.N);
      const double t_hwy = bench::median_seconds(reps, [&] { highway_gemm_nt(c.M, c.N, c.K, a.data(), b.data(), y_hwy.data()); });
      hwy_gflops = flop / t_hwy / 1e9;
      double diff = 0.0;
      for (size_t i = 0; i < y.size(); ++i) diff = std::max<double>(diff, std::fabs(y[i] - y_hwy[i]));
      TE_CHECK(diff < 1e-2, "highway kernel disagrees with core::gemm by {}", diff);
    }
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
                       {"highway_gflops", hwy_gflops},
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
                        {"highway_target", hwy::TargetName(HWY_TARGET)},
                        {"results", results}};
  std::puts(out.dump(2).c_str());
}
