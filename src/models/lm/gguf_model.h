// LMs in GGUF files: what `tinyemo convert --to gguf` writes and tinyemo loads
// back. The file carries
//   general.architecture ("llama", "phi2", "openelm"), general.file_type, general.alignment = 32;
//   llama.cpp-style hyperparameter keys under the architecture
//     (<arch>.context_length, .embedding_length, .block_count, .feed_forward_length,
//      .attention.head_count[_kv] (arrays for OpenELM's per-layer heads),
//      .attention.key_length, .rope.freq_base, .rope.dimension_count, .vocab_size, norm epsilon);
//   tinyemo.config_json: the Hugging Face config.json, the source of truth when loading;
//   tokenizer.ggml.bos_token_id / eos_token_id, and the tokenizer files of the
//     model folder byte for byte as tinyemo.tokenizer_file.<name> (uint8 arrays);
//   tensors under their Hugging Face names, unpermuted (rotate-half RoPE).
// Files from other converters (llama.cpp permutes q/k for its RoPE) are refused.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "models/lm/model.h"
#include "models/lm/tokenizer.h"

namespace tinyemo {

LmModel load_lm_gguf(const std::filesystem::path& path, const LoadOptions& options = {});

// Writes `model` (weights in their current dtypes) with the tokenizer files found
// at its source (a model folder, or those embedded in a source .gguf).
void save_lm_gguf(const LmModel& model, const std::filesystem::path& out);

// Tokenizer files of a model source: the known tokenizer files of a folder, or
// the files embedded in a .gguf. Name -> bytes.
std::map<std::string, std::string> lm_tokenizer_files(const std::filesystem::path& source);

// The tokenizer of an LM, the one way every command finds it: `tokenizer`
// when given (a tokenizer file, a folder holding one, or a .gguf carrying
// one), else the model's own: the tokenizer files of a model folder, or those
// a .gguf carries (unpacked into a private temporary folder for
// Tokenizer::load). A .gguf without an embedded tokenizer is refused (never
// guessed from files that happen to sit beside it). Errors name the source.
std::unique_ptr<Tokenizer> load_lm_tokenizer(const std::filesystem::path& source,
                                             const std::filesystem::path& tokenizer = {});

}  // namespace tinyemo
