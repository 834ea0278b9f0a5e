// `tinyemo mm logits | generate | bench`: TinyLLaVA / TinyEmo multimodal models
// (src/models/mm). Option parsing and printing only.
#include <cstdio>
#include <optional>

#include "apps/cli/command.h"
#include "apps/cli/mm_options.h"
#include "core/thread_pool.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/mm/benchmark.h"
#include "models/mm/inputs.h"
#include "models/mm/session.h"

namespace tinyemo::cli {
namespace {

struct LogitsOptions {
  MmModelOptions model;
  std::string inputs, out;
};

struct GenerateCliOptions {
  MmModelOptions model;
  MmSamplingOptions sampling;
  std::string inputs, prompt;
  std::vector<std::string> images;
  bool json = false;
};

struct BenchOptions {
  std::string preset, model, dtype = "q8_0", vision_dtype = "f32", save, compute;
  bool random_weights = false, json = false;
  mm::MmBenchOptions bench;
  uint64_t seed = 0;
};

void print_generation(const mm::MmGenerateResult& r, const lm::Tokenizer* tokenizer, bool json, bool streamed) {
  if (json) {
    print_json({{"ids", r.generated.ids},
                {"text", tokenizer ? nlohmann::json(r.generated.text) : nlohmann::json(nullptr)},
                {"answer", tokenizer ? nlohmann::json(r.answer) : nlohmann::json(nullptr)},
                {"finish_reason", r.generated.finish_reason},
                {"prompt_positions", r.prompt_positions},
                {"truncated_positions", r.truncated},
                {"timings", {{"prefill_s", r.prefill_s}, {"decode_s", r.decode_s}, {"total_s", r.total_s}}}});
  } else if (streamed) {
    std::printf("\n");
  } else {
    for (size_t i = 0; i < r.generated.ids.size(); ++i) std::printf(i ? " %d" : "%d", r.generated.ids[i]);
    std::printf("\n");
  }
}

void run_generate(const GenerateCliOptions& o) {
  TE_CHECK(o.inputs.empty() != (o.images.empty() && o.prompt.empty()),
           "mm generate needs --inputs FILE, or --prompt TEXT with --image FILE (not both)");
  const mm::TinyLlavaModel model = o.model.load();
  lm::GenerateOptions g = o.sampling.options();
  std::vector<int32_t> ids;
  std::vector<Tensor> features;
  if (!o.inputs.empty()) {
    const mm::MmInputs in = mm::read_mm_inputs(o.inputs, model.config().image_token_index);
    ids = in.input_ids;
    if (in.pixel_values.defined()) features = model.encode_images(in.pixel_values);
  } else {
    TE_CHECK(!o.prompt.empty(), "mm generate: --image needs --prompt TEXT");
    // run_tiny_llava.py: the question is "<image>\n" + the query, one image.
    std::string question = o.prompt;
    for (size_t i = 0; i < o.images.size(); ++i) question = std::string(mm::kImageMarker) + "\n" + question;
    for (const auto& path : o.images) features.push_back(model.encode_images(model.preprocess(load_image(path)))[0]);
    ids = model.prompt_ids({{question, std::nullopt}});
  }
  const lm::Tokenizer* tokenizer = model.tokenizer();
  const bool stream = !o.json && tokenizer != nullptr;
  if (stream) {
    g.on_token = [](int32_t, std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  mm::MmSession session(model);
  const mm::MmGenerateResult r = session.generate(ids, features, g);
  if (r.truncated > 0) {
    std::fprintf(stderr, "tinyemo: warning: the prompt was %lld positions; cut to tokenizer_model_max_length = %lld\n",
                 static_cast<long long>(r.prompt_positions + r.truncated), static_cast<long long>(r.prompt_positions));
  }
  print_generation(r, tokenizer, o.json, stream);
}

const CommandRegistration kMm("mm", [](CLI::App& root) {
  auto* mm = root.add_subcommand("mm", "TinyLLaVA / TinyEmo multimodal models: logits, generation, benchmarks");
  mm->require_subcommand(1);

  auto lo = std::make_shared<LogitsOptions>();
  auto* logits = mm->add_subcommand(
      "logits", "write image_features (connector output) and the logits of every position of the spliced sequence");
  lo->model.add(logits);
  logits->add_option("--inputs", lo->inputs, "safetensors with pixel_values [B, 3, N, N] and input_ids ([T] or [1, T], "
                                             "-200 where each image goes)")->required();
  logits->add_option("--out", lo->out, "output safetensors: image_features [rows, hidden], logits [T, vocab] (F32)")
      ->required();
  logits->callback([lo] {
    const mm::TinyLlavaModel model = lo->model.load();
    const mm::MmInputs in = mm::read_mm_inputs(lo->inputs, model.config().image_token_index);
    std::vector<Tensor> features;
    if (in.pixel_values.defined()) features = model.encode_images(in.pixel_values);
    mm::MmSession session(model);
    const Tensor out = session.logits(in.input_ids, features, /*all_positions=*/true);
    NamedTensors tensors;
    if (!features.empty()) tensors.emplace_back("image_features", mm::stack_rows(features));
    tensors.emplace_back("logits", out);
    write_safetensors(lo->out, tensors);
    std::string detail;
    for (const auto& [name, t] : tensors) detail += (detail.empty() ? "" : ", ") + name + " " + shape_str(t.shape());
    report_written(lo->out, detail);
  });

  auto go = std::make_shared<GenerateCliOptions>();
  auto* gen = mm->add_subcommand(
      "generate", "generate an answer; --json prints {\"ids\": generated ids (prompt excluded), \"text\", \"answer\", "
                  "\"finish_reason\", ...}");
  go->model.add(gen);
  go->sampling.add(gen);
  auto* inputs = gen->add_option("--inputs", go->inputs, "safetensors with pixel_values and input_ids (-200 per image)");
  auto* prompt = gen->add_option("--prompt", go->prompt, "question, put in the model's conversation template");
  gen->add_option("--image", go->images, "image file for --prompt (JPEG, PNG, WebP)");
  inputs->excludes(prompt);
  gen->add_flag("--json", go->json, "print one JSON object instead of streaming the text");
  gen->callback([go] { run_generate(*go); });

  auto bo = std::make_shared<BenchOptions>();
  auto* bench = mm->add_subcommand("bench", "per-image speed: preprocess, vision + connector, prefill, decode");
  std::string presets;
  for (const auto& n : mm::mm_preset_names()) presets += (presets.empty() ? "" : "|") + n;
  bench->add_option("--preset", bo->preset, "model shapes: " + presets);
  bench->add_flag("--random-weights", bo->random_weights, "random weights of --preset's shapes (no checkpoint)");
  bench->add_option("--model", bo->model, "benchmark this TinyLLaVA folder instead");
  bench->add_option("--dtype", bo->dtype, "LM weight dtype: f32, bf16, f16, q8_0, q4_0 (default q8_0)");
  bench->add_option("--vision-dtype", bo->vision_dtype, "random vision tower dtype: f32, f16, bf16 (default f32)");
  bench->add_option("--gen-tokens", bo->bench.gen_tokens, "tokens to generate (default 128)");
  bench->add_option("--runs", bo->bench.runs, "runs, each with a new image (default 3; the first is reported as cold)");
  bench->add_option("--prefix-tokens", bo->bench.prefix_tokens, "text positions before the image (default 40)");
  bench->add_option("--question-tokens", bo->bench.question_tokens, "text positions after the image (default 80)");
  bench->add_option("--save-checkpoint", bo->save,
                    "write the random F32 model to this folder first (for tools/tinyllava_torch_bench.py), then "
                    "benchmark it loaded back with --dtype");
  bench->add_option("--seed", bo->seed, "seed of the random weights");
  add_lm_compute_option(*bench, bo->compute);
  bench->add_flag("--json", bo->json, "print one JSON object");
  bench->callback([bo] {
    const DType lm_dtype = MmModelOptions::parse_weight_dtype(bo->dtype, "--dtype");
    const LinearCompute compute = lm::parse_prefill_compute(bo->compute, "--compute");
    DType vision_dtype;
    TE_CHECK(parse_dtype(bo->vision_dtype, &vision_dtype) &&
                 (vision_dtype == DType::F32 || vision_dtype == DType::F16 || vision_dtype == DType::BF16),
             "--vision-dtype \"{}\": expected f32, f16 or bf16", bo->vision_dtype);
    std::optional<mm::TinyLlavaModel> model;
    nlohmann::json what;
    if (!bo->model.empty()) {
      TE_CHECK(bo->preset.empty() && !bo->random_weights && bo->save.empty(),
               "mm bench: give --model or --preset --random-weights, not both");
      mm::MmLoadOptions o;
      o.lm.weight_dtype = lm_dtype;
      model.emplace(mm::TinyLlavaModel::load(bo->model, o));
      what["model"] = bo->model;
    } else {
      TE_CHECK(!bo->preset.empty() && bo->random_weights,
               "mm bench needs --preset NAME --random-weights (or --model DIR)");
      const nlohmann::json config = mm::mm_preset_config(bo->preset);
      if (!bo->save.empty()) {
        mm::save_tinyllava(mm::random_tinyllava(config, DType::F32, DType::F32, bo->seed), bo->save);
        report_written(bo->save, "random F32 " + bo->preset + " checkpoint");
        mm::MmLoadOptions o;
        o.lm.weight_dtype = lm_dtype;
        model.emplace(mm::TinyLlavaModel::load(bo->save, o));
        what["checkpoint"] = bo->save;
      } else {
        model.emplace(mm::random_tinyllava(config, lm_dtype, vision_dtype, bo->seed));
      }
      what["preset"] = bo->preset;
    }
    model->set_lm_prefill_compute(compute);
    nlohmann::json r = mm::benchmark_tinyllava(*model, bo->bench);
    r.update(what);
    r["dtype"] = bo->dtype;
    print_report(r, bo->json);
  });
});

}  // namespace
}  // namespace tinyemo::cli
