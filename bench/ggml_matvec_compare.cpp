// tinyemo's batch-1 decode mat-vecs against ggml's on the same Q8_0 codes: every
// weight matrix a decode token reads (all layers and the output head) of an LM
// preset's shapes, one activation row. tinyemo runs them back to back in one team
// (`linear(Team&, ...)`, as LmSession::decode_step does); ggml runs one graph of
// the same mul_mats on its CPU backend (`ggml_graph_compute_with_ctx`). The two
// alternate in every round, each round after the copy and read probes, and both
// are set against those probes: the comparison issue 4 welcomes beside the
// copy-bandwidth bound. Built only when CMake is given a ggml source tree
// (-DTINYEMO_GGML_SOURCE_DIR=..., bench/CMakeLists.txt). Prints one JSON object.
//
//   ggml_matvec_compare [threads=2] [rounds=10] [arch...]   (default: tinyllama-1.1b)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "core/error.h"
#include "core/machine_limits.h"
#include "core/matmul.h"
#include "core/thread_pool.h"
#include "ggml-cpu.h"
#include "ggml.h"
#include "models/lm/presets.h"

using namespace tinyemo;

namespace {

struct MatrixShape {
  int64_t rows, cols;
};

// The [N, K] of every matrix one decode token reads, in reading order.
std::vector<MatrixShape> decode_matrix_shapes(const std::string& arch) {
  const lm::LmModel model = lm::random_lm(lm::lm_preset_config(arch), DType::Q8_0);
  std::vector<MatrixShape> shapes;
  for (const lm::LmLayer& layer : model.layers())
    for (const lm::LmLinear* l :
         {&layer.qkv, &layer.q, &layer.k, &layer.v, &layer.o, &layer.gate_up, &layer.gate, &layer.up, &layer.down})
      if (l->defined()) shapes.push_back({l->weight.shape()[0], l->weight.shape()[1]});
  shapes.push_back({model.lm_head().weight.shape()[0], model.lm_head().weight.shape()[1]});
  return shapes;
}

nlohmann::json compare(const std::string& arch, int threads, int rounds) {
  const std::vector<MatrixShape> shapes = decode_matrix_shapes(arch);
  int64_t max_rows = 0, max_cols = 0, max_elems = 0;
  size_t bytes = 0;
  for (const MatrixShape& s : shapes) {
    max_rows = std::max(max_rows, s.rows);
    max_cols = std::max(max_cols, s.cols);
    max_elems = std::max(max_elems, s.rows * s.cols);
    bytes += ggml_row_size(GGML_TYPE_Q8_0, s.cols) * s.rows;
  }
  ggml_init_params params = {bytes + (size_t(64) << 20) + shapes.size() * 4 * ggml_tensor_overhead(), nullptr, false};
  ggml_context* ctx = ggml_init(params);
  ggml_tensor* x = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, max_cols);
  for (int64_t i = 0; i < max_cols; ++i) static_cast<float*>(x->data)[i] = std::sin(0.1f * static_cast<float>(i));

  // One source matrix quantised by ggml for every shape; tinyemo gets a copy
  // of the same codes (GGUF's Q8_0 rows are tinyemo's Q8_0 rows) and lays them
  // out for its kernel as a loaded model does.
  std::vector<float> source(static_cast<size_t>(max_elems));
  for (size_t i = 0; i < source.size(); ++i) source[i] = std::cos(0.37f * static_cast<float>(i % 1000003));
  ggml_cgraph* graph = ggml_new_graph_custom(ctx, 2 * shapes.size() + 16, false);
  std::vector<Tensor> ours;
  for (const MatrixShape& s : shapes) {
    ggml_tensor* w = ggml_new_tensor_2d(ctx, GGML_TYPE_Q8_0, s.cols, s.rows);
    ggml_quantize_chunk(GGML_TYPE_Q8_0, source.data(), w->data, 0, s.rows, s.cols, nullptr);
    Tensor t = Tensor::empty(DType::Q8_0, {s.rows, s.cols});
    std::memcpy(t.raw_mut(), w->data, t.nbytes());
    ours.push_back(std::move(t));
    ggml_build_forward_expand(graph, ggml_mul_mat(ctx, w, ggml_view_1d(ctx, x, s.cols, 0)));
  }
  source = {};
  ours = prepare_linear_weights(std::move(ours));

  std::vector<float> y(static_cast<size_t>(max_rows));
  const float* xs = static_cast<const float*>(x->data);
  auto run_tinyemo = [&] {
    run_team([&](Team& team) {
      for (const Tensor& w : ours) linear(team, xs, 1, w, nullptr, y.data());
    });
  };
  auto run_ggml = [&] { ggml_graph_compute_with_ctx(ctx, graph, threads); };

  // Both compute the same products of the same codes; they differ only where
  // the activations are rounded (ggml keeps each activation block's scale in
  // f16, tinyemo in f32), about 1e-3 of the output's norm. A larger difference
  // means one of them computed something else: stop before timing it.
  run_tinyemo();
  run_ggml();
  const ggml_tensor* last = ggml_graph_node(graph, -1);
  double diff2 = 0, ref2 = 0;
  for (int64_t n = 0; n < shapes.back().rows; ++n) {
    const double ref = static_cast<const float*>(last->data)[n];
    diff2 += (y[static_cast<size_t>(n)] - ref) * (y[static_cast<size_t>(n)] - ref);
    ref2 += ref * ref;
  }
  const double relative_difference = std::sqrt(diff2 / ref2);
  TE_CHECK(relative_difference <= 1e-2, "{}: tinyemo's and ggml's outputs differ by {:.3g} of their norm", arch,
           relative_difference);

  BandwidthProbe probe(threads);
  std::vector<double> ours_gbs, ggml_gbs, ours_of_copy, ggml_of_copy, ours_of_read, ggml_of_read, ratio, copies, reads;
  for (int r = 0; r < rounds; ++r) {
    const double copy = probe.copy(), read = probe.read();
    // Alternate which runs first: the VM's memory speed drifts within a round.
    double t_ours = 0, t_ggml = 0;
    for (int k = 0; k < 2; ++k) {
      const bool ours_now = (r + k) % 2 == 0;
      // Both libraries' workers spin a while after a pass (ggml's OpenMP team
      // for about a millisecond); without a pause they take a core from
      // whichever runs next, which then reads half as fast.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const double t0 = bench::now_seconds();
      ours_now ? run_tinyemo() : run_ggml();
      (ours_now ? t_ours : t_ggml) = bench::now_seconds() - t0;
    }
    const double o = static_cast<double>(bytes) / t_ours / 1e9, g = static_cast<double>(bytes) / t_ggml / 1e9;
    std::fprintf(stderr,
                 "%s round %d: copy %.1f read %.1f GB/s | tinyemo %.1f GB/s, "
                 "ggml %.1f GB/s\n",
                 arch.c_str(), r, copy, read, o, g);
    copies.push_back(copy);
    reads.push_back(read);
    ours_gbs.push_back(o);
    ggml_gbs.push_back(g);
    ours_of_copy.push_back(o / copy);
    ggml_of_copy.push_back(g / copy);
    ours_of_read.push_back(o / read);
    ggml_of_read.push_back(g / read);
    ratio.push_back(o / g);
  }
  ggml_free(ctx);
  return {{"arch", arch},
          {"dtype", "q8_0"},
          {"matrices", shapes.size()},
          {"weight_bytes_per_pass", bytes},
          {"rounds", rounds},
          {"output_relative_difference", relative_difference},
          {"copy_bandwidth_gb_s_median", bench::median(copies)},
          {"read_bandwidth_gb_s_median", bench::median(reads)},
          {"tinyemo_gb_s_median", bench::median(ours_gbs)},
          {"ggml_gb_s_median", bench::median(ggml_gbs)},
          {"tinyemo_fraction_of_copy", bench::median(ours_of_copy)},
          {"ggml_fraction_of_copy", bench::median(ggml_of_copy)},
          {"tinyemo_fraction_of_read", bench::median(ours_of_read)},
          {"ggml_fraction_of_read", bench::median(ggml_of_read)},
          {"tinyemo_over_ggml", bench::median(ratio)},
          {"tinyemo_over_ggml_min", *std::min_element(ratio.begin(), ratio.end())},
          {"tinyemo_over_ggml_max", *std::max_element(ratio.begin(), ratio.end())}};
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 10;
  if (threads < 1 || rounds < 1) {
    std::fprintf(stderr, "usage: ggml_matvec_compare [threads>=1] [rounds>=1] [arch...]\n");
    return 2;
  }
  std::vector<std::string> archs;
  for (int i = 3; i < argc; ++i) archs.push_back(argv[i]);
  if (archs.empty()) archs = {"tinyllama-1.1b"};
  set_num_threads(threads);
  ggml_cpu_init();

  nlohmann::json results = nlohmann::json::array();
  for (const std::string& arch : archs) {
    try {
      results.push_back(compare(arch, threads, rounds));
    } catch (const Error& e) {
      std::fprintf(stderr, "ggml_matvec_compare: %s\n", e.what());
      return 1;
    }
  }
  const nlohmann::json out = {{"benchmark", "ggml_matvec_compare"},
                              {"machine", bench::machine_info()},
                              {"threads", threads},
                              {"comparison",
                               "batch-1 q8_0 mat-vecs of every matrix a decode token reads: tinyemo's "
                               "team kernel and ggml's CPU mul_mat on "
                               "the same codes, alternated per round, each as GB/s of weights and as a "
                               "fraction of the copy and read "
                               "probes taken just before the round (medians over rounds)"},
                              {"results", results}};
  std::printf("%s\n", out.dump(2).c_str());
}
