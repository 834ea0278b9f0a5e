#include "models/lm/bpe_pretokenizer.h"

#include <algorithm>
#include <array>

namespace tinyemo::lm::bpe {
namespace {

struct CodePointRange {
  char32_t first, last;
};
#include "models/lm/bpe_unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodePointRange (&ranges)[N], char32_t cp) {
  const auto* it = std::upper_bound(std::begin(ranges), std::end(ranges), cp,
                                    [](char32_t c, const CodePointRange& r) { return c < r.first; });
  return it != std::begin(ranges) && cp <= (it - 1)->last;
}

// White_Space outside ASCII (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028,
// U+2029, U+202F, U+205F, U+3000): stable since Unicode 6.3, so listed here.
bool is_non_ascii_white_space(char32_t cp) {
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

CharClass classify_slow(char32_t cp) {
  if (is_non_ascii_white_space(cp)) return CharClass::kSpace;
  if (in_ranges(kLetterRanges, cp)) return CharClass::kLetter;
  if (in_ranges(kNumberRanges, cp)) return CharClass::kNumber;
  return CharClass::kOther;
}

const std::array<CharClass, 128> kAsciiClass = [] {
  std::array<CharClass, 128> t{};
  for (char32_t c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      t[c] = CharClass::kLetter;
    } else if (c >= '0' && c <= '9') {
      t[c] = CharClass::kNumber;
    } else if (c == ' ' || (c >= '\t' && c <= '\r')) {
      t[c] = CharClass::kSpace;
    } else {
      t[c] = CharClass::kOther;
    }
  }
  return t;
}();

// One decoded character: where it starts in the text and its class.
struct Char {
  uint32_t offset;
  CharClass cls;
  bool is_space_char;   // U+0020 exactly: the optional " ?" of the regex
  bool is_apostrophe;   // U+0027
  char ascii;           // the ASCII letter after an apostrophe, else 0
};

}  // namespace

int decode_utf8(std::string_view s, char32_t& cp) {
  if (s.empty()) return 0;
  const auto b0 = static_cast<uint8_t>(s[0]);
  int len;
  char32_t min;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < static_cast<size_t>(len)) return 0;
  for (int i = 1; i < len; ++i) {
    const auto b = static_cast<uint8_t>(s[i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

void decode_chars(std::string_view text, std::vector<Char>& chars) {
  chars.clear();
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp;
    int len = decode_utf8(text.substr(pos), cp);
    Char c{static_cast<uint32_t>(pos), CharClass::kOther, false, false, 0};
    if (len == 0) {
      len = 1;  // a stray byte: kOther, kept as is
    } else {
      c.cls = cp < 128 ? kAsciiClass[cp] : classify_slow(cp);
      c.is_space_char = cp == ' ';
      c.is_apostrophe = cp == '\'';
      if (cp < 128 && c.cls == CharClass::kLetter) c.ascii = static_cast<char>(cp);
    }
    chars.push_back(c);
    pos += len;
  }
}

// Length in characters of the contraction ('s 't 're 've 'm 'll 'd) at i, or 0.
size_t contraction_length(const std::vector<Char>& chars, size_t i) {
  if (!chars[i].is_apostrophe || i + 1 >= chars.size()) return 0;
  const char a = chars[i + 1].ascii;
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= chars.size()) return 0;
  const char b = chars[i + 2].ascii;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// Length of the regex match starting at character i.
size_t match_length(const std::vector<Char>& chars, size_t i) {
  const size_t n = chars.size();
  if (size_t len = contraction_length(chars, i)) return len;
  // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": a run of one class, after an optional space.
  size_t start = i;
  if (chars[i].is_space_char && i + 1 < n && chars[i + 1].cls != CharClass::kSpace) start = i + 1;
  const CharClass run_class = chars[start].cls;
  if (run_class != CharClass::kSpace) {
    size_t end = start + 1;
    while (end < n && chars[end].cls == run_class) ++end;
    return end - i;
  }
  // "\s+(?!\S)": the whitespace run less its last character when a
  // non-space follows; "\s+" when that leaves nothing.
  size_t end = i + 1;
  while (end < n && chars[end].cls == CharClass::kSpace) ++end;
  const size_t run = end - i;
  return (end == n || run == 1) ? run : run - 1;
}

}  // namespace

CharClass char_class(char32_t cp) { return cp < 128 ? kAsciiClass[cp] : classify_slow(cp); }

const char* unicode_version() { return kUnicodeVersion; }

void split_gpt2(std::string_view text, std::vector<std::string_view>& pieces) {
  thread_local std::vector<Char> chars;
  decode_chars(text, chars);
  const size_t n = chars.size();
  for (size_t i = 0; i < n;) {
    const size_t len = match_length(chars, i);
    const size_t begin = chars[i].offset;
    const size_t end = i + len < n ? chars[i + len].offset : text.size();
    pieces.push_back(text.substr(begin, end - begin));
    i += len;
  }
}

}  // namespace tinyemo::lm::bpe
