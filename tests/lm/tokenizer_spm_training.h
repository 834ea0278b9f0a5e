// Trains a small LLaMA-style SentencePiece model at test time (no binary
// model is committed): BPE, byte fallback, split digits, dummy prefix,
// whitespace kept as is, <unk>=0 <s>=1 </s>=2, on
// tests/data/tokenizers/spm_corpus.txt. Shared by the lm and cli tests.
#pragma once

#include <sentencepiece_trainer.h>

#include <filesystem>
#include <string>

#include "io/file.h"
#include "testing/testing.h"

namespace tinyemo::testing {

inline constexpr int kSpmVocabSize = 600;

// Serialized ModelProto of the model, trained once per process.
inline const std::string& llama_like_spm_model() {
  static const std::string model = [] {
    const auto corpus = source_dir() / "tests/data/tokenizers/spm_corpus.txt";
    const std::string args =
        "--input=" + corpus.string() + " --model_type=bpe --vocab_size=" +
        std::to_string(kSpmVocabSize) +
        " --byte_fallback=true --split_digits=true --add_dummy_prefix=true --remove_extra_whitespaces=false"
        " --normalization_rule_name=identity --allow_whitespace_only_pieces=true --character_coverage=1.0"
        " --num_threads=1 --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --minloglevel=2";
    std::string serialized;
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, nullptr, &serialized);
    if (!status.ok()) ADD_FAILURE() << "SentencePiece training failed: " << status.ToString();
    return serialized;
  }();
  return model;
}

// Writes the model as <dir>/tokenizer.model and returns that path.
inline std::filesystem::path write_llama_like_spm_model(const std::filesystem::path& dir) {
  const auto path = dir / "tokenizer.model";
  write_file_atomic(path, llama_like_spm_model());
  return path;
}

}  // namespace tinyemo::testing
