// fuzz-link: tinyemo_lm
// CLIP's text cleaning and tokenizer (models/lm/clip_tokenizer.h) on any
// bytes: invalid UTF-8 is refused with an Error; otherwise html_unescape and
// the cleaning give valid UTF-8 with no leading, trailing or doubled spaces,
// and clip.tokenize gives start, ids inside the vocabulary, end, zero padding
// (id 0 is also a real token, "!", so padding is checked as what follows the end).
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"
#include "models/lm/bpe_pretokenizer.h"
#include "models/lm/clip_tokenizer.h"

namespace {

bool valid_utf8(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    char32_t cp = 0;
    const int n = tinyemo::lm::bpe::decode_utf8(s.substr(pos), cp);
    if (n == 0) return false;
    pos += static_cast<size_t>(n);
  }
  return true;
}

// A small vocabulary: the 512 byte symbols, a few merges, the special tokens.
const tinyemo::lm::ClipTokenizer& tokenizer() {
  static const std::unique_ptr<tinyemo::lm::ClipTokenizer> t = tinyemo::lm::ClipTokenizer::from_merges(
      "#version: 0.2\nt h\nth e</w>\na n\nan d</w>\ne r</w>\n", "fuzz merges", 512 + 5 + 2);
  return *t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string unescaped = tinyemo::lm::html_unescape(text);  // any bytes: never throws
  (void)unescaped;
  std::string cleaned;
  try {
    cleaned = tinyemo::lm::clip_clean_text(text);
  } catch (const tinyemo::Error&) {
    if (valid_utf8(text) && valid_utf8(tinyemo::lm::html_unescape(tinyemo::lm::html_unescape(text)))) __builtin_trap();
    return 0;
  }
  if (!valid_utf8(cleaned)) __builtin_trap();
  if (!cleaned.empty() && (cleaned.front() == ' ' || cleaned.back() == ' ')) __builtin_trap();
  if (cleaned.find("  ") != std::string::npos) __builtin_trap();
  const auto& t = tokenizer();
  const std::vector<int64_t> ids = t.tokenize(text, 16, /*truncate=*/true);
  if (ids.size() != 16 || ids[0] != t.bos_id()) __builtin_trap();
  size_t last = 0;  // the last non-padding id must be the end token ("<|endoftext|>" may also occur inside)
  for (size_t i = 1; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= t.vocab_size()) __builtin_trap();
    if (ids[i] != 0) last = i;
  }
  if (ids[last] != t.eos_id()) __builtin_trap();
  return 0;
}
