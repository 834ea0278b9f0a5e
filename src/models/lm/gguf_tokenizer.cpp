#include "models/lm/gguf_tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "models/lm/bpe_tokenizer.h"
#include "models/lm/sentencepiece_model.h"
#include "models/lm/sentencepiece_tokenizer.h"

namespace tinyemo::lm {

namespace {

constexpr const char* kModel = "tokenizer.ggml.model";
constexpr const char* kPre = "tokenizer.ggml.pre";
constexpr const char* kTokens = "tokenizer.ggml.tokens";
constexpr const char* kScores = "tokenizer.ggml.scores";
constexpr const char* kTypes = "tokenizer.ggml.token_type";
constexpr const char* kMerges = "tokenizer.ggml.merges";
constexpr const char* kBos = "tokenizer.ggml.bos_token_id";
constexpr const char* kEos = "tokenizer.ggml.eos_token_id";
constexpr const char* kUnk = "tokenizer.ggml.unknown_token_id";
constexpr const char* kPad = "tokenizer.ggml.padding_token_id";
constexpr const char* kAddBos = "tokenizer.ggml.add_bos_token";
constexpr const char* kAddEos = "tokenizer.ggml.add_eos_token";
constexpr const char* kAddSpacePrefix = "tokenizer.ggml.add_space_prefix";
constexpr const char* kRemoveExtraWs = "tokenizer.ggml.remove_extra_whitespaces";

// llama.cpp's token types are SentencePiece's piece types.
using Piece = SentencePieceModel;

// The pre-tokenizers llama.cpp runs with GPT-2's regex (the one tinyemo's BPE implements).
bool gpt2_regex(std::string_view pre) { return pre == "gpt-2" || pre == "phi-2"; }

bool flag(const GgufFile& f, const char* key, bool fallback) { return f.has(key) ? f.get_bool(key) : fallback; }

// An id key checked against the token count; -1 when absent.
int64_t token_id(const GgufFile& f, const char* key, int64_t n_tokens, int64_t fallback = -1) {
  if (!f.has(key)) return fallback;
  const int64_t id = f.get_int(key);
  TE_CHECK(id >= 0 && id < n_tokens, "{}: {} = {} is not a token id (the vocabulary has {} tokens)", f.where(), key,
           id, n_tokens);
  return id;
}

std::vector<int32_t> token_types(const GgufFile& f, size_t n) {
  std::vector<int32_t> types(n, Piece::kNormal);
  if (!f.has(kTypes)) return types;
  const auto raw = f.get_int_array(kTypes);
  TE_CHECK(raw.size() == n, "{}: {} has {} entries for {} tokens", f.where(), kTypes, raw.size(), n);
  for (size_t i = 0; i < n; ++i) {
    TE_CHECK(raw[i] >= Piece::kNormal && raw[i] <= Piece::kByte, "{}: {}[{}] = {} is not a token type (1-6)",
             f.where(), kTypes, i, raw[i]);
    types[i] = static_cast<int32_t>(raw[i]);
  }
  return types;
}

std::unique_ptr<Tokenizer> sentencepiece_from_gguf(const GgufFile& f) {
  const auto& tokens = f.get_string_array(kTokens);
  const int64_t n = static_cast<int64_t>(tokens.size());
  const auto types = token_types(f, tokens.size());
  std::vector<double> scores(tokens.size(), 0.0);
  if (f.has(kScores)) {
    scores = f.get_float_array(kScores);
    TE_CHECK(scores.size() == tokens.size(), "{}: {} has {} entries for {} tokens", f.where(), kScores, scores.size(),
             tokens.size());
  }
  SentencePieceModel m;
  m.model_type = SentencePieceModel::kBpe;
  m.pieces.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    TE_CHECK(!tokens[i].empty(), "{}: {}[{}] is empty", f.where(), kTokens, i);
    m.pieces.push_back({tokens[i], static_cast<float>(scores[i]), types[i]});
    m.byte_fallback = m.byte_fallback || types[i] == Piece::kByte;
  }
  // llama.cpp's defaults for SentencePiece vocabularies: <unk> 0, <s> 1, </s> 2.
  const int64_t unk = token_id(f, kUnk, n, 0), bos = token_id(f, kBos, n, n > 1 ? 1 : -1),
                eos = token_id(f, kEos, n, n > 2 ? 2 : -1), pad = token_id(f, kPad, n);
  TE_CHECK(unk >= 0 && types[unk] == Piece::kUnknown, "{}: token {} ({}) must be the unknown token (type 2)",
           f.where(), unk, kUnk);
  m.unk_piece = tokens[unk];
  SentencePieceOptions options;
  options.add_bos = flag(f, kAddBos, true);
  options.add_eos = flag(f, kAddEos, false);
  auto special = [&](int64_t id, const char* key, bool needed) -> std::string {
    if (id < 0) {
      TE_CHECK(!needed, "{}: {} is needed ({} is true)", f.where(), key, key == kBos ? kAddBos : kAddEos);
      return "<none:" + std::string(key) + ">";  // a piece no vocabulary holds: no such special token
    }
    TE_CHECK(types[id] == Piece::kControl, "{}: {} = {} names \"{}\", which is not a control token (type 3)",
             f.where(), key, id, tokens[id]);
    return tokens[id];
  };
  m.bos_piece = special(bos, kBos, options.add_bos);
  m.eos_piece = special(eos, kEos, options.add_eos);
  m.pad_piece = pad >= 0 ? tokens[pad] : "<none:pad>";
  m.add_dummy_prefix = flag(f, kAddSpacePrefix, true);
  m.remove_extra_whitespaces = flag(f, kRemoveExtraWs, false);
  m.escape_whitespaces = true;
  return std::make_unique<SentencePieceTokenizer>(serialize_sentencepiece_model(m), f.where() + " (" + kTokens + ")",
                                                  options);
}

std::unique_ptr<Tokenizer> bpe_from_gguf(const GgufFile& f) {
  TE_CHECK(f.has(kPre), "{}: {} is missing: llama.cpp then uses its default pre-tokenizer, which tinyemo does not "
                        "implement (GPT-2's, \"gpt-2\" / \"phi-2\", only)",
           f.where(), kPre);
  const std::string& pre = f.get_string(kPre);
  TE_CHECK(gpt2_regex(pre),
           "{}: {} \"{}\" is not supported: tinyemo's byte-level BPE implements GPT-2's pre-tokenizer (\"gpt-2\", "
           "\"phi-2\") only",
           f.where(), kPre, pre);
  const auto& tokens = f.get_string_array(kTokens);
  const int64_t n = static_cast<int64_t>(tokens.size());
  const auto types = token_types(f, tokens.size());
  BpeSpec spec;
  spec.source = f.where() + " (" + kTokens + ")";
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t id = static_cast<int32_t>(i);
    switch (types[i]) {
      case Piece::kUnused: break;  // padding ids with no token
      case Piece::kControl:
      case Piece::kUserDefined: {
        BpeSpec::AddedToken t;
        t.id = id;
        t.content = tokens[i];
        t.special = types[i] == Piece::kControl;
        t.normalized = !t.special;
        spec.added_tokens.push_back(std::move(t));
        break;
      }
      default: spec.vocab.emplace_back(tokens[i], id); break;
    }
  }
  const auto& merges = f.get_string_array(kMerges);
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const size_t space = merges[i].find(' ', 1);  // as llama.cpp splits them: a token may start with a space
    TE_CHECK(space != std::string::npos && space + 1 < merges[i].size(), "{}: {}[{}] \"{}\" is not \"a b\"", f.where(),
             kMerges, i, merges[i]);
    spec.merges.emplace_back(merges[i].substr(0, space), merges[i].substr(space + 1));
  }
  const int64_t bos = token_id(f, kBos, n), eos = token_id(f, kEos, n);
  if (bos >= 0) spec.bos_token = tokens[bos];
  if (eos >= 0) spec.eos_token = tokens[eos];
  if (flag(f, kAddBos, false)) {
    TE_CHECK(bos >= 0, "{}: {} is true but {} is missing", f.where(), kAddBos, kBos);
    spec.prefix_ids.push_back(static_cast<int32_t>(bos));
  }
  if (flag(f, kAddEos, false)) {
    TE_CHECK(eos >= 0, "{}: {} is true but {} is missing", f.where(), kAddEos, kEos);
    spec.suffix_ids.push_back(static_cast<int32_t>(eos));
  }
  return std::make_unique<BpeTokenizer>(spec);
}

void pad_to(std::vector<std::string>& tokens, std::vector<float>& scores, std::vector<int32_t>& types, int64_t n) {
  for (int64_t i = static_cast<int64_t>(tokens.size()); i < n; ++i) {
    tokens.push_back("[PAD" + std::to_string(i) + "]");
    scores.push_back(-10000.0f);
    types.push_back(Piece::kUnused);
  }
}

void write_sentencepiece(const SentencePieceTokenizer& tok, int64_t n_vocab, GgufWriter& out) {
  const std::string where = "tokenizer.model";
  const SentencePieceModel m = parse_sentencepiece_model(tok.model_proto(), where);
  TE_CHECK(m.model_type == SentencePieceModel::kBpe,
           "{}: a {} SentencePiece model: llama.cpp tokenizes SentencePiece vocabularies by merging pieces by score "
           "(a BPE model), so it would split text differently",
           where, m.model_type == SentencePieceModel::kUnigram ? "unigram" : "word/char");
  TE_CHECK(!m.has_precompiled_charsmap,
           "{}: the model normalizes text ({}), which llama.cpp's SentencePiece tokenizer does not do", where,
           m.normalizer_name);
  TE_CHECK(m.escape_whitespaces, "{}: escape_whitespaces is off, which llama.cpp cannot express", where);
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (size_t i = 0; i < m.pieces.size() && static_cast<int64_t>(i) < n_vocab; ++i) {
    tokens.push_back(m.pieces[i].text);
    scores.push_back(m.pieces[i].score);
    types.push_back(m.pieces[i].type);
  }
  pad_to(tokens, scores, types, n_vocab);
  out.set("tokenizer.ggml.model", GgufValue::string("llama"));
  out.set(kPre, GgufValue::string("default"));
  out.set(kTokens, GgufValue::string_array(std::move(tokens)));
  out.set(kScores, GgufValue::f32_array(scores));
  out.set(kTypes, GgufValue::i32_array(types));
  auto id = [&](int32_t v, const char* key) {
    if (v >= 0 && v < n_vocab) out.set(key, GgufValue::u32(static_cast<uint32_t>(v)));
  };
  id(tok.bos_id(), kBos);
  id(tok.eos_id(), kEos);
  id(tok.token_to_id(m.unk_piece), kUnk);
  id(tok.token_to_id(m.pad_piece), kPad);
  out.set(kAddBos, GgufValue::boolean(tok.options().add_bos));
  out.set(kAddEos, GgufValue::boolean(tok.options().add_eos));
  out.set(kAddSpacePrefix, GgufValue::boolean(m.add_dummy_prefix));
  out.set(kRemoveExtraWs, GgufValue::boolean(m.remove_extra_whitespaces));
}

void write_bpe(const BpeTokenizer& tok, int64_t n_vocab, std::string_view pre, GgufWriter& out) {
  const BpeSpec spec = tok.spec();
  const std::string& where = spec.source;
  TE_CHECK(gpt2_regex(pre), "GGUF: tokenizer.ggml.pre \"{}\" is not GPT-2's pre-tokenizer", pre);
  TE_CHECK(!spec.add_prefix_space, "{}: add_prefix_space is on, which llama.cpp's byte-level BPE does not do", where);
  TE_CHECK(!spec.ignore_merges, "{}: ignore_merges is on, which llama.cpp does with GPT-2's pre-tokenizer not do",
           where);
  std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
  std::vector<int32_t> types(static_cast<size_t>(n_vocab), 0);
  auto put = [&](int32_t id, const std::string& text, int32_t type) {
    if (id >= n_vocab) return;  // beyond the model's rows: never produced
    tokens[static_cast<size_t>(id)] = text;
    types[static_cast<size_t>(id)] = type;
  };
  for (const auto& [spelling, id] : spec.vocab) put(id, spelling, Piece::kNormal);
  for (const auto& t : spec.added_tokens) {
    TE_CHECK(!t.lstrip && !t.rstrip && !t.single_word,
             "{}: added token \"{}\" strips spaces or matches single words only, which llama.cpp's metadata cannot "
             "say",
             where, t.content);
    put(t.id, t.content, t.special ? Piece::kControl : Piece::kUserDefined);
  }
  for (int64_t i = 0; i < n_vocab; ++i) {
    if (types[static_cast<size_t>(i)] == 0) {
      tokens[static_cast<size_t>(i)] = "[PAD" + std::to_string(i) + "]";
      types[static_cast<size_t>(i)] = Piece::kUnused;
    }
  }
  std::vector<std::string> merges;
  merges.reserve(spec.merges.size());
  for (const auto& [a, b] : spec.merges) merges.push_back(a + " " + b);
  const int32_t bos = tok.bos_id(), eos = tok.eos_id();
  const bool add_bos = spec.prefix_ids == std::vector<int32_t>{bos} && bos >= 0;
  const bool add_eos = spec.suffix_ids == std::vector<int32_t>{eos} && eos >= 0;
  TE_CHECK((spec.prefix_ids.empty() || add_bos) && (spec.suffix_ids.empty() || add_eos),
           "{}: the post-processor adds tokens other than BOS before / EOS after the text, which llama.cpp cannot say",
           where);
  out.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  out.set(kPre, GgufValue::string(std::string(pre)));
  out.set(kTokens, GgufValue::string_array(std::move(tokens)));
  out.set(kTypes, GgufValue::i32_array(types));
  out.set(kMerges, GgufValue::string_array(std::move(merges)));
  if (bos >= 0 && bos < n_vocab) out.set(kBos, GgufValue::u32(static_cast<uint32_t>(bos)));
  if (eos >= 0 && eos < n_vocab) out.set(kEos, GgufValue::u32(static_cast<uint32_t>(eos)));
  out.set(kAddBos, GgufValue::boolean(add_bos));
  out.set(kAddEos, GgufValue::boolean(add_eos));
}

}  // namespace

bool gguf_has_tokenizer(const GgufFile& file) {
  if (!file.has(kModel)) return false;
  const std::string& model = file.get_string(kModel);
  return model != "none" && model != "no_vocab";
}

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& file) {
  TE_CHECK(gguf_has_tokenizer(file), "{}: the file carries no tokenizer ({} is missing or \"none\")", file.where(),
           kModel);
  const std::string& model = file.get_string(kModel);
  if (model == "llama") return sentencepiece_from_gguf(file);
  if (model == "gpt2") return bpe_from_gguf(file);
  fail("{}: {} \"{}\" is not supported (\"llama\": SentencePiece, \"gpt2\": byte-level BPE)", file.where(), kModel,
       model);
}

void write_gguf_tokenizer(const Tokenizer& tokenizer, int64_t n_vocab, std::string_view pre, GgufWriter& out) {
  if (const auto* spm = dynamic_cast<const SentencePieceTokenizer*>(&tokenizer))
    return write_sentencepiece(*spm, n_vocab, out);
  if (const auto* bpe = dynamic_cast<const BpeTokenizer*>(&tokenizer)) return write_bpe(*bpe, n_vocab, pre, out);
  fail("GGUF: this tokenizer kind cannot be written as llama.cpp metadata");
}

void write_gguf_no_tokenizer(int64_t n_vocab, GgufWriter& out) {
  out.set("tokenizer.ggml.model", GgufValue::string("none"));
  (void)n_vocab;  // the architecture's vocab_size key carries it
}

}  // namespace tinyemo::lm
