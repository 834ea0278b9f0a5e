#include "models/lm/tokenizer.h"

#include <fstream>

#include "core/error.h"
#include "models/lm/bpe_tokenizer.h"
#include "models/lm/sentencepiece_tokenizer.h"

namespace tinyemo {
namespace {

namespace fs = std::filesystem;

// A file whose name does not say its format: JSON starts with '{' (after
// optional whitespace); a SentencePiece model is a binary protobuf.
bool looks_like_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  TE_CHECK(in, "{}: cannot open", path.string());
  char c;
  while (in.get(c)) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return c == '{';
  }
  return false;
}

std::unique_ptr<Tokenizer> load_file(const fs::path& path) {
  // Either half of GPT-2's release layout stands for its folder.
  if (path.filename() == "vocab.json" || path.filename() == "merges.txt") {
    return BpeTokenizer::load_vocab_merges(path.parent_path());
  }
  const auto ext = path.extension();
  if (ext == ".json" || (ext != ".model" && looks_like_json(path))) return BpeTokenizer::load_tokenizer_json(path);
  return SentencePieceTokenizer::load(path);
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return load_file(path);
  TE_CHECK(fs::is_directory(path, ec), "{}: no such tokenizer file or folder", path.string());
  // A model folder: LLaMA-family checkpoints carry tokenizer.model beside a
  // tokenizer.json that re-expresses it, so the SentencePiece model comes first.
  for (const char* name : {"tokenizer.model", "tokenizer.json"}) {
    if (fs::is_regular_file(path / name, ec)) return load_file(path / name);
  }
  if (fs::is_regular_file(path / "vocab.json", ec) || fs::is_regular_file(path / "merges.txt", ec)) {
    return BpeTokenizer::load_vocab_merges(path);
  }
  fail("{}: no tokenizer.model, tokenizer.json or vocab.json + merges.txt in this folder", path.string());
}

}  // namespace tinyemo
