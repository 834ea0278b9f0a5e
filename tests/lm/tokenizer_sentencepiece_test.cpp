// SentencePiece tokenizer.model through libsentencepiece, with LLaMA's
// conventions, on a model trained at test time (tokenizer_spm_training.h).
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/file.h"
#include "lm/tokenizer_spm_training.h"
#include "models/lm/sentencepiece_tokenizer.h"
#include "models/lm/tokenizer.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

class SentencePieceTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    path_ = new std::filesystem::path(testing::write_llama_like_spm_model(dir_->path()));
    tokenizer_ = lm::Tokenizer::load(*path_).release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete path_;
    delete dir_;
  }
  static std::vector<std::string> pieces(const std::vector<int32_t>& ids) {
    std::vector<std::string> out;
    for (int32_t id : ids) out.push_back(tokenizer_->id_to_token(id));
    return out;
  }
  static testing::TempDir* dir_;
  static std::filesystem::path* path_;
  static lm::Tokenizer* tokenizer_;
};
testing::TempDir* SentencePieceTokenizerTest::dir_ = nullptr;
std::filesystem::path* SentencePieceTokenizerTest::path_ = nullptr;
lm::Tokenizer* SentencePieceTokenizerTest::tokenizer_ = nullptr;

using Pieces = std::vector<std::string>;

TEST_F(SentencePieceTokenizerTest, SpecialIdsComeFromTheModel) {
  EXPECT_EQ(tokenizer_->vocab_size(), testing::kSpmVocabSize);
  EXPECT_EQ(tokenizer_->bos_id(), 1);
  EXPECT_EQ(tokenizer_->eos_id(), 2);
  EXPECT_EQ(tokenizer_->id_to_token(0), "<unk>");
  EXPECT_EQ(tokenizer_->id_to_token(1), "<s>");
  EXPECT_EQ(tokenizer_->id_to_token(2), "</s>");
  EXPECT_EQ(tokenizer_->token_to_id("</s>"), 2);
  EXPECT_EQ(tokenizer_->token_to_id("<0xE2>"), 3 + 0xE2);  // byte pieces follow the three specials
  EXPECT_EQ(tokenizer_->token_to_id("no such piece"), -1);
}

TEST_F(SentencePieceTokenizerTest, LeadingSpaceConvention) {
  // The dummy prefix: a word at the start of the text gets the "▁" that a
  // word after a space has, so "the" and " the" inside text share a piece.
  const auto ids = tokenizer_->encode("the emotion", false);
  EXPECT_EQ(pieces(ids), (Pieces{"▁the", "▁emotion"}));
  // Whitespace is kept as is (remove_extra_whitespaces=false, as LLaMA): an
  // extra leading space becomes its own "▁".
  EXPECT_EQ(pieces(tokenizer_->encode(" the", false)), (Pieces{"▁", "▁the"}));
  EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(" the", false)), " the");
  EXPECT_EQ(tokenizer_->decode(ids), "the emotion");
}

TEST_F(SentencePieceTokenizerTest, ByteFallbackForCharactersOutsideTheVocabulary) {
  // "—" (U+2014, E2 80 94) and "😀" never occur in the corpus: their UTF-8 bytes are pieces.
  EXPECT_EQ(pieces(tokenizer_->encode("joy — fear", false)),
            (Pieces{"▁joy", "▁", "<0xE2>", "<0x80>", "<0x94>", "▁fear"}));
  EXPECT_EQ(pieces(tokenizer_->encode("😀", false)), (Pieces{"▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>"}));
  EXPECT_EQ(tokenizer_->decode(tokenizer_->encode("joy — fear 😀", false)), "joy — fear 😀");
}

TEST_F(SentencePieceTokenizerTest, DigitsAreSplit) {
  EXPECT_EQ(pieces(tokenizer_->encode("2024", false)), (Pieces{"▁", "2", "0", "2", "4"}));
}

TEST_F(SentencePieceTokenizerTest, AddSpecialPrependsBosOnly) {
  const std::string text = "Predicted label: joy";
  const auto plain = tokenizer_->encode(text, false);
  auto expected = plain;
  expected.insert(expected.begin(), 1);
  EXPECT_EQ(tokenizer_->encode(text, true), expected);
  EXPECT_EQ(tokenizer_->encode("", true), std::vector<int32_t>{1});
  EXPECT_TRUE(tokenizer_->encode("", false).empty());
}

TEST_F(SentencePieceTokenizerTest, RoundTrips) {
  for (const std::string text :
       {"The image shows a red rose.", "  two leading spaces and   runs   ", "tabs\tand\nnew lines\n\n",
        "naïve café — déjà vu", "emoji 😀🎉 and CJK 感情", "It's 3.14159 and 1,000,000!", "\x01\x7f control",
        "Reasoning: the rose symbolises love.\n\nPredicted Label: affection"}) {
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text, false)), text) << text;
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text, true)), text) << text;
  }
}

TEST_F(SentencePieceTokenizerTest, ControlTokensInTextAreSplitOut) {
  // As Hugging Face's Llama tokenizers: "</s>" in a prompt is EOS, and each
  // stretch between control tokens is encoded on its own.
  auto expected = tokenizer_->encode("joy", false);
  expected.push_back(2);
  const auto after = tokenizer_->encode("fear", false);
  expected.insert(expected.end(), after.begin(), after.end());
  EXPECT_EQ(tokenizer_->encode("joy</s>fear", false), expected);
  EXPECT_EQ(tokenizer_->encode("<s>", false), std::vector<int32_t>{1});
}

TEST_F(SentencePieceTokenizerTest, DecodeSkipsOrKeepsSpecialTokens) {
  auto ids = tokenizer_->encode("the joy", true);
  ids.push_back(tokenizer_->eos_id());
  EXPECT_EQ(tokenizer_->decode(ids), "the joy");
  EXPECT_EQ(tokenizer_->decode(ids, false), "<s>the joy</s>");
}

TEST_F(SentencePieceTokenizerTest, DecodeRefusesIdsOutOfRange) {
  EXPECT_THROW(tokenizer_->decode({5, testing::kSpmVocabSize}), Error);
  EXPECT_THROW(tokenizer_->decode({-1}), Error);
  EXPECT_THROW(tokenizer_->id_to_token(testing::kSpmVocabSize), Error);
}

TEST_F(SentencePieceTokenizerTest, ModelFolderLoadsTokenizerModel) {
  auto from_folder = lm::Tokenizer::load(dir_->path());
  EXPECT_EQ(from_folder->encode("the joy", true), tokenizer_->encode("the joy", true));
}

void expect_load_error(const std::filesystem::path& path) {
  try {
    lm::Tokenizer::load(path);
    ADD_FAILURE() << "loaded " << path;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
}

TEST(SentencePieceTokenizer, CorruptModelsAreRefusedNamingTheFile) {
  testing::TempDir dir;
  const std::string& model = testing::llama_like_spm_model();
  write_file_atomic(dir / "truncated.model", std::string_view(model).substr(0, model.size() / 2));
  expect_load_error(dir / "truncated.model");
  write_file_atomic(dir / "empty.model", "");
  expect_load_error(dir / "empty.model");
  std::string garbage(4096, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 2654435761u) >> 13);
  write_file_atomic(dir / "garbage.model", garbage);
  expect_load_error(dir / "garbage.model");
  expect_load_error(dir / "missing.model");
}

TEST(SentencePieceTokenizer, ModelWithAPieceStartingWithNulIsRefused) {
  // Found by fuzz/tokenizer_model_fuzz.cpp: libsentencepiece's trie (darts-clone)
  // throws "zero-length key" for a piece starting with NUL instead of returning a
  // status. ModelProto pieces {"<unk>", UNKNOWN}, {"\0a", NORMAL}, {"a", NORMAL},
  // written out as protobuf.
  const std::string proto("\x0a\x09\x0a\x05<unk>\x18\x02"
                          "\x0a\x06\x0a\x02\x00" "a\x18\x01"
                          "\x0a\x05\x0a\x01" "a\x18\x01",
                          26);
  testing::TempDir dir;
  write_file_atomic(dir / "nul_piece.model", proto);
  expect_load_error(dir / "nul_piece.model");
}

}  // namespace
}  // namespace tinyemo
