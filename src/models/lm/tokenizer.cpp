#include "models/lm/tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "io/file.h"
#include "models/lm/bpe_tokenizer.h"
#include "models/lm/sentencepiece_tokenizer.h"

namespace tinyemo::lm {
namespace {

namespace fs = std::filesystem;

// A file whose name does not say its format: JSON starts with '{' (after
// optional whitespace); a SentencePiece model is a binary protobuf.
bool looks_like_json(const fs::path& path) {
  const InputFile in = InputFile::open(path);  // regular files only
  char head[4096];
  const auto n = static_cast<size_t>(std::min<uint64_t>(in.size(), sizeof head));
  in.read_at(0, head, n);
  for (size_t i = 0; i < n; ++i) {
    const char c = head[i];
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
  // Anything but a folder is read as a file (a FIFO or device is then refused by name).
  if (fs::exists(path, ec) && !fs::is_directory(path, ec)) return load_file(path);
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

}  // namespace tinyemo::lm
