#include "models/lm/clip_tokenizer.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/file.h"
#include "models/lm/bpe_pretokenizer.h"
#include "models/lm/bpe_tokenizer.h"

namespace tinyemo::lm {

namespace {

struct LowerEntry {
  char32_t cp;
  const char* lower;
};
struct CasedRange {
  char32_t first, last;
};
struct EntityEntry {
  const char* name;
  const char* value;
};
struct CharrefEntry {
  char32_t number;
  const char* value;
};
#include "models/lm/clip_text_tables.inc"

constexpr const char* kStartToken = "<|startoftext|>";
constexpr const char* kEndToken = "<|endoftext|>";
constexpr int32_t kByteSymbols = 256;
// The released merges file is 3.2 MB (262k merges); far beyond that is not one.
constexpr size_t kMaxMergesBytes = size_t{16} << 20;

// Decoded code points of valid UTF-8 text; `what` names it in the error.
std::u32string decode_all(std::string_view text, const char* what) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp = 0;
    const int len = bpe::decode_utf8(text.substr(pos), cp);
    TE_CHECK(len > 0, "{}: invalid UTF-8 at byte {} of \"{}\"", what, pos, text);
    out.push_back(cp);
    pos += static_cast<size_t>(len);
  }
  return out;
}

std::string encode_all(const std::u32string& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t cp : cps) bpe::append_utf8(cp, out);
  return out;
}

// Python's str.isspace(): White_Space plus U+001C..U+001F (which `regex`'s \s lacks).
bool is_python_space(char32_t cp) {
  return bpe::char_class(cp) == bpe::CharClass::kSpace || (cp >= 0x1C && cp <= 0x1F);
}

bool is_cased(char32_t cp) {
  const auto* it = std::upper_bound(std::begin(kCasedRanges), std::end(kCasedRanges), cp,
                                    [](char32_t c, const CasedRange& r) { return c < r.first; });
  return it != std::begin(kCasedRanges) && cp <= (it - 1)->last;
}

const char* lower_of(char32_t cp) {
  const auto* it = std::lower_bound(std::begin(kLowerTable), std::end(kLowerTable), cp,
                                    [](const LowerEntry& e, char32_t c) { return e.cp < c; });
  return it != std::end(kLowerTable) && it->cp == cp ? it->lower : nullptr;
}

const char* entity_value(std::string_view name) {
  const auto* it = std::lower_bound(std::begin(kHtml5Entities), std::end(kHtml5Entities), name,
                                    [](const EntityEntry& e, std::string_view n) { return std::string_view(e.name) < n; });
  return it != std::end(kHtml5Entities) && std::string_view(it->name) == name ? it->value : nullptr;
}

bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }
bool is_ascii_hex(char c) { return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A numeric reference's replacement, as html._replace_charref.
std::string numeric_charref(std::string_view digits, int base) {
  uint64_t num = 0;
  for (char c : digits) {
    const int d = is_ascii_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
    num = std::min<uint64_t>(num * static_cast<uint64_t>(base) + static_cast<uint64_t>(d), 0x7FFFFFFF);
  }
  for (const CharrefEntry& e : kInvalidCharrefs) {
    if (e.number == num) return e.value;
  }
  std::string out;
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    bpe::append_utf8(0xFFFD, out);
    return out;
  }
  if (std::find(std::begin(kInvalidCodepoints), std::end(kInvalidCodepoints), static_cast<char32_t>(num)) !=
      std::end(kInvalidCodepoints)) {
    return out;
  }
  bpe::append_utf8(static_cast<char32_t>(num), out);
  return out;
}

// gunzip with the output bounded (a merges file is a few MB).
std::string gunzip(const std::string& data, const std::string& where) {
  z_stream zs{};
  TE_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "{}: cannot start zlib", where);
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(std::min<size_t>(data.size(), std::numeric_limits<uInt>::max()));
  int rc = Z_OK;
  char chunk[1 << 16];
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    out.append(chunk, sizeof(chunk) - zs.avail_out);
    if (out.size() > kMaxMergesBytes) {
      inflateEnd(&zs);
      fail("{}: inflates to more than {} MB; not a CLIP merges file", where, kMaxMergesBytes >> 20);
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) break;  // input ended before the stream did
  }
  inflateEnd(&zs);
  TE_CHECK(rc == Z_STREAM_END, "{}: corrupt or truncated gzip data ({})", where, zs.msg ? zs.msg : "unexpected end");
  return out;
}

}  // namespace

std::string html_unescape(std::string_view s) {
  if (s.find('&') == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    // &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
    const size_t start = i + 1;
    if (start < s.size() && s[start] == '#') {
      const bool hex = start + 1 < s.size() && (s[start + 1] == 'x' || s[start + 1] == 'X');
      const size_t digits = start + (hex ? 2 : 1);
      size_t end = digits;
      while (end < s.size() && (hex ? is_ascii_hex(s[end]) : is_ascii_digit(s[end]))) ++end;
      if (end == digits) {  // no digits: not a reference
        out.push_back(s[i++]);
        continue;
      }
      out += numeric_charref(s.substr(digits, end - digits), hex ? 16 : 10);
      i = end < s.size() && s[end] == ';' ? end + 1 : end;
      continue;
    }
    size_t end = start;
    while (end < s.size() && end - start < 32 && std::strchr("\t\n\f <&#;", s[end]) == nullptr) ++end;
    if (end == start) {
      out.push_back(s[i++]);
      continue;
    }
    if (end < s.size() && s[end] == ';') ++end;
    const std::string_view name = s.substr(start, end - start);
    if (const char* value = entity_value(name)) {
      out += value;
    } else {
      // The longest known prefix (of at least 2 characters) wins; the rest stays.
      bool found = false;
      for (size_t len = name.size() - 1; len > 1; --len) {
        if (const char* v = entity_value(name.substr(0, len))) {
          out += v;
          out += name.substr(len);
          found = true;
          break;
        }
      }
      if (!found) {
        out.push_back('&');
        out += name;
      }
    }
    i = end;
  }
  return out;
}

std::string unicode_lower(std::string_view text) {
  const std::u32string cps = decode_all(text, "text");
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t cp = cps[i];
    if (cp < 0x80) {
      out.push_back(cp >= 'A' && cp <= 'Z' ? static_cast<char>(cp + 32) : static_cast<char>(cp));
      continue;
    }
    if (cp == 0x3A3) {
      // Python's Final_Sigma: a capital sigma after a cased letter and not
      // before one lowers to ς, else σ. (Case-ignorable characters between
      // them, which Python skips, are not skipped here.)
      const bool after_cased = i > 0 && is_cased(cps[i - 1]);
      const bool before_cased = i + 1 < cps.size() && is_cased(cps[i + 1]);
      bpe::append_utf8(after_cased && !before_cased ? 0x3C2 : 0x3C3, out);
      continue;
    }
    if (const char* lower = lower_of(cp)) {
      out += lower;
    } else {
      bpe::append_utf8(cp, out);
    }
  }
  return out;
}

std::string clip_clean_text(std::string_view text) {
  const std::string unescaped = html_unescape(html_unescape(text));
  const std::u32string cps = decode_all(unescaped, "text");
  // strip(), collapse \s+ to one space, strip() again: every maximal
  // whitespace run becomes one space and none is left at either end.
  std::u32string cleaned;
  cleaned.reserve(cps.size());
  size_t begin = 0, end = cps.size();
  while (begin < end && is_python_space(cps[begin])) ++begin;
  while (end > begin && is_python_space(cps[end - 1])) --end;
  bool in_space = false;
  for (size_t i = begin; i < end; ++i) {
    if (bpe::char_class(cps[i]) == bpe::CharClass::kSpace) {
      if (!in_space) cleaned.push_back(U' ');
      in_space = true;
    } else {
      cleaned.push_back(cps[i]);
      in_space = false;
    }
  }
  while (!cleaned.empty() && is_python_space(cleaned.back())) cleaned.pop_back();
  size_t lead = 0;
  while (lead < cleaned.size() && is_python_space(cleaned[lead])) ++lead;
  return unicode_lower(encode_all(cleaned.substr(lead)));
}

std::unique_ptr<ClipTokenizer> ClipTokenizer::load(const std::filesystem::path& path, int32_t vocab_size) {
  const std::string bytes = read_file(path);
  const bool gz = bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x1F && static_cast<uint8_t>(bytes[1]) == 0x8B;
  TE_CHECK(gz || bytes.size() <= kMaxMergesBytes, "{}: larger than {} MB; not a CLIP merges file", path.string(),
           kMaxMergesBytes >> 20);
  return from_merges(gz ? gunzip(bytes, path.string()) : bytes, path.string(), vocab_size);
}

std::unique_ptr<ClipTokenizer> ClipTokenizer::from_merges(std::string_view text, const std::string& source,
                                                          int32_t vocab_size) {
  const int32_t merge_count = vocab_size - 2 * kByteSymbols - 2;
  TE_CHECK(merge_count >= 0, "{}: a vocabulary of {} tokens cannot hold CLIP's 512 byte symbols and 2 special tokens",
           source, vocab_size);
  std::unique_ptr<ClipTokenizer> t(new ClipTokenizer());
  t->source_ = source;
  // bytes_to_unicode()'s order: the printable bytes, then the others ascending.
  std::vector<uint8_t> byte_order;
  for (int b = 0; b < 256; ++b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
      byte_order.push_back(static_cast<uint8_t>(b));
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
      byte_order.push_back(static_cast<uint8_t>(b));
    }
  }
  std::vector<std::string>& spell = t->spelling_;
  spell.reserve(static_cast<size_t>(vocab_size));
  for (uint8_t b : byte_order) {
    std::string s;
    bpe::append_utf8(byte_to_unicode(b), s);
    spell.push_back(s);
  }
  for (int i = 0; i < kByteSymbols; ++i) spell.push_back(spell[static_cast<size_t>(i)] + "</w>");

  // merges = lines[1 : merge_count + 1] (line 0 is "#version: ..."), each "a b".
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(static_cast<size_t>(merge_count));
  size_t pos = text.find('\n');
  TE_CHECK(pos != std::string_view::npos || merge_count == 0, "{}: no merges after the first line", source);
  int64_t line_no = 1;
  while (static_cast<int32_t>(merges.size()) < merge_count) {
    TE_CHECK(pos != std::string_view::npos && pos + 1 <= text.size(),
             "{}: holds {} merges, but a {}-token vocabulary needs {}", source, merges.size(), vocab_size, merge_count);
    const size_t begin = pos + 1;
    size_t end = text.find('\n', begin);
    const std::string_view line = text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
    ++line_no;
    TE_CHECK(!(line.empty() && end == std::string_view::npos), "{}: holds {} merges, but a {}-token vocabulary needs {}",
             source, merges.size(), vocab_size, merge_count);
    const size_t space = line.find(' ');
    TE_CHECK(space != std::string_view::npos && space > 0 && space + 1 < line.size() &&
                 line.find(' ', space + 1) == std::string_view::npos,
             "{}: line {} is not a merge \"a b\": \"{}\"", source, line_no, line);
    merges.emplace_back(std::string(line.substr(0, space)), std::string(line.substr(space + 1)));
    spell.push_back(merges.back().first + merges.back().second);
    pos = end;
  }
  spell.emplace_back(kStartToken);
  spell.emplace_back(kEndToken);
  // Python's {token: index}: a spelling listed twice keeps its last index.
  for (size_t i = 0; i < spell.size(); ++i) t->encoder_[spell[i]] = static_cast<int32_t>(i);
  for (int32_t rank = 0; rank < merge_count; ++rank) {
    const auto& [a, b] = merges[static_cast<size_t>(rank)];
    const auto ia = t->encoder_.find(a), ib = t->encoder_.find(b);
    TE_CHECK(ia != t->encoder_.end() && ib != t->encoder_.end(),
             "{}: merge {} (\"{} {}\") joins a symbol no earlier line makes", source, rank + 1, a, b);
    t->merges_.emplace(pair_key(ia->second, ib->second), Merge{rank, t->encoder_.at(a + b)});
  }
  for (int i = 0; i < kByteSymbols; ++i) {
    const uint8_t b = byte_order[static_cast<size_t>(i)];
    t->byte_id_[b] = t->encoder_.at(spell[static_cast<size_t>(i)]);
    t->byte_end_id_[b] = t->encoder_.at(spell[static_cast<size_t>(i + kByteSymbols)]);
  }
  t->start_id_ = t->encoder_.at(kStartToken);
  t->end_id_ = t->encoder_.at(kEndToken);
  return t;
}

std::vector<int32_t> ClipTokenizer::merge_piece(std::string_view piece) const {
  std::vector<int32_t> word;
  if (piece.empty()) return word;
  word.reserve(piece.size());
  for (size_t i = 0; i + 1 < piece.size(); ++i) word.push_back(byte_id_[static_cast<uint8_t>(piece[i])]);
  word.push_back(byte_end_id_[static_cast<uint8_t>(piece.back())]);
  // simple_tokenizer.bpe: merge every occurrence of the lowest-ranked pair,
  // left to right, until no pair has a rank.
  std::vector<int32_t> next;
  while (word.size() > 1) {
    int32_t best_rank = std::numeric_limits<int32_t>::max();
    int32_t first = -1, second = -1, merged = -1;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      const auto it = merges_.find(pair_key(word[i], word[i + 1]));
      if (it != merges_.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        first = word[i];
        second = word[i + 1];
        merged = it->second.merged;
      }
    }
    if (merged < 0) break;
    next.clear();
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        next.push_back(merged);
        i += 2;
      } else {
        next.push_back(word[i++]);
      }
    }
    word.swap(next);
  }
  return word;
}

std::vector<int32_t> ClipTokenizer::encode(std::string_view text, bool add_special) const {
  const std::string cleaned = clip_clean_text(text);
  std::vector<int32_t> ids;
  if (add_special) ids.push_back(start_id_);
  const std::string_view s = cleaned;
  const std::string_view start_token = kStartToken, end_token = kEndToken;
  for (size_t pos = 0; pos < s.size();) {
    const std::string_view rest = s.substr(pos);
    if (rest.starts_with(start_token) || rest.starts_with(end_token)) {
      const bool start = rest.starts_with(start_token);
      ids.push_back(start ? start_id_ : end_id_);
      pos += start ? start_token.size() : end_token.size();
      continue;
    }
    char32_t cp = 0;
    int len = bpe::decode_utf8(rest, cp);  // the cleaned text is valid UTF-8
    const bpe::CharClass cls = bpe::char_class(cp);
    if (cls == bpe::CharClass::kSpace) {  // between matches: dropped
      pos += static_cast<size_t>(len);
      continue;
    }
    size_t match = 0;
    if (cp == '\'' && rest.size() >= 2) {
      for (std::string_view c : {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}) {
        if (rest.starts_with(c)) {
          match = c.size();
          break;
        }
      }
    }
    if (match == 0) {
      if (cls == bpe::CharClass::kNumber) {
        match = static_cast<size_t>(len);  // one digit per piece
      } else {
        // \p{L}+ or [^\s\p{L}\p{N}]+: the longest run of this class (greedy, so a
        // "<|endoftext|>" inside a run of punctuation is not a special token, as in Python).
        match = static_cast<size_t>(len);
        while (match < rest.size()) {
          char32_t next = 0;
          const int n = bpe::decode_utf8(rest.substr(match), next);
          if (bpe::char_class(next) != cls) break;
          match += static_cast<size_t>(n);
        }
      }
    }
    const std::vector<int32_t> piece = merge_piece(rest.substr(0, match));
    ids.insert(ids.end(), piece.begin(), piece.end());
    pos += match;
  }
  if (add_special) ids.push_back(end_id_);
  return ids;
}

std::vector<int64_t> ClipTokenizer::tokenize(std::string_view text, int64_t context_length, bool truncate) const {
  TE_CHECK(context_length >= 2, "context length {} cannot hold the start and end tokens", context_length);
  const std::vector<int32_t> ids = encode(text, /*add_special=*/true);
  std::vector<int64_t> out(static_cast<size_t>(context_length), 0);
  if (static_cast<int64_t>(ids.size()) > context_length) {
    TE_CHECK(truncate, "input \"{}\" is too long for context length {} ({} tokens)", text, context_length, ids.size());
    std::copy_n(ids.begin(), context_length, out.begin());
    out.back() = end_id_;
    return out;
  }
  std::copy(ids.begin(), ids.end(), out.begin());
  return out;
}

std::string ClipTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string symbols;
  for (int32_t id : ids) {
    TE_CHECK(id >= 0 && id < vocab_size(), "{}: token id {} out of range [0, {})", source_, id, vocab_size());
    if (skip_special && (id == start_id_ || id == end_id_)) continue;
    symbols += spelling_[static_cast<size_t>(id)];
  }
  // Each symbol character back to its byte; "</w>" ends a word.
  static const auto unicode_to_byte = [] {
    std::unordered_map<char32_t, uint8_t> m;
    for (int b = 0; b < 256; ++b) m[byte_to_unicode(static_cast<uint8_t>(b))] = static_cast<uint8_t>(b);
    return m;
  }();
  std::string bytes;
  const std::string_view s = symbols;
  for (size_t pos = 0; pos < s.size();) {
    if (s.substr(pos).starts_with("</w>")) {
      bytes.push_back(' ');
      pos += 4;
      continue;
    }
    if (s.substr(pos).starts_with(kStartToken) || s.substr(pos).starts_with(kEndToken)) {
      const size_t n = s.substr(pos).starts_with(kStartToken) ? std::strlen(kStartToken) : std::strlen(kEndToken);
      bytes.append(s.substr(pos, n));
      pos += n;
      continue;
    }
    char32_t cp = 0;
    const int len = bpe::decode_utf8(s.substr(pos), cp);
    const auto it = unicode_to_byte.find(cp);
    bytes.push_back(it != unicode_to_byte.end() ? static_cast<char>(it->second) : '?');
    pos += static_cast<size_t>(std::max(len, 1));
  }
  // errors="replace": invalid sequences become U+FFFD.
  std::string out;
  for (size_t pos = 0; pos < bytes.size();) {
    char32_t cp = 0;
    const int len = bpe::decode_utf8(std::string_view(bytes).substr(pos), cp);
    if (len == 0) {
      bpe::append_utf8(0xFFFD, out);
      ++pos;
    } else {
      out.append(bytes, pos, static_cast<size_t>(len));
      pos += static_cast<size_t>(len);
    }
  }
  return out;
}

int32_t ClipTokenizer::token_to_id(std::string_view token) const {
  const auto it = encoder_.find(std::string(token));
  return it == encoder_.end() ? -1 : it->second;
}

std::string ClipTokenizer::id_to_token(int32_t id) const {
  TE_CHECK(id >= 0 && id < vocab_size(), "{}: token id {} out of range [0, {})", source_, id, vocab_size());
  return spelling_[static_cast<size_t>(id)];
}

}  // namespace tinyemo::lm
