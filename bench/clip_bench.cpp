// CLIP ViT-L/14 @224 vision tower, random weights: seconds per image at batch
// 1 and 8, for f32 weights as stored (packed per call), packed once (the
// default) and with bf16 products (vdpbf16ps), and bf16 weights as stored, against
//  - the anchor: PyTorch 1.13 + OpenBLAS on this machine, fp32, 3.5 s/image at
//    batch 1 and 2.6 s/image at batch 4 (tools/clip_torch_anchor.py re-measures
//    it; batch 8 is compared with the batch-4 figure, the largest measured),
//    and the 1.8 s/image target at batch 1;
//  - the physical limit: the exact FLOP count of the forward pass
//    (VisionConfig::flop_per_image, ~162 GFLOP) over the f32 FMA peak measured
//    in the same run (bf16 weights are widened to f32 while packed, so f32 is
//    their limit too), or over the bf16-dot peak for bf16 products.
// Usage: clip_bench [threads=2] [timed runs=3]. Prints one JSON object.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_util.h"
#include "core/matmul.h"
#include "core/thread_pool.h"
#include "models/clip/vision_model.h"

using namespace tinyemo;

namespace {
constexpr double kAnchorBatch1 = 3.5;  // s/image, PyTorch 1.13 + OpenBLAS fp32, 2 threads
constexpr double kAnchorBatch4 = 2.6;
constexpr double kTargetBatch1 = 1.8;
}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 3;
  set_num_threads(threads);
  const clip::VisionConfig cfg = clip::named_vision_config("vit-l-14");
  const double gflop = cfg.flop_per_image() / 1e9;
  nlohmann::json results = nlohmann::json::array();
  double peak = 0.0;
  struct Case {
    DType dtype;
    const char* compute;  // clip::apply_compute
  };
  for (const Case c : {Case{DType::F32, "stored"}, Case{DType::F32, "f32"}, Case{DType::F32, "bf16"},
                       Case{DType::BF16, "stored"}}) {
    if (std::string(c.compute) == "bf16" && !has_native_bf16_linear()) continue;
    clip::VisionModel model = clip::VisionModel::random(cfg, c.dtype, 1);
    clip::apply_compute(model, c.compute, "clip_bench");
    const PeakKind kind = std::string(c.compute) == "bf16" ? PeakKind::Bf16Dot : PeakKind::F32Fma;
    for (const int64_t batch : {1, 8}) {
      Tensor pixels = Tensor::empty(DType::F32, {batch, 3, cfg.image_size, cfg.image_size});
      float* px = pixels.mutable_data<float>();
      for (int64_t i = 0; i < pixels.numel(); ++i) px[i] = static_cast<float>((i * 7919) % 1000) / 500.0f - 1.0f;
      const clip::ForwardOptions options{.hidden_states = false};
      const double seconds = bench::median_seconds(runs, [&] { model.forward(pixels, options); });
      const double per_image = seconds / static_cast<double>(batch);
      // Peak measured right after each case, so load drift on a shared machine shows in the fraction.
      peak = bench::peak_gflops(kind, threads);
      const double anchor = batch == 1 ? kAnchorBatch1 : kAnchorBatch4;
      results.push_back({{"dtype", dtype_name(c.dtype)},
                         {"compute", c.compute},
                         {"batch", batch},
                         {"seconds_per_image", per_image},
                         {"gflops", gflop / per_image},
                         {"peak_gflops_now", peak},
                         {"peak_kind", kind == PeakKind::Bf16Dot ? "bf16 dot" : "f32 fma"},
                         {"fraction_of_peak", gflop / per_image / peak},
                         {"anchor_seconds_per_image", anchor},
                         {"anchor_batch", batch == 1 ? 1 : 4},
                         {"speedup_vs_anchor", anchor / per_image},
                         {"meets_batch1_target", batch == 1 ? nlohmann::json(per_image <= kTargetBatch1) : nullptr}});
    }
  }
  const nlohmann::json out = {
      {"benchmark", "clip_vit_l14_224"},
      {"machine", bench::machine_info()},
      {"limits", bench::machine_limits(threads)},
      {"threads", threads},
      {"timed_runs", runs},
      {"model", cfg.to_json()},
      {"gflop_per_image", gflop},
      {"anchor", "PyTorch 1.13 + OpenBLAS fp32, 2 threads: 3.5 s/image batch 1, 2.6 s/image batch 4"},
      {"target_seconds_per_image_batch1", kTargetBatch1},
      {"results", results}};
  std::puts(out.dump(2).c_str());
}
