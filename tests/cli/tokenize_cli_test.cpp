// `tinyemo tokenize --tokenizer PATH --text TEXT [--add-special] --json`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/file.h"
#include "lm/tokenizer_spm_training.h"
#include "models/lm/tokenizer.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

std::vector<int32_t> ids_of(const testing::CliResult& r) {
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.size(), 2u) << r.out;  // exactly {"ids": [...], "tokens": [...]}, one token string per id
  EXPECT_EQ(j.at("tokens").size(), j.at("ids").size()) << r.out;
  return j.at("ids").get<std::vector<int32_t>>();
}

TEST(TokenizeCli, Gpt2TokenizerJsonMatchesOpenAi) {
  const auto tokenizer = testing::fixture("gpt2-bpe/tokenizer.json").string();
  const auto cases = nlohmann::json::parse(read_file(testing::fixture("gpt2-bpe/cases.json")));
  for (const auto& c : cases) {
    const auto r = testing::run_cli({"tokenize", "--tokenizer", tokenizer, "--text", c["text"], "--json"});
    EXPECT_EQ(ids_of(r), c["ids"].get<std::vector<int32_t>>()) << c["text"];
  }
  // GPT-2 adds no special tokens even when asked.
  const auto r =
      testing::run_cli({"tokenize", "--tokenizer", tokenizer, "--text", "Hello world", "--add-special", "--json"});
  EXPECT_EQ(ids_of(r), (std::vector<int32_t>{15496, 995}));
}

TEST(TokenizeCli, VocabMergesFolder) {
  testing::TempDir dir;
  std::filesystem::copy_file(testing::fixture("gpt2-bpe/vocab.json"), dir / "vocab.json");
  std::filesystem::copy_file(testing::fixture("gpt2-bpe/merges.txt"), dir / "merges.txt");
  const auto r = testing::run_cli({"tokenize", "--tokenizer", dir.path().string(), "--text", "Hello world", "--json"});
  EXPECT_EQ(ids_of(r), (std::vector<int32_t>{15496, 995}));
}

TEST(TokenizeCli, SentencePieceModelAddsBos) {
  testing::TempDir dir;
  const auto model = testing::write_llama_like_spm_model(dir.path());
  const auto expected = lm::Tokenizer::load(model)->encode("the joy — 2024", false);
  ASSERT_FALSE(expected.empty());
  auto plain = testing::run_cli({"tokenize", "--tokenizer", model.string(), "--text", "the joy — 2024", "--json"});
  EXPECT_EQ(ids_of(plain), expected);
  auto with_bos = expected;
  with_bos.insert(with_bos.begin(), 1);
  auto special = testing::run_cli(
      {"tokenize", "--tokenizer", model.string(), "--text", "the joy — 2024", "--add-special", "--json"});
  EXPECT_EQ(ids_of(special), with_bos);
}

TEST(TokenizeCli, PlainOutputIsIdsOnOneLine) {
  const auto r = testing::run_cli(
      {"tokenize", "--tokenizer", testing::fixture("gpt2-bpe/tokenizer.json").string(), "--text", "Hello world"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "15496 995\n");
}

TEST(TokenizeCli, BadTokenizerFailsNamingTheFile) {
  testing::TempDir dir;
  write_file_atomic(dir / "tokenizer.json", "{\"model\": {\"vocab\": ");
  const auto bad = (dir / "tokenizer.json").string();
  auto r = testing::run_cli({"tokenize", "--tokenizer", bad, "--text", "x", "--json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(bad), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
  write_file_atomic(dir / "tokenizer.model", std::string(100, '\x7f'));
  r = testing::run_cli({"tokenize", "--tokenizer", (dir / "tokenizer.model").string(), "--text", "x", "--json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("tokenizer.model"), std::string::npos) << r.err;
  r = testing::run_cli({"tokenize", "--tokenizer", (dir / "missing").string(), "--text", "x", "--json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
  r = testing::run_cli({"tokenize", "--text", "x", "--json"});
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace tinyemo
