// `tinyemo clip preprocess|encode|bench`: CLIP's image transform, the vision
// tower on preprocessed pixels, and its speed on random weights.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "apps/cli/clip_text.h"
#include "apps/cli/command.h"
#include "core/machine_limits.h"
#include "core/thread_pool.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/clip/preprocess.h"
#include "models/clip/vision_model.h"

namespace tinyemo::cli {
namespace {

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void add_preprocess(CLI::App& clip) {
  struct Opts {
    std::string image, out;
    int64_t size = 224;
    int64_t max_pixels = ImageLimits{}.max_pixels;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = clip.add_subcommand("preprocess", "decode an image and apply CLIP's transform (OpenAI/torchvision)");
  cmd->add_option("--image", o->image, "JPEG, PNG or WebP file")->required();
  cmd->add_option("--size", o->size, "output side N (224, or 336 for ViT-L/14@336)")->check(at_least(1));
  cmd->add_option("--out", o->out, "output .safetensors (tensor pixel_values [3, N, N])")->required();
  cmd->add_option("--max-pixels", o->max_pixels, "refuse images declaring more pixels than this")
      ->check(at_least(1));
  cmd->callback([o] {
    const Image image = load_image(o->image, ImageLimits{o->max_pixels});
    const Tensor pixels = clip::clip_preprocess(image, o->size);
    write_safetensors(o->out, {{"pixel_values", pixels}},
                      {{"transform", "openai-clip"}, {"size", std::to_string(o->size)}, {"image", o->image}});
    report_written(o->out, "pixel_values " + shape_str(pixels.shape()));
  });
}

void add_encode(CLI::App& clip) {
  struct Opts {
    std::string model, pixels, key = "pixel_values", out, compute = "auto";
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = clip.add_subcommand("encode", "run the vision tower on preprocessed pixels");
  add_clip_compute_option(*cmd, o->compute);
  cmd->add_option("--model", o->model, "model directory or weights file (HF or OpenAI)")->required();
  cmd->add_option("--pixels", o->pixels, "input .safetensors holding [B, 3, N, N] or [3, N, N] pixels")->required();
  cmd->add_option("--key", o->key, "tensor name in --pixels");
  cmd->add_option("--out", o->out, "output .safetensors: image_embeds, pooled_output, last_hidden_state, "
                                   "penultimate_hidden_state")
      ->required();
  cmd->callback([o] {
    auto model = clip::VisionModel::load(o->model);
    clip::apply_compute(model, o->compute, "--compute");
    const auto input = SafetensorsFile::open(o->pixels);
    TE_CHECK(input.contains(o->key), "{}: no tensor \"{}\" (use --key)", o->pixels, o->key);
    const clip::VisionOutputs out = model.forward(input.get(o->key));
    NamedTensors tensors;
    if (out.image_embeds.defined()) tensors.emplace_back("image_embeds", out.image_embeds);
    tensors.emplace_back("pooled_output", out.pooled_output);
    tensors.emplace_back("last_hidden_state", out.last_hidden_state);
    tensors.emplace_back("penultimate_hidden_state", out.penultimate_hidden_state);
    write_safetensors(o->out, tensors, {{"model", model.description()}});
    report_written(o->out, "last_hidden_state " + shape_str(out.last_hidden_state.shape()) +
                               (out.image_embeds.defined() ? ", image_embeds " + shape_str(out.image_embeds.shape())
                                                           : std::string()));
  });
}

void add_bench(CLI::App& clip) {
  struct Opts {
    std::string arch = "vit-l-14", model, dtype = "f32", compute = "auto";
    bool random_weights = false, json = false;
    int64_t batch = 1;
    double min_seconds = 3.0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = clip.add_subcommand("bench", "time the vision tower: seconds per image and GFLOP/s");
  add_clip_compute_option(*cmd, o->compute);
  cmd->add_option("--arch", o->arch, "vit-b-32, vit-b-16, vit-l-14 or vit-l-14-336");
  cmd->add_flag("--random-weights", o->random_weights, "random weights of --arch (no checkpoint needed)");
  cmd->add_option("--model", o->model, "time a checkpoint instead of random weights");
  cmd->add_option("--dtype", o->dtype, "weight dtype of random weights: f32, bf16 or f16");
  cmd->add_option("--batch", o->batch, "images per forward pass")->check(at_least(1));
  cmd->add_option("--min-seconds", o->min_seconds, "keep timing until this much time has passed (at least 2 runs)");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->callback([o] {
    TE_CHECK(o->random_weights != !o->model.empty(), "clip bench: give exactly one of --random-weights or --model");
    DType dtype = DType::F32;
    TE_CHECK(parse_dtype(o->dtype, &dtype) &&
                 (dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16),
             "--dtype: expected f32, bf16 or f16, got \"{}\"", o->dtype);
    auto model = o->random_weights ? clip::VisionModel::random(clip::named_vision_config(o->arch), dtype)
                                   : clip::VisionModel::load(o->model);
    clip::apply_compute(model, o->compute, "--compute");
    const clip::VisionConfig& cfg = model.config();
    Tensor pixels = Tensor::empty(DType::F32, {o->batch, cfg.num_channels, cfg.image_size, cfg.image_size});
    float* px = pixels.mutable_data<float>();
    for (int64_t i = 0; i < pixels.numel(); ++i) px[i] = static_cast<float>((i * 7919) % 1000) / 500.0f - 1.0f;
    const clip::ForwardOptions options{.hidden_states = false};
    model.forward(pixels, options);  // warm-up: page in the weights, size the pools
    std::vector<double> runs;
    const double start = seconds_now();
    while (runs.size() < 2 || (seconds_now() - start < o->min_seconds && runs.size() < 20)) {
      const double t0 = seconds_now();
      model.forward(pixels, options);
      runs.push_back(seconds_now() - t0);
    }
    std::sort(runs.begin(), runs.end());
    const double per_image = runs[runs.size() / 2] / static_cast<double>(o->batch);
    const double gflop = cfg.flop_per_image() / 1e9;
    const bool bf16_compute = model.compute() == LinearCompute::BF16;
    const double peak = peak_gflops(bf16_compute ? PeakKind::Bf16Dot : PeakKind::F32Fma, num_threads());
    nlohmann::json j = {{"arch", o->random_weights ? o->arch : o->model},
                        {"weights", model.description()},
                        {"dtype", dtype_name(model.weight_dtype())},
                        {"compute", !model.compute() ? "stored" : bf16_compute ? "bf16" : "f32"},
                        {"image_size", cfg.image_size},
                        {"batch", o->batch},
                        {"threads", num_threads()},
                        {"runs", runs.size()},
                        {"seconds_per_image", per_image},
                        {"gflop_per_image", gflop},
                        {"gflops", gflop / per_image},
                        {"peak_gflops", peak},
                        {"fraction_of_peak", gflop / per_image / peak}};
    if (o->json) {
      print_json(j);
    } else {
      std::printf("%s batch %lld, %d threads: %.3f s/image, %.1f GFLOP/image, %.1f GFLOP/s (%.0f%% of %.0f peak)\n",
                  j["arch"].get<std::string>().c_str(), static_cast<long long>(o->batch), num_threads(), per_image,
                  gflop, gflop / per_image, 100.0 * gflop / per_image / peak, peak);
    }
  });
}

const CommandRegistration kClip("clip", [](CLI::App& root) {
  auto* clip = root.add_subcommand("clip", "CLIP: preprocess, encode (images), encode-text, bench");
  clip->require_subcommand(1);
  add_preprocess(*clip);
  add_encode(*clip);
  add_bench(*clip);
  add_clip_encode_text(*clip);
});

}  // namespace
}  // namespace tinyemo::cli
