// Kept apart from gguf_model.cpp so that code that never tokenises does not
// pull in the tokenizer implementations.
#include <stdlib.h>

#include "io/file.h"
#include "io/gguf.h"
#include "models/lm/gguf_model.h"
#include "models/lm/gguf_tokenizer.h"

namespace tinyemo::lm {

namespace {
bool is_gguf(const std::filesystem::path& p) {
  return p.extension() == ".gguf" && !std::filesystem::is_directory(p);
}
}  // namespace

std::unique_ptr<Tokenizer> find_lm_tokenizer(const std::filesystem::path& source) {
  if (source.empty()) return nullptr;
  if (std::filesystem::is_directory(source)) {
    if (lm_tokenizer_files(source).empty()) return nullptr;
    return Tokenizer::load(source);
  }
  if (!lm_tokenizer_files(source).empty()) return load_lm_tokenizer(source);
  const GgufFile file = GgufFile::open(source);
  return gguf_has_tokenizer(file) ? tokenizer_from_gguf(file) : nullptr;
}

std::unique_ptr<Tokenizer> load_lm_tokenizer(const std::filesystem::path& source,
                                             const std::filesystem::path& tokenizer) {
  if (!tokenizer.empty()) {
    return is_gguf(tokenizer) ? load_lm_tokenizer(tokenizer) : Tokenizer::load(tokenizer);
  }
  if (!is_gguf(source)) {
    // A model folder, or a weights file inside one.
    std::error_code ec;
    return Tokenizer::load(std::filesystem::is_directory(source, ec) ? source : source.parent_path());
  }
  const auto files = lm_tokenizer_files(source);
  if (files.empty()) {
    // llama.cpp's layout: the tokenizer is metadata (tokenizer.ggml.*), not files.
    const GgufFile file = GgufFile::open(source);
    TE_CHECK(gguf_has_tokenizer(file),
             "{}: the file embeds no tokenizer (no tinyemo.tokenizer_file.* keys, no llama.cpp tokenizer.ggml.* "
             "metadata): give one with --tokenizer",
             source.string());
    return tokenizer_from_gguf(file);
  }
  std::string pattern = (std::filesystem::temp_directory_path() / "tinyemo-tokenizer-XXXXXX").string();
  TE_CHECK(mkdtemp(pattern.data()) != nullptr, "cannot create a temporary folder for {}'s tokenizer",
           source.string());
  const std::filesystem::path dir = pattern;
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};
  for (const auto& [name, bytes] : files) write_file_atomic(dir / name, bytes);
  return Tokenizer::load(dir);
}

}  // namespace tinyemo::lm
