// Tokenizers of the LMs tinyemo runs: SentencePiece (`tokenizer.model`, the
// LLaMA-2 tokenizer of TinyLlama and OpenELM) and byte-level BPE
// (`tokenizer.json` or `vocab.json` + `merges.txt`, GPT-2 / Phi-2).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tinyemo::lm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // `path`: a tokenizer.json, a tokenizer.model, a folder with vocab.json +
  // merges.txt, or a model folder holding one of these. Errors name the file.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& path);

  // add_special: prepend BOS where the tokenizer's convention does (SentencePiece/LLaMA).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special) const = 0;
  // Text of the ids; special tokens (BOS/EOS/added special) are skipped when skip_special.
  // Byte-level BPE returns the exact bytes, so a generation prefix may end inside
  // a UTF-8 character; SentencePiece writes U+FFFD for an incomplete byte-fallback
  // sequence, as the library does. Ids that name no token throw tinyemo::Error.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when none
  virtual int32_t eos_id() const = 0;  // -1 when none
  // A token as the tokenizer file spells it ("Ġthe", "▁the", "<0xE2>",
  // "<|endoftext|>"); throws tinyemo::Error for ids that name no token.
  virtual std::string id_to_token(int32_t id) const = 0;
  // The id of a token spelled as in the file; -1 when there is none.
  virtual int32_t token_to_id(std::string_view token) const = 0;
};

}  // namespace tinyemo::lm
