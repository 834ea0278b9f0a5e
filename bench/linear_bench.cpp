// linear() for every weight dtype on LM shapes (TinyLlama-1.1B and an
// OpenELM-270M-like layer):
//  - decode (M = 1): a token's pass through a stack of layers whose weights far
//    exceed the last-level cache, as GB/s of weights read against the read
//    bandwidth measured in the same run (the bound a mat-vec can reach);
//  - prefill (M = 128): GFLOP/s against the measured f32 FMA peak;
//  - the crossover between the dot-product path and the packed GEMM for few rows.
// Usage: linear_bench [threads]. Prints one JSON object.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "core/matmul.h"
#include "core/matmul_internal.h"
#include "core/thread_pool.h"

using namespace tinyemo;

namespace {

struct Matrix {
  const char* name;
  int64_t n, k;  // out, in
};

struct Model {
  const char* name;
  std::vector<Matrix> layer;
};

const Model kModels[] = {
    {"tinyllama-1.1b",
     {{"q", 2048, 2048}, {"k", 256, 2048}, {"v", 256, 2048}, {"o", 2048, 2048}, {"gate", 5632, 2048},
      {"up", 5632, 2048}, {"down", 2048, 5632}}},
    {"openelm-270m-like",
     {{"qkv", 1536, 1280}, {"out", 1280, 1024}, {"gate_up", 6656, 1280}, {"down", 1280, 3328}}},
};

// Cheap deterministic values in [-1, 1) (normal-ish enough for timing).
void fill(std::vector<float>& v, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : v) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x = static_cast<float>(static_cast<int64_t>(s >> 40) - (1 << 23)) / static_cast<float>(1 << 23);
  }
}

// A layer's weights in `dtype` (Q8_0x16/Q4_0x16: quantised, then interleaved as
// prepare_linear_weight does when a model loads), replicated until the stack
// holds >= min_bytes.
std::vector<std::vector<Tensor>> make_stack(const Model& m, DType dtype, size_t min_bytes, size_t* layer_bytes) {
  std::vector<Tensor> first;
  *layer_bytes = 0;
  for (size_t i = 0; i < m.layer.size(); ++i) {
    std::vector<float> w(m.layer[i].n * m.layer[i].k);
    fill(w, i + 1);
    first.push_back(Tensor::from_vector<float>({m.layer[i].n, m.layer[i].k}, w).to(dtype_of_rows(dtype)).to(dtype));
    *layer_bytes += first.back().nbytes();
  }
  std::vector<std::vector<Tensor>> stack{first};
  while (stack.size() * *layer_bytes < min_bytes) {
    std::vector<Tensor> copy;
    for (const Tensor& t : first) copy.push_back(t.clone());
    stack.push_back(std::move(copy));
  }
  return stack;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  set_num_threads(threads);
  const double read_bw = measure_read_bandwidth(threads);
  const double peak = peak_gflops(PeakKind::F32Fma, threads);
  const DType dtypes[] = {DType::F32,  DType::BF16,    DType::F16,    DType::Q8_0,
                          DType::Q4_0, DType::Q8_0x16, DType::Q4_0x16};
  nlohmann::json decode = nlohmann::json::array(), prefill = nlohmann::json::array(),
                 crossover = nlohmann::json::array();
  for (const Model& model : kModels) {
    for (DType t : dtypes) {
      size_t layer_bytes = 0;
      const auto stack = make_stack(model, t, size_t{384} << 20, &layer_bytes);
      int64_t max_k = 0, max_n = 0, flop_per_row = 0;
      for (const Matrix& mat : model.layer) {
        max_k = std::max(max_k, mat.k);
        max_n = std::max(max_n, mat.n);
        flop_per_row += 2 * mat.n * mat.k;
      }
      std::vector<float> x(128 * max_k), y(128 * max_n);
      fill(x, 99);
      const double t_token = bench::median_seconds(5, [&] {
        for (const auto& layer : stack)
          for (const Tensor& w : layer) linear(x.data(), 1, w, nullptr, y.data());
      });
      const double bytes = static_cast<double>(layer_bytes) * stack.size();
      decode.push_back({{"model", model.name},
                        {"dtype", dtype_name(t)},
                        {"layers_in_stack", stack.size()},
                        {"weight_bytes", bytes},
                        {"seconds", t_token},
                        {"gb_per_s", bytes / t_token / 1e9},
                        {"fraction_of_read_bandwidth", bytes / t_token / 1e9 / read_bw}});
      const int64_t rows = 128;
      const double t_prefill = bench::median_seconds(3, [&] {
        for (const Tensor& w : stack[0]) linear(x.data(), rows, w, nullptr, y.data());
      });
      const double gflops = static_cast<double>(flop_per_row) * rows / t_prefill / 1e9;
      prefill.push_back({{"model", model.name},
                         {"dtype", dtype_name(t)},
                         {"rows", rows},
                         {"gflops", gflops},
                         {"fraction_of_f32_peak", gflops / peak}});
      if (model.name != std::string("tinyllama-1.1b")) continue;
      // Few rows: the dot-product kernel (reads W once, per-row FMAs) vs the packed
      // GEMM (packs W, then runs at FMA speed), on the gate projection.
      const Tensor& w = stack[0][4];
      detail::BOperand op;
      op.dtype = t;
      op.data = w.raw();
      op.ld = static_cast<int64_t>(dtype_bytes(t, w.dim(1)));
      for (int64_t m : {1, 2, 3, 4, 6, 8, 16}) {
        nlohmann::json row = {{"dtype", dtype_name(t)}, {"rows", m}, {"n", w.dim(0)}, {"k", w.dim(1)}};
        if (m < 8 || !dtype_is_quantized(t)) {
          const double td = bench::median_seconds(9, [&] {
            detail::linear_rows_dot(x.data(), m, w.dim(1), op, w.dim(0), w.dim(1), nullptr, y.data(), w.dim(0));
          });
          row["dot_us"] = td * 1e6;
        }
        const double tg = bench::median_seconds(9, [&] {
          detail::gemm_packed(m, w.dim(0), w.dim(1), 1.0f, x.data(), w.dim(1), 1, op, 0.0f, nullptr, y.data(),
                              w.dim(0));
        });
        row["gemm_us"] = tg * 1e6;
        row["linear_uses"] = m < detail::dot_path_max_rows(t) ? "dot" : "gemm";
        crossover.push_back(row);
      }
    }
  }
  const nlohmann::json out = {{"benchmark", "linear"},
                              {"machine", bench::machine_info()},
                              {"threads", threads},
                              {"read_bandwidth_gb_s", read_bw},
                              {"peak_f32_gflops", peak},
                              {"decode_m1", decode},
                              {"prefill", prefill},
                              {"few_rows_dot_vs_gemm", crossover}};
  std::puts(out.dump(2).c_str());
}
