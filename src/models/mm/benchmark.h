// Speed of the multimodal pipeline as TinyEmo runs it per image: preprocess
// one image, vision tower + connector, prefill of the spliced prompt (the
// system prompt's positions served from the session's cache, as for every
// image after the first), then greedy decoding of a fixed number of tokens.
// Models of the released shapes with random weights (presets) or a folder.
// Used by `tinyemo mm bench` and bench/mm_torch_compare.py.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/mm/model.h"

namespace tinyemo::mm {

// "tinyemo-700m": CLIP ViT-L/14 @224 + mlp2x_gelu + OpenELM-270M (TinyEmo's
// smallest reasoning model); "tinyllava-phi2-3b": SigLIP so400m-patch14-384 +
// mlp2x_gelu + Phi-2 (TinyLLaVA-Phi-2-SigLIP-3.1B).
const std::vector<std::string>& mm_preset_names();
// The preset's TinyLLaVA config.json (text_config and vision_config nested).
nlohmann::json mm_preset_config(const std::string& preset);

// A model of a TinyLLaVA config.json's shapes with deterministic random
// weights: the LM in `lm_dtype` (F32/F16/BF16/Q8_0/Q4_0), the tower in
// `vision_dtype` (F32/F16/BF16). No tokenizer.
TinyLlavaModel random_tinyllava(const nlohmann::json& config, DType lm_dtype, DType vision_dtype, uint64_t seed = 0);

// Writes `model` as a TinyLLaVA Factory folder (config.json + model.safetensors
// under the TinyLLaVA names), every weight as stored; quantised LM weights
// cannot be written (save the F32 model, then load it with a dtype).
void save_tinyllava(const TinyLlavaModel& model, const std::filesystem::path& dir);

struct MmBenchOptions {
  int64_t gen_tokens = 128;
  // Text positions around the image, as TinyEmo's EmoReason prompt in the
  // llama template has them with a LLaMA tokenizer: BOS + system prompt +
  // "USER: " before, the question and " ASSISTANT:" after.
  int64_t prefix_tokens = 40;
  int64_t question_tokens = 80;
  int64_t image_width = 640, image_height = 480;
  // Runs; the first pays for page faults and the system prompt, the rest
  // reuse the cached system prompt. The medians of the later runs are reported.
  int64_t runs = 3;
};

// One JSON object: preprocess_s, image_encode_s (tower + connector),
// prefill_s, time_to_first_token_s (all of these), decode_s,
// decode_tokens_per_s, total_s, first-run (cold) numbers, threads and shapes.
nlohmann::json benchmark_tinyllava(const TinyLlavaModel& model, const MmBenchOptions& options);

}  // namespace tinyemo::mm
