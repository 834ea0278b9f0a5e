// `tinyemo lm logits | generate | bench`: run the decoder LMs (LLaMA/TinyLlama,
// Phi-2, OpenELM) from a Hugging Face folder or a tinyemo .gguf.
#include <cstdio>
#include <filesystem>
#include <optional>

#include "apps/cli/command.h"
#include "core/thread_pool.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "models/lm/benchmark.h"
#include "models/lm/generate.h"
#include "models/lm/gguf_model.h"
#include "models/lm/presets.h"
#include "models/lm/session.h"

namespace tinyemo::cli {
namespace {

// Options shared by the commands that load a model.
struct ModelOptions {
  std::string model, weights, dtype, compute;

  void add(CLI::App* cmd) {
    cmd->add_option("--model", model, "model folder (config.json + safetensors) or .gguf file")->required();
    cmd->add_option("--weights", weights, "safetensors file or index in the model folder to read instead of model.safetensors");
    cmd->add_option("--dtype", dtype, "convert weight matrices on load: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k");
    add_lm_compute_option(*cmd, compute);
  }
  lm::LmModel load() const {
    lm::LoadOptions o;
    o.weights_file = weights;
    if (!dtype.empty()) o.weight_dtype = parse_weight_dtype(dtype, "--dtype");
    o.prefill_compute = lm::parse_prefill_compute(compute, "--compute");
    return lm::LmModel::load(model, o);
  }
  static DType parse_weight_dtype(const std::string& name, const char* flag) {
    DType d;
    TE_CHECK(parse_dtype(name, &d) && (d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::Q8_0 ||
                                       d == DType::Q4_0 || dtype_is_kquant(d)),
             "{} \"{}\": expected f32, f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k", flag, name);
    return d;
  }
};

// Token ids from a safetensors file: an integer tensor [T] or [1, T].
std::vector<int32_t> read_ids(const std::string& path, const std::string& key) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  TE_CHECK(f.contains(key), "{}: no tensor \"{}\" (set --key)", path, key);
  const Tensor t = f.get(key);
  TE_CHECK(t.dtype() == DType::I64 || t.dtype() == DType::I32 || t.dtype() == DType::I16 || t.dtype() == DType::U8,
           "{}: \"{}\" has dtype {}, expected integer token ids", path, key, dtype_name(t.dtype()));
  TE_CHECK(t.ndim() == 1 || (t.ndim() == 2 && t.dim(0) == 1), "{}: \"{}\" has shape {}, expected [T] or [1, T]",
           path, key, shape_str(t.shape()));
  TE_CHECK(t.numel() > 0, "{}: \"{}\" holds no ids", path, key);
  std::vector<int32_t> ids;
  const Tensor wide = t.to(DType::I64);
  for (int64_t i = 0; i < wide.numel(); ++i) {
    const int64_t v = wide.data<int64_t>()[i];
    TE_CHECK(v >= INT32_MIN && v <= INT32_MAX, "{}: \"{}\"[{}] = {} is not a token id", path, key, i, v);
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

struct LogitsOptions {
  ModelOptions model;
  std::string ids, key = "input_ids", out;
};

struct GenerateCliOptions {
  ModelOptions model;
  std::string prompt, ids, key = "input_ids", tokenizer;
  int64_t max_new_tokens = 256;
  bool greedy = false, json = false, ignore_eos = false, no_cache = false;
  std::optional<float> temperature, top_p;
  std::optional<int64_t> top_k;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  std::vector<std::string> stop;
};

struct BenchOptions {
  std::string arch, model, dtype = "f32", save, compute;
  bool random_weights = false, json = false;
  int64_t prompt_tokens = 128, gen_tokens = 64;
  uint64_t seed = 0;
};

void run_generate(const GenerateCliOptions& o) {
  const lm::LmModel model = o.model.load();
  lm::GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.stop_at_eos = !o.ignore_eos;
  g.use_kv_cache = !o.no_cache;
  g.stop_strings = o.stop;
  const bool sampling = o.temperature || o.top_p || o.top_k;
  TE_CHECK(!(o.greedy && sampling), "--greedy cannot be combined with --temperature, --top-p or --top-k");
  g.sampling.greedy = !sampling || (o.temperature && *o.temperature == 0.0f);
  g.sampling.temperature = o.temperature.value_or(1.0f);
  g.sampling.top_p = o.top_p.value_or(1.0f);
  g.sampling.top_k = o.top_k.value_or(0);
  g.sampling.repetition_penalty = o.repetition_penalty;
  g.sampling.seed = o.seed;

  std::unique_ptr<lm::Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (!o.prompt.empty()) {
    tokenizer = lm::load_lm_tokenizer(o.model.model, o.tokenizer);
    prompt = tokenizer->encode(o.prompt, /*add_special=*/true);
    TE_CHECK(!prompt.empty(), "--prompt encodes to no tokens");
  } else {
    prompt = read_ids(o.ids, o.key);
    // Text output when the model ships a tokenizer.
    if (!o.tokenizer.empty() || !lm::lm_tokenizer_files(o.model.model).empty()) {
      tokenizer = lm::load_lm_tokenizer(o.model.model, o.tokenizer);
    }
  }
  g.tokenizer = tokenizer.get();
  TE_CHECK(o.stop.empty() || tokenizer, "--stop needs a tokenizer, and {} has none", o.model.model);
  if (!o.json && tokenizer) {
    g.on_token = [](int32_t, std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  const lm::GenerateResult r = generate(model, prompt, g);
  if (o.json) {
    print_json({{"ids", r.ids},
                {"text", tokenizer ? nlohmann::json(r.text) : nlohmann::json(nullptr)},
                {"finish_reason", r.finish_reason}});
  } else if (tokenizer) {
    std::printf("\n");
  } else {
    for (size_t i = 0; i < r.ids.size(); ++i) std::printf(i ? " %d" : "%d", r.ids[i]);
    std::printf("\n");
  }
}

const CommandRegistration kLm("lm", [](CLI::App& root) {
  auto* lm = root.add_subcommand("lm", "decoder LMs: logits, text generation, benchmarks");
  lm->require_subcommand(1);

  auto lo = std::make_shared<LogitsOptions>();
  auto* logits = lm->add_subcommand("logits", "write the logits [T, vocab] of every prompt position");
  lo->model.add(logits);
  logits->add_option("--ids", lo->ids, "safetensors file with the token ids ([T] or [1, T])")->required();
  logits->add_option("--key", lo->key, "tensor name of the ids (default input_ids)");
  logits->add_option("--out", lo->out, "output safetensors file (tensor \"logits\", F32 [T, vocab])")->required();
  logits->callback([lo] {
    const lm::LmModel model = lo->model.load();
    const std::vector<int32_t> ids = read_ids(lo->ids, lo->key);
    lm::LmSession session(model);
    const Tensor out = session.forward(ids, /*all_positions=*/true);
    write_safetensors(lo->out, {{"logits", out}});
    report_written(lo->out, "logits " + shape_str(out.shape()));
  });

  auto go = std::make_shared<GenerateCliOptions>();
  auto* gen = lm->add_subcommand(
      "generate",
      "generate a continuation; --json prints {\"ids\": generated ids (prompt excluded, EOS kept), \"text\": their "
      "text or null without a tokenizer, \"finish_reason\"}");
  go->model.add(gen);
  auto* prompt = gen->add_option("--prompt", go->prompt, "prompt text (tokenised with BOS as the model's tokenizer adds it)");
  auto* ids = gen->add_option("--ids", go->ids, "safetensors file with the prompt ids ([T] or [1, T])");
  prompt->excludes(ids);
  gen->add_option("--key", go->key, "tensor name of the ids (default input_ids)");
  gen->add_option("--tokenizer", go->tokenizer,
                  "tokenizer file, folder or .gguf (default: the model's own, from its folder or .gguf)");
  gen->add_option("--max-new-tokens", go->max_new_tokens,
                  "tokens to generate at most (generation also ends at the model's context: finish_reason length)")
      ->check(at_least(0))
      ->capture_default_str();
  gen->add_flag("--greedy", go->greedy, "greedy decoding (the default without sampling options)");
  gen->add_option("--temperature", go->temperature, "sample at this temperature (0: greedy)")->check(at_least(0));
  gen->add_option("--top-p", go->top_p, "nucleus sampling: keep tokens while the mass before them is < P")
      ->check(in_range(0, 1, /*min_open=*/true));
  gen->add_option("--top-k", go->top_k, "sample among the K most likely tokens")->check(at_least(1));
  gen->add_option("--repetition-penalty", go->repetition_penalty, "penalise ids already seen (1: off)")
      ->check(positive());
  gen->add_option("--seed", go->seed, "random seed for sampling (deterministic)");
  gen->add_option("--stop", go->stop, "stop when the text contains this string (repeatable)");
  gen->add_flag("--ignore-eos", go->ignore_eos, "keep generating past EOS");
  gen->add_flag("--no-kv-cache", go->no_cache, "recompute the whole sequence for every token (reference path)");
  gen->add_flag("--json", go->json, "print {\"ids\": [...], \"text\": ...} instead of streaming the text");
  gen->callback([go] {
    TE_CHECK(!go->prompt.empty() || !go->ids.empty(), "lm generate needs --prompt TEXT or --ids FILE");
    run_generate(*go);
  });

  auto bo = std::make_shared<BenchOptions>();
  auto* bench = lm->add_subcommand("bench", "prefill and batch-1 decode speed against the machine's limits");
  std::string archs;
  for (const auto& n : lm::lm_preset_names()) archs += (archs.empty() ? "" : "|") + n;
  bench->add_option("--arch", bo->arch, "model shapes: " + archs);
  bench->add_flag("--random-weights", bo->random_weights, "random weights of --arch's shapes (no checkpoint)");
  bench->add_option("--model", bo->model, "benchmark this model folder or .gguf instead");
  auto* bench_dtype = bench->add_option(
      "--dtype", bo->dtype, "weight dtype: f32, bf16, f16, q8_0, q4_0 (default: f32 for --random-weights, as stored for --model)");
  bench->add_option("--prompt-tokens", bo->prompt_tokens, "prompt length (default 128)");
  bench->add_option("--gen-tokens", bo->gen_tokens, "tokens to decode (default 64)");
  bench->add_option("--seed", bo->seed, "seed of the random weights");
  add_lm_compute_option(*bench, bo->compute);
  bench->add_option("--save-checkpoint", bo->save,
                    "write the random F32 model to this folder first (config.json + model.safetensors, e.g. for "
                    "`tinyemo convert`), then benchmark it loaded back with --dtype");
  bench->add_flag("--json", bo->json, "print one JSON object");
  bench->callback([bo, bench_dtype] {
    const DType dtype = ModelOptions::parse_weight_dtype(bo->dtype, "--dtype");
    const LinearCompute compute = lm::parse_prefill_compute(bo->compute, "--compute");
    std::optional<lm::LmModel> model;
    nlohmann::json what;
    if (!bo->model.empty()) {
      TE_CHECK(bo->arch.empty() && !bo->random_weights && bo->save.empty(),
               "lm bench: give --model or --arch --random-weights, not both");
      lm::LoadOptions o;
      if (bench_dtype->count() > 0) o.weight_dtype = dtype;  // else the file's own types, as generate runs them
      model = lm::LmModel::load(bo->model, o);
      what["model"] = bo->model;
    } else {
      TE_CHECK(!bo->arch.empty() && bo->random_weights, "lm bench needs --arch NAME --random-weights (or --model PATH)");
      const nlohmann::json config = lm::lm_preset_config(bo->arch);
      if (!bo->save.empty()) {
        // The F32 tensors under their Hugging Face names and the preset as config.json: a folder
        // every loader (and `tinyemo convert`) reads like a published checkpoint.
        {
          const lm::LmModel random = lm::random_lm(config, DType::F32, bo->seed);
          std::filesystem::create_directories(bo->save);
          write_safetensors(std::filesystem::path(bo->save) / "model.safetensors", random.tensors(), {{"format", "pt"}});
          write_file_atomic(std::filesystem::path(bo->save) / "config.json", random.hf_config().dump(2));
        }
        report_written(bo->save, "random F32 " + bo->arch + " checkpoint");
        lm::LoadOptions o;
        o.weight_dtype = dtype;
        model = lm::LmModel::load(bo->save, o);
        what["checkpoint"] = bo->save;
      } else {
        model = lm::random_lm(config, dtype, bo->seed);
      }
      what["arch"] = bo->arch;
    }
    model->set_prefill_compute(compute);
    nlohmann::json r = benchmark_lm(*model, bo->prompt_tokens, bo->gen_tokens);
    r.update(what);
    r["dtype"] = dtype_name(dtype_of_rows(model->layers().front().down.weight.dtype()));
    print_report(r, bo->json);
  });
});

}  // namespace
}  // namespace tinyemo::cli
