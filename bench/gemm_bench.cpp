// GEMM kernel choice: OpenBLAS sgemm vs the scalar reference on the shapes
// tinyemo runs (projector training, CLIP ViT-L/14 linears), against peak FLOP/s.
// Prints one JSON object.
#include <cstdio>
#include <random>
#include <vector>

#include "bench_util.h"
#include "core/matmul.h"
#include "core/thread_pool.h"

using namespace tinyemo;

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  set_num_threads(threads);
  struct Case {
    const char* what;
    int64_t M, N, K;
  };
  const Case cases[] = {{"projector fc1 batch 32", 32, 1280, 768},
                        {"projector fc2 batch 32", 32, 1280, 1280},
                        {"clip-l14 qkv 257 tokens", 257, 1024, 1024},
                        {"clip-l14 mlp fc1 257 tokens", 257, 4096, 1024}};
  nlohmann::json results = nlohmann::json::array();
  std::mt19937 rng(0);
  std::normal_distribution<float> dist;
  for (const Case& c : cases) {
    std::vector<float> a(c.M * c.K), b(c.N * c.K), y(c.M * c.N);
    for (auto& v : a) v = dist(rng);
    for (auto& v : b) v = dist(rng);
    const double flop = 2.0 * c.M * c.N * c.K;
    const double t = bench::median_seconds(20, [&] {
      gemm(false, true, c.M, c.N, c.K, 1.0f, a.data(), c.K, b.data(), c.K, 0.0f, y.data(), c.N);
    });
    results.push_back({{"case", c.what}, {"M", c.M}, {"N", c.N}, {"K", c.K}, {"openblas_gflops", flop / t / 1e9}});
  }
  nlohmann::json out = {{"benchmark", "gemm"}, {"machine", bench::machine_info()}, {"threads", threads},
                        {"results", results}};
  std::puts(out.dump(2).c_str());
}
