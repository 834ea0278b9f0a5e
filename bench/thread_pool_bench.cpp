// The fork/join cost decode pays hundreds of times per token: the wall time of
// an empty parallel_for and of a small one (16 KiB of work per thread), and the
// interference between the pool and OpenBLAS's own threads: a loop alternating
// a small sgemm with a pool loop, once through OpenBLAS (whose workers busy-wait
// after each call, competing with the pool's) and once through core::gemm.
// Usage: thread_pool_bench [threads]. Prints one JSON object.
#include <cblas.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench_util.h"
#include "core/matmul.h"
#include "core/ops.h"
#include "core/thread_pool.h"

using namespace tinyemo;

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  set_num_threads(threads);
  constexpr int kLoops = 2000;
  std::atomic<int64_t> sink{0};
  const double t_empty = bench::median_seconds(5, [&] {
    for (int i = 0; i < kLoops; ++i) parallel_for(threads, 1, [&](int64_t b, int64_t e) { sink += e - b; });
  }) / kLoops;
  std::vector<float> data(static_cast<size_t>(threads) * 4096, 1.0f);
  const double t_small = bench::median_seconds(5, [&] {
    for (int i = 0; i < kLoops; ++i) {
      parallel_for(threads, 1, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) sink += static_cast<int64_t>(dot(&data[t * 4096], &data[t * 4096], 4096));
      });
    }
  }) / kLoops;
  const double t_small_serial = bench::median_seconds(5, [&] {
    for (int i = 0; i < kLoops; ++i)
      for (int t = 0; t < threads; ++t) sink += static_cast<int64_t>(dot(&data[t * 4096], &data[t * 4096], 4096));
  }) / kLoops;
  // Alternating sgemm (128 x 128 x 128) and a pool loop, as a model that mixed
  // OpenBLAS calls with tinyemo kernels would.
  const int64_t n = 128;
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  auto pool_step = [&] {
    parallel_for(threads, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) sink += static_cast<int64_t>(dot(&data[t * 4096], &data[t * 4096], 4096));
    });
  };
  constexpr int kMixed = 500;
  const double t_mixed_blas = bench::median_seconds(5, [&] {
    for (int i = 0; i < kMixed; ++i) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                  c.data(), n);
      pool_step();
    }
  }) / kMixed;
  const double t_mixed_ours = bench::median_seconds(5, [&] {
    for (int i = 0; i < kMixed; ++i) {
      gemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
      pool_step();
    }
  }) / kMixed;
  const nlohmann::json out = {
      {"benchmark", "thread_pool"},
      {"machine", bench::machine_info()},
      {"threads", threads},
      {"empty_parallel_for_us", t_empty * 1e6},
      {"small_parallel_for_us", t_small * 1e6},
      {"same_work_serial_us", t_small_serial * 1e6},
      {"mixed_openblas_sgemm_then_pool_loop_us", t_mixed_blas * 1e6},
      {"mixed_tinyemo_gemm_then_pool_loop_us", t_mixed_ours * 1e6},
      {"checksum", sink.load()}};
  std::puts(out.dump(2).c_str());
}
