#include "models/lm/bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/file.h"
#include "io/json.h"
#include "models/lm/bpe_pretokenizer.h"

namespace tinyemo::lm {
namespace {

// Ids above this are refused: no real vocabulary comes close (the largest are
// ~256k), and a hostile file must not make us allocate per-id tables of GBs.
constexpr int64_t kMaxTokenId = (1 << 21) - 1;

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes spell themselves, the
// others are shifted to U+0100 upwards in byte order.
const std::array<char32_t, 256> kByteToUnicode = [] {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return table;
}();

// The inverse of kByteToUnicode for code points < 324; -1 for the others.
const std::array<int16_t, 324> kUnicodeToByte = [] {
  std::array<int16_t, 324> table;
  table.fill(-1);
  for (int b = 0; b < 256; ++b) table[kByteToUnicode[b]] = static_cast<int16_t>(b);
  return table;
}();

// The raw bytes a byte-level spelling stands for; false when some character
// of it spells no byte (such tokens can only come from added tokens).
bool spelling_to_bytes(std::string_view spelling, std::string& bytes) {
  bytes.clear();
  for (size_t pos = 0; pos < spelling.size();) {
    char32_t cp;
    const int len = bpe::decode_utf8(spelling.substr(pos), cp);
    if (len == 0 || cp >= kUnicodeToByte.size() || kUnicodeToByte[cp] < 0) return false;
    bytes.push_back(static_cast<char>(kUnicodeToByte[cp]));
    pos += len;
  }
  return true;
}

std::string byte_spelling(uint8_t byte) {
  std::string s;
  bpe::append_utf8(kByteToUnicode[byte], s);
  return s;
}

bool is_white_space(char32_t cp) { return bpe::char_class(cp) == bpe::CharClass::kSpace; }
bool is_word_char(char32_t cp) {
  const auto c = bpe::char_class(cp);
  return c == bpe::CharClass::kLetter || c == bpe::CharClass::kNumber || cp == '_';
}

// The character ending just before `pos` (its start in `start`); false at the text start.
bool char_before(std::string_view text, size_t pos, char32_t& cp, size_t& start) {
  for (size_t back = 1; back <= 4 && back <= pos; ++back) {
    if (bpe::decode_utf8(text.substr(pos - back, back), cp) == static_cast<int>(back)) {
      start = pos - back;
      return true;
    }
  }
  if (pos == 0) return false;
  cp = 0xFFFD;  // a stray byte
  start = pos - 1;
  return true;
}

nlohmann::json parse_json(std::string_view text, const std::string& source) {
  return parse_json_text(text, source);
}

const nlohmann::json& field(const nlohmann::json& object, const char* key, const std::string& where) {
  TE_CHECK(object.is_object(), "{}: expected a JSON object", where);
  auto it = object.find(key);
  TE_CHECK(it != object.end(), "{}: missing field \"{}\"", where, key);
  return *it;
}

template <class T>
T field_or(const nlohmann::json& object, const char* key, T fallback, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: field \"{}\" has the wrong type ({})", where, key, it->type_name());
  }
}

// `where` makes the error message; it is called only on failure, so that
// reading 50k vocabulary entries builds no strings.
template <class Where>
int32_t token_id_at(const nlohmann::json& value, Where&& where) {
  TE_CHECK(value.is_number_integer(), "{}: token id must be an integer, not {}", where(), value.dump());
  const int64_t id = value.get<int64_t>();
  TE_CHECK(id >= 0 && id <= kMaxTokenId, "{}: token id {} out of range [0, {}]", where(), id, kMaxTokenId);
  return static_cast<int32_t>(id);
}
int32_t token_id(const nlohmann::json& value, const std::string& where) {
  return token_id_at(value, [&] { return where; });
}

std::string token_string(const nlohmann::json& value, const std::string& where) {
  TE_CHECK(value.is_string(), "{}: expected a string, not {}", where, value.type_name());
  return value.get<std::string>();
}

void read_vocab(const nlohmann::json& vocab, const std::string& where, BpeSpec& spec) {
  TE_CHECK(vocab.is_object(), "{}: the vocabulary must be a JSON object of token -> id", where);
  spec.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    spec.vocab.emplace_back(it.key(), token_id_at(it.value(), [&] { return where + ": \"" + it.key() + "\""; }));
  }
}

// One merge rule: "a b" (older files, merges.txt) or ["a", "b"] (newer
// tokenizer.json); where() names it in the error.
template <class Where>
void add_merge(std::string_view rule, Where&& where, BpeSpec& spec) {
  const size_t space = rule.find(' ');
  TE_CHECK(space != std::string_view::npos && space > 0 && space + 1 < rule.size() &&
               rule.find(' ', space + 1) == std::string_view::npos,
           "{}: merge \"{}\" is not two tokens separated by one space", where(), rule);
  spec.merges.emplace_back(rule.substr(0, space), rule.substr(space + 1));
}

void read_merges_json(const nlohmann::json& merges, const std::string& where, BpeSpec& spec) {
  TE_CHECK(merges.is_array(), "{}: merges must be an array", where);
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& m = merges[i];
    auto at = [&] { return fmt::format("{}[{}]", where, i); };
    if (m.is_string()) {
      add_merge(m.get_ref<const std::string&>(), at, spec);
    } else {
      TE_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
               "{}: a merge is \"a b\" or [\"a\", \"b\"], not {}", at(), m.dump());
      spec.merges.emplace_back(m[0].get_ref<const std::string&>(), m[1].get_ref<const std::string&>());
    }
  }
}

// The tokens a post-processor puts around a single sequence.
void read_post_processor(const nlohmann::json& pp, const std::string& where, BpeSpec& spec) {
  if (pp.is_null()) return;
  const std::string type = token_string(field(pp, "type", where), where + ".type");
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    const auto& list = field(pp, "processors", where);
    TE_CHECK(list.is_array(), "{}.processors: expected an array", where);
    for (size_t i = 0; i < list.size(); ++i) read_post_processor(list[i], fmt::format("{}.processors[{}]", where, i), spec);
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    for (const char* key : {"cls", "sep"}) {
      const auto& pair = field(pp, key, where);
      TE_CHECK(pair.is_array() && pair.size() == 2, "{}.{}: expected [token, id]", where, key);
      (std::string(key) == "cls" ? spec.prefix_ids : spec.suffix_ids).push_back(token_id(pair[1], where + "." + key));
    }
    return;
  }
  TE_CHECK(type == "TemplateProcessing", "{}: post-processor \"{}\" is not supported", where, type);
  const auto& single = field(pp, "single", where);
  const auto& specials = field(pp, "special_tokens", where);
  TE_CHECK(single.is_array(), "{}.single: expected an array", where);
  bool after_sequence = false;
  for (const auto& piece : single) {
    if (piece.contains("Sequence")) {
      after_sequence = true;
      continue;
    }
    const auto& special = field(piece, "SpecialToken", where + ".single");
    const std::string name = token_string(field(special, "id", where + ".single"), where + ".single");
    const auto& ids = field(field(specials, name.c_str(), where + ".special_tokens"), "ids",
                            where + ".special_tokens." + name);
    TE_CHECK(ids.is_array(), "{}.special_tokens.{}.ids: expected an array", where, name);
    for (const auto& id : ids) (after_sequence ? spec.suffix_ids : spec.prefix_ids).push_back(token_id(id, where));
  }
}

// bos_token / eos_token of a tokenizer_config.json: "text" or {"content": "text"}.
std::string config_token(const nlohmann::json& config, const char* key, const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return {};
  if (it->is_object()) return token_string(field(*it, "content", where + "." + key), where + "." + key);
  return token_string(*it, where + "." + key);
}

}  // namespace

char32_t byte_to_unicode(uint8_t byte) { return kByteToUnicode[byte]; }

BpeTokenizer::BpeTokenizer(const BpeSpec& spec)
    : source_(spec.source),
      spec_(spec),
      add_prefix_space_(spec.add_prefix_space),
      ignore_merges_(spec.ignore_merges),
      prefix_ids_(spec.prefix_ids),
      suffix_ids_(spec.suffix_ids) {
  int32_t size = 0;
  auto grow = [&](int32_t id) {
    TE_CHECK(id >= 0 && id <= kMaxTokenId, "{}: token id {} out of range [0, {}]", source_, id, kMaxTokenId);
    size = std::max(size, id + 1);
  };
  for (const auto& entry : spec.vocab) grow(entry.second);
  for (const auto& t : spec.added_tokens) grow(t.id);
  token_bytes_.resize(size);
  token_spelling_.resize(size);
  is_special_.assign(size, 0);
  is_assigned_.assign(size, 0);

  spelling_to_id_.reserve(spec.vocab.size() + spec.added_tokens.size());
  bytes_to_id_.reserve(spec.vocab.size());
  std::string bytes;
  for (const auto& [spelling, id] : spec.vocab) {
    TE_CHECK(!is_assigned_[id], "{}: tokens \"{}\" and \"{}\" share id {}", source_, token_spelling_[id], spelling, id);
    is_assigned_[id] = 1;
    token_spelling_[id] = spelling;
    spelling_to_id_.emplace(spelling, id);
    if (spelling_to_bytes(spelling, bytes)) {
      token_bytes_[id] = bytes;
      bytes_to_id_.emplace(bytes, id);
    } else {
      token_bytes_[id] = spelling;
    }
  }
  for (int b = 0; b < 256; ++b) {
    auto it = bytes_to_id_.find(std::string(1, static_cast<char>(b)));
    TE_CHECK(it != bytes_to_id_.end(), "{}: the byte-level vocabulary has no token for byte 0x{:02X} (\"{}\")", source_,
             b, byte_spelling(static_cast<uint8_t>(b)));
    byte_id_[b] = it->second;
  }

  merges_.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const std::string& a = spec.merges[rank].first;
    const std::string& b = spec.merges[rank].second;
    auto lookup = [&](const std::string& token) {
      auto it = spelling_to_id_.find(token);
      TE_CHECK(it != spelling_to_id_.end(), "{}: merge {} (\"{} {}\") names \"{}\", which is not in the vocabulary",
               source_, rank, a, b, token);
      return it->second;
    };
    const int32_t ia = lookup(a), ib = lookup(b), merged = lookup(a + b);
    // As in OpenAI's dict(zip(merges, range(...))): a repeated rule keeps its last rank.
    merges_[pair_key(ia, ib)] = MergeResult{static_cast<int32_t>(rank), merged};
  }

  for (const auto& t : spec.added_tokens) {
    TE_CHECK(!t.content.empty(), "{}: added token {} has empty content", source_, t.id);
    if (is_assigned_[t.id]) {
      // An added token may repeat a vocabulary entry (GPT-2's <|endoftext|>), never replace one.
      TE_CHECK(token_bytes_[t.id] == t.content, "{}: added token \"{}\" has id {}, which is already \"{}\"", source_,
               t.content, t.id, token_spelling_[t.id]);
      TE_CHECK(std::none_of(added_.begin(), added_.end(), [&](const auto& o) { return o.id == t.id; }),
               "{}: added token id {} appears twice", source_, t.id);
    } else {
      is_assigned_[t.id] = 1;
      token_spelling_[t.id] = t.content;
      token_bytes_[t.id] = t.content;
      spelling_to_id_.emplace(t.content, t.id);
    }
    is_special_[t.id] = t.special;
    added_.push_back(t);
  }
  TE_CHECK(added_.size() <= UINT16_MAX, "{}: too many added tokens ({})", source_, added_.size());
  // Longest first, so the first match at a position is the longest (leftmost-longest split).
  std::stable_sort(added_.begin(), added_.end(),
                   [](const auto& x, const auto& y) { return x.content.size() > y.content.size(); });
  for (size_t i = 0; i < added_.size(); ++i) {
    added_by_first_byte_[static_cast<uint8_t>(added_[i].content[0])].push_back(static_cast<uint16_t>(i));
  }

  for (int32_t id : prefix_ids_) TE_CHECK(id < size && is_assigned_[id], "{}: post-processor names unknown id {}", source_, id);
  for (int32_t id : suffix_ids_) TE_CHECK(id < size && is_assigned_[id], "{}: post-processor names unknown id {}", source_, id);
  auto find_named = [&](const std::string& content, const char* what) {
    if (content.empty()) return -1;
    const int32_t id = token_to_id(content);
    TE_CHECK(id >= 0, "{}: {} token \"{}\" is not in the vocabulary", source_, what, content);
    return id;
  };
  bos_id_ = find_named(spec.bos_token, "bos");
  eos_id_ = find_named(spec.eos_token, "eos");
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(std::string_view json_text, const std::string& source) {
  const nlohmann::json root = parse_json(json_text, source);
  BpeSpec spec;
  spec.source = source;
  const auto& model = field(root, "model", source);
  const std::string where = source + ": model";
  const std::string type = field_or<std::string>(model, "type", "BPE", where);
  TE_CHECK(type == "BPE", "{}: model type \"{}\" is not supported (byte-level BPE only)", where, type);
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    TE_CHECK(field_or<std::string>(model, affix, "", where).empty(), "{}: {} is not supported by byte-level BPE", where,
             affix);
  }
  read_vocab(field(model, "vocab", where), where + ".vocab", spec);
  read_merges_json(field(model, "merges", where), where + ".merges", spec);
  spec.ignore_merges = field_or<bool>(model, "ignore_merges", false, where);

  TE_CHECK(!root.contains("normalizer") || root["normalizer"].is_null(),
           "{}: normalizer {} is not supported (byte-level BPE tokenizers have none; for LLaMA-family models load "
           "tokenizer.model)",
           source, root["normalizer"].dump());
  const auto& pre = field(root, "pre_tokenizer", source);
  const std::string pre_where = source + ": pre_tokenizer";
  TE_CHECK(pre.is_object() && field_or<std::string>(pre, "type", "", pre_where) == "ByteLevel",
           "{}: {} is not supported (byte-level BPE needs a ByteLevel pre-tokenizer; for LLaMA-family models load "
           "tokenizer.model)",
           pre_where, pre.dump());
  TE_CHECK(field_or<bool>(pre, "use_regex", true, pre_where), "{}: use_regex=false is not supported", pre_where);
  spec.add_prefix_space = field_or<bool>(pre, "add_prefix_space", false, pre_where);

  if (root.contains("added_tokens")) {
    const auto& added = root["added_tokens"];
    TE_CHECK(added.is_array() || added.is_null(), "{}: added_tokens must be an array", source);
    for (size_t i = 0; i < added.size(); ++i) {
      const std::string at = fmt::format("{}: added_tokens[{}]", source, i);
      const auto& a = added[i];
      BpeSpec::AddedToken t;
      t.id = token_id(field(a, "id", at), at + ".id");
      t.content = token_string(field(a, "content", at), at + ".content");
      t.special = field_or<bool>(a, "special", false, at);
      t.lstrip = field_or<bool>(a, "lstrip", false, at);
      t.rstrip = field_or<bool>(a, "rstrip", false, at);
      t.single_word = field_or<bool>(a, "single_word", false, at);
      t.normalized = field_or<bool>(a, "normalized", !t.special, at);
      spec.added_tokens.push_back(std::move(t));
    }
  }
  if (root.contains("post_processor")) read_post_processor(root["post_processor"], source + ": post_processor", spec);
  // GPT-2's convention when no tokenizer_config.json says otherwise.
  for (const auto& t : spec.added_tokens) {
    if (t.content == "<|endoftext|>") spec.bos_token = spec.eos_token = t.content;
  }
  return std::make_unique<BpeTokenizer>(spec);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::load_tokenizer_json(const std::filesystem::path& path) {
  auto tokenizer = from_tokenizer_json(read_file(path), path.string());
  const auto config_path = path.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    const std::string where = config_path.string();
    const nlohmann::json config = parse_json(read_file(config_path), where);
    TE_CHECK(config.is_object(), "{}: expected a JSON object", where);
    auto named = [&](const char* key, int32_t current) {
      const std::string content = config_token(config, key, where);
      if (content.empty()) return current;
      const int32_t id = tokenizer->token_to_id(content);
      TE_CHECK(id >= 0, "{}: {} \"{}\" is not a token of {}", where, key, content, path.string());
      return id;
    };
    tokenizer->bos_id_ = named("bos_token", tokenizer->bos_id_);
    tokenizer->eos_id_ = named("eos_token", tokenizer->eos_id_);
  }
  return tokenizer;
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::load_vocab_merges(const std::filesystem::path& folder) {
  BpeSpec spec;
  const auto vocab_path = folder / "vocab.json", merges_path = folder / "merges.txt";
  spec.source = vocab_path.string();
  read_vocab(parse_json(read_file(vocab_path), vocab_path.string()), vocab_path.string(), spec);
  const std::string merges_text = read_file(merges_path);
  size_t line_no = 0;
  for (size_t pos = 0; pos < merges_text.size();) {
    size_t end = merges_text.find('\n', pos);
    if (end == std::string::npos) end = merges_text.size();
    std::string_view line(merges_text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    add_merge(line, [&] { return fmt::format("{}:{}", merges_path.string(), line_no); }, spec);
  }
  // GPT-2's original release: <|endoftext|> is BOS, EOS and a special token.
  for (const auto& [token, id] : spec.vocab) {
    if (token == "<|endoftext|>") {
      spec.added_tokens.push_back({.id = id, .content = token, .special = true});
      spec.bos_token = spec.eos_token = token;
    }
  }
  spec.source = vocab_path.string() + " + merges.txt";
  return std::make_unique<BpeTokenizer>(spec);
}

BpeSpec BpeTokenizer::spec() const {
  BpeSpec s = spec_;
  s.bos_token = bos_id_ >= 0 ? token_spelling_[bos_id_] : std::string();
  s.eos_token = eos_id_ >= 0 ? token_spelling_[eos_id_] : std::string();
  return s;
}

void BpeTokenizer::set_cache_capacity(size_t max_entries) {
  std::unique_lock lock(cache_mutex_);
  cache_capacity_ = max_entries;
  if (cache_.size() > max_entries) cache_.clear();
}

int32_t BpeTokenizer::token_to_id(std::string_view token) const {
  auto it = spelling_to_id_.find(token);
  return it == spelling_to_id_.end() ? -1 : it->second;
}

std::string BpeTokenizer::id_to_token(int32_t id) const {
  TE_CHECK(id >= 0 && id < vocab_size() && is_assigned_[id], "{}: token id {} names no token (vocabulary size {})",
           source_, id, vocab_size());
  return token_spelling_[id];
}

std::vector<int32_t> BpeTokenizer::merge_piece(std::string_view piece) const {
  std::vector<int32_t> ids;
  merge_into(piece, ids);
  return ids;
}

void BpeTokenizer::merge_into(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.size() <= 1) {
    if (!piece.empty()) ids.push_back(byte_id_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  if (ignore_merges_) {
    auto it = bytes_to_id_.find(piece);
    if (it != bytes_to_id_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  // The symbols of the piece as a linked list; a symbol keeps the index of its
  // first byte, so index order is text order.
  struct Symbol {
    int32_t id, prev, next;
  };
  // A mergeable pair (left symbol, its right neighbour) as it was when queued;
  // it is stale once either side has changed.
  struct Candidate {
    int32_t rank, left, left_id, right_id, merged_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap, batch;
  const int32_t n = static_cast<int32_t>(piece.size());
  symbols.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i) symbols[i] = {byte_id_[static_cast<uint8_t>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1};
  auto push = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    const int32_t left_id = symbols[left].id, right_id = symbols[symbols[left].next].id;
    auto it = merges_.find(pair_key(left_id, right_id));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, left, left_id, right_id, it->second.merged_id});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  // OpenAI's bpe(): take the lowest-ranked pair present and merge all its
  // non-overlapping occurrences left to right, then look again. A merge never
  // recreates the pair being merged, so one batch per rank reproduces that pass.
  while (!heap.empty()) {
    const int32_t rank = heap.front().rank;
    batch.clear();
    while (!heap.empty() && heap.front().rank == rank) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>());
      batch.push_back(heap.back());
      heap.pop_back();
    }
    for (const Candidate& c : batch) {
      Symbol& left = symbols[c.left];
      if (left.id != c.left_id || left.next < 0 || symbols[left.next].id != c.right_id) continue;
      Symbol& right = symbols[left.next];
      left.id = c.merged_id;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = c.left;
      right.id = -1;
      push(left.prev);
      push(c.left);
    }
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

void BpeTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
  std::string prefixed;
  if (add_prefix_space_ && !text.empty() && text[0] != ' ') {
    prefixed = " ";
    prefixed += text;
    text = prefixed;
  }
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  bpe::split_gpt2(text, pieces);
  // Pieces missing from the cache: merged while the shared lock is held (other
  // readers go on), added afterwards under one exclusive lock.
  struct Miss {
    std::string_view piece;
    size_t begin, end;  // their ids in `ids`
  };
  thread_local std::vector<Miss> misses;
  misses.clear();
  {
    std::shared_lock lock(cache_mutex_);
    const bool use_cache = cache_capacity_ > 0;
    for (std::string_view piece : pieces) {
      const bool cacheable = use_cache && piece.size() > 1 && piece.size() <= kMaxCachedPieceBytes;
      if (cacheable) {
        auto it = cache_.find(piece);
        if (it != cache_.end()) {
          ids.insert(ids.end(), it->second.begin(), it->second.end());
          continue;
        }
      }
      const size_t begin = ids.size();
      merge_into(piece, ids);
      if (cacheable) misses.push_back({piece, begin, ids.size()});
    }
  }
  if (misses.empty()) return;
  std::unique_lock lock(cache_mutex_);
  for (const Miss& m : misses) {
    if (cache_.size() >= cache_capacity_) break;
    cache_.try_emplace(std::string(m.piece), ids.begin() + m.begin, ids.begin() + m.end);
  }
}

// The added token of this pass (`normalized` flag) matching at `pos`, longest
// first, honouring single_word; nullptr when none.
const BpeSpec::AddedToken* BpeTokenizer::added_token_at(std::string_view text, size_t pos, bool normalized) const {
  for (uint16_t index : added_by_first_byte_[static_cast<uint8_t>(text[pos])]) {
    const auto& t = added_[index];
    if (t.normalized != normalized || text.compare(pos, t.content.size(), t.content) != 0) continue;
    if (t.single_word) {
      char32_t cp;
      size_t start;
      const size_t end = pos + t.content.size();
      if (char_before(text, pos, cp, start) && is_word_char(cp)) continue;
      if (end < text.size() && bpe::decode_utf8(text.substr(end), cp) > 0 && is_word_char(cp)) continue;
    }
    return &t;
  }
  return nullptr;
}

// Hugging Face splits out the added tokens that skip normalization first, then
// the normalized ones in the text between; what is left goes through BPE.
void BpeTokenizer::encode_with_added(std::string_view text, bool normalized, std::vector<int32_t>& ids) const {
  auto encode_between = [&](std::string_view between) {
    if (normalized) {
      encode_plain(between, ids);
    } else {
      encode_with_added(between, true, ids);
    }
  };
  size_t plain_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    const BpeSpec::AddedToken* t = added_.empty() ? nullptr : added_token_at(text, pos, normalized);
    if (t == nullptr) {
      ++pos;
      continue;
    }
    size_t plain_end = pos;
    char32_t cp;
    size_t start;
    while (t->lstrip && char_before(text, plain_end, cp, start) && start >= plain_start && is_white_space(cp)) {
      plain_end = start;
    }
    encode_between(text.substr(plain_start, plain_end - plain_start));
    ids.push_back(t->id);
    pos += t->content.size();
    int len;
    while (t->rstrip && pos < text.size() && (len = bpe::decode_utf8(text.substr(pos), cp)) > 0 && is_white_space(cp)) {
      pos += len;
    }
    plain_start = pos;
  }
  encode_between(text.substr(plain_start));
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  if (add_special) ids = prefix_ids_;
  encode_with_added(text, false, ids);
  if (add_special) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string text;
  for (int32_t id : ids) {
    TE_CHECK(id >= 0 && id < vocab_size() && is_assigned_[id], "{}: token id {} names no token (vocabulary size {})",
             source_, id, vocab_size());
    if (skip_special && is_special_[id]) continue;
    text += token_bytes_[id];
  }
  return text;
}

}  // namespace tinyemo::lm
