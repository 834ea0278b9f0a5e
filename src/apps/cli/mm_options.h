// Options shared by the multimodal commands (mm, reason, chat): which model
// and how to load it, and how to generate (run_tiny_llava.py's defaults).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "apps/cli/command.h"
#include "core/dtype.h"
#include "core/error.h"
#include "models/lm/generate.h"
#include "models/mm/model.h"
#include "models/mm/session.h"

namespace tinyemo::cli {

struct MmModelOptions {
  std::string model, dtype, language_model, conversation, mmproj, compute;

  void add(CLI::App* cmd) {
    cmd->add_option("--model", model,
                    "TinyLLaVA / TinyEmo folder (config.json, model.safetensors, tokenizer files), or with --mmproj "
                    "the LM .gguf of a llama.cpp pair")
        ->required();
    cmd->add_option("--mmproj", mmproj,
                    "llama.cpp mmproj .gguf (vision tower + LLaVA projector) paired with the LM .gguf given as --model");
    cmd->add_option("--dtype", dtype, "convert the language model's weights on load: f32, f16, bf16, q8_0, q4_0");
    add_lm_compute_option(*cmd, compute);
    cmd->add_option("--language-model", language_model,
                    "use this LM (.gguf from `tinyemo convert`, or a folder) instead of the checkpoint's language_model.*");
    cmd->add_option("--template", conversation,
                    "conversation template: llama, phi, gemma, qwen2_base, qwen2_instruct, pretrain (default: "
                    "config.json's conv_version, else the LM's)");
  }
  static DType parse_weight_dtype(const std::string& name, const char* flag) {
    DType d;
    TE_CHECK(parse_dtype(name, &d) && (d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::Q8_0 ||
                                       d == DType::Q4_0),
             "{} \"{}\": expected f32, f16, bf16, q8_0 or q4_0", flag, name);
    return d;
  }
  mm::TinyLlavaModel load() const {
    mm::MmLoadOptions o;
    if (!dtype.empty()) o.lm.weight_dtype = parse_weight_dtype(dtype, "--dtype");
    o.lm.prefill_compute = lm::parse_prefill_compute(compute, "--compute");
    o.language_model = language_model;
    o.conversation = conversation;
    o.mmproj = mmproj;
    return mm::TinyLlavaModel::load(model, o);
  }
};

struct MmSamplingOptions {
  int64_t max_new_tokens = 512;
  bool greedy = false, ignore_eos = false;
  std::optional<float> temperature, top_p;
  std::optional<int64_t> top_k;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;

  void add(CLI::App* cmd) {
    cmd->add_option("--max-new-tokens", max_new_tokens, "tokens to generate at most (default 512)");
    cmd->add_flag("--greedy", greedy, "greedy decoding (default: sampling at temperature 0.2, top-k 50)");
    cmd->add_option("--temperature", temperature, "sampling temperature (default 0.2; 0: greedy)");
    cmd->add_option("--top-p", top_p, "nucleus sampling (default off)");
    cmd->add_option("--top-k", top_k, "keep the K most likely tokens (default 50, Hugging Face's)");
    cmd->add_option("--repetition-penalty", repetition_penalty, "penalise ids already seen (1: off)");
    cmd->add_option("--seed", seed, "random seed for sampling (deterministic)");
    cmd->add_flag("--ignore-eos", ignore_eos, "keep generating past EOS and the template's stop text");
  }
  lm::GenerateOptions options() const {
    lm::GenerateOptions g = mm::default_generate_options();
    TE_CHECK(!(greedy && (temperature || top_p || top_k)),
             "--greedy cannot be combined with --temperature, --top-p or --top-k");
    g.max_new_tokens = max_new_tokens;
    g.sampling.greedy = greedy || (temperature && *temperature == 0.0f);
    if (temperature) g.sampling.temperature = *temperature;
    if (top_p) g.sampling.top_p = *top_p;
    if (top_k) g.sampling.top_k = *top_k;
    g.sampling.repetition_penalty = repetition_penalty;
    g.sampling.seed = seed;
    g.stop_at_eos = !ignore_eos;  // off: no template stop text either
    return g;
  }
};

}  // namespace tinyemo::cli
