// LMs in GGUF files, in two layouts.
//
// llama.cpp's (GgufLayout::LlamaCpp, the default of `tinyemo convert --to gguf`;
// gguf_llamacpp.cpp): what llama.cpp's convert_hf_to_gguf.py writes and
// llama.cpp loads: its tensor names, q/k rows permuted for the llama family,
// Gemma's norms with the 1 added, OpenELM's proj_1 split, llama.cpp's
// hyper-parameter keys and tokenizer metadata (gguf_tokenizer.h). Read from any
// converter for the five families; the config is rebuilt from the keys.
//
// tinyemo's own (GgufLayout::Tinyemo), which the file carries as
//   general.architecture ("llama", "phi2", "openelm"), general.file_type, general.alignment = 32;
//   llama.cpp-style hyperparameter keys under the architecture
//     (<arch>.context_length, .embedding_length, .block_count, .feed_forward_length,
//      .attention.head_count[_kv] (arrays for OpenELM's per-layer heads),
//      .attention.key_length, .rope.freq_base, .rope.dimension_count, .vocab_size, norm epsilon);
//   tinyemo.config_json: the Hugging Face config.json, the source of truth when loading;
//   tokenizer.ggml.bos_token_id / eos_token_id, and the tokenizer files of the
//     model folder byte for byte as tinyemo.tokenizer_file.<name> (uint8 arrays);
//   tensors under their Hugging Face names, unpermuted (rotate-half RoPE).
// It holds every config tinyemo runs (also those llama.cpp's layout cannot:
// llama3 RoPE scaling, untied Gemma, OpenELM without GLU, Phi with q/k norms).
// A file is read in the layout it has (tinyemo.config_json present or not).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "models/lm/model.h"
#include "models/lm/tokenizer.h"

namespace tinyemo {
class GgufFile;
class GgufWriter;
}  // namespace tinyemo

namespace tinyemo::lm {

enum class GgufLayout { LlamaCpp, Tinyemo };

LmModel load_lm_gguf(const std::filesystem::path& path, const LoadOptions& options = {});

// Writes `model` (weights in their current dtypes) with its tokenizer: in
// tinyemo's layout the tokenizer files found at its source (a model folder, or
// those embedded in a source .gguf), in llama.cpp's the tokenizer as llama.cpp
// metadata (tokenizer.ggml.model "none" when the source has none). llama.cpp's
// layout refuses, naming the setting, models llama.cpp would run differently.
// `tokenizer_source`, when given, replaces the model's source as the place its
// tokenizer is found (an LM bound from a TinyLLaVA folder: the folder).
void save_lm_gguf(const LmModel& model, const std::filesystem::path& out, GgufLayout layout = GgufLayout::LlamaCpp,
                  const std::filesystem::path& tokenizer_source = {});

// Tokenizer files of a model source: the known tokenizer files of a folder, or
// the files embedded in a .gguf. Name -> bytes.
std::map<std::string, std::string> lm_tokenizer_files(const std::filesystem::path& source);

// The tokenizer of an LM, the one way every command finds it: `tokenizer`
// when given (a tokenizer file, a folder holding one, or a .gguf carrying
// one), else the model's own: the tokenizer files of a model folder, or those
// a .gguf carries (unpacked into a private temporary folder for
// Tokenizer::load), else a llama.cpp .gguf's tokenizer.ggml.* metadata. A
// .gguf with neither is refused (never guessed from files that happen to sit
// beside it). Errors name the source.
std::unique_ptr<Tokenizer> load_lm_tokenizer(const std::filesystem::path& source,
                                             const std::filesystem::path& tokenizer = {});
// The model's own tokenizer (as above without `tokenizer`), or null when the
// source has none (an empty source: none).
std::unique_ptr<Tokenizer> find_lm_tokenizer(const std::filesystem::path& source);

namespace detail {
// gguf_llamacpp.cpp
LmModel load_lm_gguf_llamacpp(const GgufFile& file, const LoadOptions& options);
// Adds the llama.cpp-specific keys, tokenizer and tensors to `g` (general and
// hyper-parameter keys already set) and writes it.
void save_lm_gguf_llamacpp(const LmModel& model, const std::filesystem::path& out, GgufWriter& g,
                           const std::filesystem::path& tokenizer_source);
}  // namespace detail

}  // namespace tinyemo::lm
