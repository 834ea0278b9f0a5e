// GPT-2's pre-tokenizer: the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// evaluated exactly (ordered alternation, greedy runs, the backtracking of
// \s+(?!\S)) over Unicode code points, so byte-level BPE sees the same pieces
// as OpenAI's encoder.py and Hugging Face's ByteLevel pre-tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tinyemo::lm::bpe {

enum class CharClass : uint8_t {
  kLetter,  // \p{L}: general category L*
  kNumber,  // \p{N}: general category N*
  kSpace,   // \s: the Unicode White_Space property (what the `regex` module and Oniguruma match)
  kOther,   // everything else, including bytes that are not valid UTF-8
};

CharClass char_class(char32_t cp);

// Length (1-4) of the valid UTF-8 sequence at the start of `s`, with its code
// point in `cp`; 0 when `s` is empty or starts with an invalid, overlong or
// surrogate sequence.
int decode_utf8(std::string_view s, char32_t& cp);
void append_utf8(char32_t cp, std::string& out);
const char* unicode_version();  // of the generated category tables

// Appends to `pieces` the consecutive matches of GPT-2's regex over `text`
// (UTF-8). Invalid UTF-8 bytes are kept, one kOther character each, so the
// pieces always cover `text` exactly.
void split_gpt2(std::string_view text, std::vector<std::string_view>& pieces);

}  // namespace tinyemo::lm::bpe
