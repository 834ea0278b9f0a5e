// Byte-level BPE (GPT-2, Phi-2, CodeGen): the Hugging Face `tokenizer.json`
// format and the `vocab.json` + `merges.txt` pair. Text is split out around
// added tokens (leftmost-longest, as HF does), pre-tokenized with GPT-2's
// regex (bpe_pretokenizer.h), each piece's bytes are merged by rank exactly
// as OpenAI's encoder.py does, and results are cached per piece.
#pragma once

#include <cstdint>
#include <filesystem>
#include <array>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "models/lm/tokenizer.h"

namespace tinyemo::lm {

// What a tokenizer file describes, before validation; tokens are in the
// files' byte-to-unicode spelling ("Ġthe" for " the").
struct BpeSpec {
  struct AddedToken {
    int32_t id = -1;
    std::string content;  // literal text (not byte-level spelled)
    bool special = false;
    bool lstrip = false, rstrip = false, single_word = false;
    bool normalized = false;  // matched after normalization (a second pass in Hugging Face)
  };
  std::string source;  // the file named in errors
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::vector<AddedToken> added_tokens;
  bool add_prefix_space = false;  // ByteLevel pre-tokenizer option
  bool ignore_merges = false;     // a piece that is a vocabulary token is taken whole
  std::vector<int32_t> prefix_ids, suffix_ids;  // what add_special puts around the text
  std::string bos_token, eos_token;             // contents; empty when none
};

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(const BpeSpec& spec);

  // `tokenizer.json` text; `source` names it in errors. Reads the BOS/EOS
  // tokens from a tokenizer_config.json beside `path` in load_tokenizer_json.
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(std::string_view json_text, const std::string& source);
  static std::unique_ptr<BpeTokenizer> load_tokenizer_json(const std::filesystem::path& path);
  // A folder with vocab.json + merges.txt (GPT-2's original release layout).
  static std::unique_ptr<BpeTokenizer> load_vocab_merges(const std::filesystem::path& folder);

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(token_bytes_.size()); }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  int32_t token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;

  // Pieces longer than this many bytes, and pieces met once the cache holds
  // `max_entries`, are merged without caching; 0 disables the cache.
  void set_cache_capacity(size_t max_entries);

  // The BPE of one pre-tokenized piece (raw bytes), without the cache.
  std::vector<int32_t> merge_piece(std::string_view piece) const;

  // What the tokenizer was built from, with the BOS/EOS it uses (for writing
  // it into another format, e.g. llama.cpp's GGUF metadata).
  BpeSpec spec() const;

  // Hash maps keyed by std::string that are searched with string_views.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  template <class V>
  using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

 private:
  struct MergeResult {
    int32_t rank;
    int32_t merged_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void encode_with_added(std::string_view text, bool normalized, std::vector<int32_t>& ids) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const;
  void merge_into(std::string_view piece, std::vector<int32_t>& ids) const;
  const BpeSpec::AddedToken* added_token_at(std::string_view text, size_t pos, bool normalized) const;

  std::string source_;
  BpeSpec spec_;
  std::vector<std::string> token_bytes_;  // id -> raw bytes (added tokens: their content)
  std::vector<uint8_t> is_special_;       // id -> skipped by decode(skip_special)
  std::vector<uint8_t> is_assigned_;      // id -> some token has it
  std::vector<std::string> token_spelling_;  // id -> the files' spelling (id_to_token)
  StringMap<int32_t> spelling_to_id_;
  StringMap<int32_t> bytes_to_id_;  // vocabulary tokens by raw bytes
  std::unordered_map<uint64_t, MergeResult> merges_;
  int32_t byte_id_[256];
  std::vector<BpeSpec::AddedToken> added_;  // longest first, for the leftmost-longest split
  std::vector<uint16_t> added_by_first_byte_[256];  // indices into added_
  bool add_prefix_space_ = false, ignore_merges_ = false;
  std::vector<int32_t> prefix_ids_, suffix_ids_;
  int32_t bos_id_ = -1, eos_id_ = -1;

  static constexpr size_t kMaxCachedPieceBytes = 64;
  size_t cache_capacity_ = 1 << 16;
  mutable std::shared_mutex cache_mutex_;
  mutable StringMap<std::vector<int32_t>> cache_;
};

// GPT-2's byte-to-unicode table: the printable character spelling each byte
// in vocab.json / tokenizer.json.
char32_t byte_to_unicode(uint8_t byte);

}  // namespace tinyemo::lm
