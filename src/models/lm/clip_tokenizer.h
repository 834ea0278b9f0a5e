// CLIP's text tokenizer (OpenAI's simple_tokenizer.py, which clip.tokenize
// and HF's CLIPTokenizer reproduce), from the merges file
// `bpe_simple_vocab_16e6.txt.gz` (gzip or plain text):
//  - cleaning: html.unescape twice, strip, every whitespace run to one space,
//    strip, then Python's str.lower() (full Unicode mapping, final sigma).
//    ftfy.fix_text, which OpenAI runs first, is not reproduced (it repairs
//    mojibake, curly quotes, ligatures...; text that needs none of that is
//    unaffected — see docs/clip.md);
//  - the regex <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
//    (whitespace between matches dropped);
//  - byte-level BPE per piece with `</w>` marking the piece's last symbol;
//    the vocabulary is the 256 byte symbols, the same with `</w>`, the first
//    vocab_size - 514 merges, then <|startoftext|> and <|endoftext|>.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "models/lm/tokenizer.h"

namespace tinyemo::lm {

// simple_tokenizer.py's whitespace_clean(basic_clean(text)).lower() without
// ftfy. Throws tinyemo::Error when `text` is not valid UTF-8.
std::string clip_clean_text(std::string_view text);
// Python's html.unescape (HTML5 named and numeric character references).
std::string html_unescape(std::string_view text);
// Python's str.lower() on UTF-8 text (valid UTF-8 required).
std::string unicode_lower(std::string_view text);

class ClipTokenizer final : public Tokenizer {
 public:
  // CLIP's released vocabulary size (the ViT and ResNet models all use it).
  static constexpr int32_t kDefaultVocabSize = 49408;

  // `path`: bpe_simple_vocab_16e6.txt.gz (or its uncompressed text);
  // `vocab_size`: the text tower's (its token embedding rows), which fixes
  // how many merges are used.
  static std::unique_ptr<ClipTokenizer> load(const std::filesystem::path& path,
                                             int32_t vocab_size = kDefaultVocabSize);
  // The merges file's text; `source` names it in errors.
  static std::unique_ptr<ClipTokenizer> from_merges(std::string_view text, const std::string& source,
                                                    int32_t vocab_size = kDefaultVocabSize);

  // add_special: <|startoftext|> ... <|endoftext|> around the text.
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  // OpenAI's decode: the symbols' bytes, `</w>` read as a space (invalid
  // UTF-8 replaced by U+FFFD).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(spelling_.size()); }
  int32_t bos_id() const override { return start_id_; }
  int32_t eos_id() const override { return end_id_; }
  int32_t token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;

  // clip.tokenize: start, the text's tokens, end, zero-padded to
  // `context_length`. A longer text is cut to context_length tokens with the
  // last one replaced by the end token when `truncate`
  // (clip.tokenize(truncate=True)); otherwise it is an error naming the text.
  std::vector<int64_t> tokenize(std::string_view text, int64_t context_length = 77, bool truncate = true) const;

  // The BPE of one piece of cleaned text (ids), without start/end.
  std::vector<int32_t> merge_piece(std::string_view piece) const;

 private:
  ClipTokenizer() = default;
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  std::string source_;
  std::vector<std::string> spelling_;                 // id -> token as the vocabulary spells it
  std::unordered_map<std::string, int32_t> encoder_;  // spelling -> id (the last id of a spelling, as Python's dict)
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t byte_id_[256] = {};      // a byte's symbol
  int32_t byte_end_id_[256] = {};  // the same symbol with </w>
  int32_t start_id_ = -1, end_id_ = -1;
};

}  // namespace tinyemo::lm
