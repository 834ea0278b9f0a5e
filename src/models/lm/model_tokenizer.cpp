// Kept apart from gguf_model.cpp so that code that never tokenises does not
// pull in the tokenizer implementations.
#include <stdlib.h>

#include "io/file.h"
#include "models/lm/gguf_model.h"

namespace tinyemo {

namespace {
bool is_gguf(const std::filesystem::path& p) {
  return p.extension() == ".gguf" && !std::filesystem::is_directory(p);
}
}  // namespace

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
  TE_CHECK(!files.empty(),
           "{}: the file embeds no tokenizer (it was converted from a folder without one): give one with --tokenizer",
           source.string());
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

}  // namespace tinyemo
