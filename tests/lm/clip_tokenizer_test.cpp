// CLIP's tokenizer over the real vocabulary (../shared/data/bpe_simple_vocab_16e6.txt.gz):
// the ids OpenAI's clip.tokenize gave in the fixture clip-zeroshot-tiny, and
// harder cases (HTML references, Unicode case, whitespace, contractions,
// special tokens, truncation) from tools/clip_tokenizer_reference.py.
#include <gtest/gtest.h>

#include <zlib.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "models/lm/clip_tokenizer.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

const lm::ClipTokenizer& tokenizer() {
  static const auto t = lm::ClipTokenizer::load(testing::data("bpe_simple_vocab_16e6.txt.gz"));
  return *t;
}

using testing::error_of;

TEST(ClipTokenizer, VocabularyLayout) {
  const lm::ClipTokenizer& t = tokenizer();
  EXPECT_EQ(t.vocab_size(), 49408);
  EXPECT_EQ(t.bos_id(), 49406);
  EXPECT_EQ(t.eos_id(), 49407);
  EXPECT_EQ(t.id_to_token(49406), "<|startoftext|>");
  EXPECT_EQ(t.token_to_id("a</w>"), 320);
  EXPECT_EQ(t.token_to_id("!"), 0);  // bytes_to_unicode's first printable byte
  EXPECT_EQ(t.token_to_id("!</w>"), 256);
  EXPECT_EQ(t.token_to_id("no such token"), -1);
}

TEST(ClipTokenizer, FixtureIdsEqualOpenAI) {
  const auto io = SafetensorsFile::open(testing::fixture("clip-zeroshot-tiny/io.safetensors"));
  const auto texts = nlohmann::json::parse(io.metadata().at("texts"));
  const Tensor ids = io.get("input_ids");
  ASSERT_EQ(ids.dtype(), DType::I64);
  ASSERT_EQ(ids.dim(0), static_cast<int64_t>(texts.size()));
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int64_t> mine = tokenizer().tokenize(texts[i].get<std::string>(), ids.dim(1));
    const std::vector<int64_t> want(ids.data<int64_t>() + i * ids.dim(1), ids.data<int64_t>() + (i + 1) * ids.dim(1));
    EXPECT_EQ(mine, want) << texts[i];
  }
}

TEST(ClipTokenizer, ReferenceCases) {
  const auto cases = nlohmann::json::parse(read_file(testing::source_dir() / "tests/data/clip/clip_tokenizer_cases.json"));
  int checked = 0;
  for (const auto& c : cases.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    EXPECT_EQ(lm::clip_clean_text(text), c.at("cleaned").get<std::string>()) << text;
    const auto want = c.at("ids").get<std::vector<int64_t>>();
    std::vector<int64_t> mine = tokenizer().tokenize(text, 77);
    mine.resize(want.size());  // the reference lists ids without the zero padding
    EXPECT_EQ(mine, want) << text;
    ++checked;
  }
  EXPECT_GE(checked, 30);
}

TEST(ClipTokenizer, TruncationKeepsTheEndToken) {
  const std::string long_text(300, 'x');
  const auto ids = tokenizer().tokenize(long_text + " " + std::string(200, 'y'), 77, /*truncate=*/true);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids.front(), 49406);
  EXPECT_EQ(ids.back(), 49407);
  const std::string e = error_of([&] {
    std::string words;
    for (int i = 0; i < 100; ++i) words += "word ";
    tokenizer().tokenize(words, 77, /*truncate=*/false);
  });
  EXPECT_NE(e.find("too long for context length 77"), std::string::npos) << e;
  // Short context lengths work the same way.
  EXPECT_EQ(tokenizer().tokenize("a photo of a dog", 4), (std::vector<int64_t>{49406, 320, 1125, 49407}));
}

TEST(ClipTokenizer, DecodeInvertsEncode) {
  const lm::ClipTokenizer& t = tokenizer();
  EXPECT_EQ(t.decode(t.encode("A Photo of a DOG, café!", true)), "a photo of a dog , café ! ");
  EXPECT_EQ(t.decode(t.encode("x", true), /*skip_special=*/false), "<|startoftext|>x <|endoftext|>");
  EXPECT_THROW(t.decode({49408}), Error);
}

TEST(ClipTokenizer, HtmlUnescapeMatchesPython) {
  EXPECT_EQ(lm::html_unescape("&amp;amp;"), "&amp;");
  EXPECT_EQ(lm::html_unescape("&notit;"), "\xC2\xACit;");  // longest known prefix: &not
  EXPECT_EQ(lm::html_unescape("&#65;&#x42;&#X43"), "ABC");
  EXPECT_EQ(lm::html_unescape("&#0;"), "\xEF\xBF\xBD");
  EXPECT_EQ(lm::html_unescape("&#128;"), "\xE2\x82\xAC");  // Windows-1252 euro
  EXPECT_EQ(lm::html_unescape("&#1;x"), "x");             // an invalid code point: dropped
  EXPECT_EQ(lm::html_unescape("&#99999999999999999999;"), "\xEF\xBF\xBD");
  EXPECT_EQ(lm::html_unescape("& &; &#; &zzzz;"), "& &; &#; &zzzz;");
}

TEST(ClipTokenizer, LowerMatchesPython) {
  EXPECT_EQ(lm::unicode_lower("ÀÉÎ ΣΑΣ Σ İ"), "àéî σας σ i\xCC\x87");
  EXPECT_THROW(lm::unicode_lower("\xFF"), Error);
  EXPECT_NE(error_of([] { lm::clip_clean_text("bad \xC3 utf8"); }).find("invalid UTF-8"), std::string::npos);
}

TEST(ClipTokenizer, RefusesBrokenVocabularies) {
  testing::TempDir dir;
  // Too few merges for the vocabulary size.
  write_file_atomic(dir / "short.txt", "#version: 0.2\nt h\nth e</w>\n");
  std::string e = error_of([&] { lm::ClipTokenizer::load(dir / "short.txt"); });
  EXPECT_NE(e.find("holds 2 merges"), std::string::npos) << e;
  EXPECT_NE(e.find("short.txt"), std::string::npos) << e;
  // A merge of symbols that do not exist yet.
  write_file_atomic(dir / "bad.txt", "#version: 0.2\nth e</w>\n");
  e = error_of([&] { lm::ClipTokenizer::load(dir / "bad.txt", 512 + 2 + 1); });
  EXPECT_NE(e.find("joins a symbol no earlier line makes"), std::string::npos) << e;
  // A line that is not "a b".
  write_file_atomic(dir / "line.txt", "#version: 0.2\nthe\n");
  e = error_of([&] { lm::ClipTokenizer::load(dir / "line.txt", 512 + 2 + 1); });
  EXPECT_NE(e.find("line 2 is not a merge"), std::string::npos) << e;
  // A small vocabulary works (what a re-trained tower could use).
  write_file_atomic(dir / "small.txt", "#version: 0.2\nt h\nth e</w>\n");
  const auto small = lm::ClipTokenizer::load(dir / "small.txt", 512 + 2 + 2);
  EXPECT_EQ(small->encode("the", false), (std::vector<int32_t>{513}));
  // Truncated gzip data.
  const std::string gz = read_file(testing::data("bpe_simple_vocab_16e6.txt.gz"));
  write_file_atomic(dir / "cut.gz", gz.substr(0, gz.size() / 2));
  e = error_of([&] { lm::ClipTokenizer::load(dir / "cut.gz"); });
  EXPECT_NE(e.find("truncated gzip"), std::string::npos) << e;
  EXPECT_THROW(lm::ClipTokenizer::load(dir / "missing.gz"), Error);
}

TEST(ClipTokenizer, RefusesAGzipBomb) {
  testing::TempDir dir;
  // 20 MB of zeros compress to ~20 kB.
  std::string zeros(20u << 20, '\0');
  z_stream zs{};
  ASSERT_EQ(deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, zeros.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(zeros.data());
  zs.avail_in = static_cast<uInt>(zeros.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  ASSERT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  write_file_atomic(dir / "bomb.gz", out);
  const std::string e = error_of([&] { lm::ClipTokenizer::load(dir / "bomb.gz"); });
  EXPECT_NE(e.find("not a CLIP merges file"), std::string::npos) << e;
}

}  // namespace
}  // namespace tinyemo
