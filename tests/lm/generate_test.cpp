// Sampling and the generation loop: greedy / temperature / top-k / top-p /
// repetition penalty semantics, seeded determinism, EOS, stop strings,
// streaming, context checks, and the input-embedding helpers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>

#include "io/file.h"
#include "io/safetensors.h"
#include "models/lm/embeddings.h"
#include "models/lm/generate.h"
#include "models/lm/session.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

lm::SamplingOptions sampling(float temperature, int64_t top_k = 0, float top_p = 1.0f, uint64_t seed = 1) {
  lm::SamplingOptions o;
  o.greedy = false;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  o.seed = seed;
  return o;
}

std::map<int32_t, int> histogram(const lm::SamplingOptions& o, std::vector<float> logits, int draws) {
  lm::Sampler s(o);
  std::map<int32_t, int> h;
  for (int i = 0; i < draws; ++i) {
    std::vector<float> l = logits;
    ++h[s.next(l, {})];
  }
  return h;
}

TEST(Sampling, GreedyTakesTheFirstMaximum) {
  lm::Sampler s(lm::SamplingOptions{});
  std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(s.next(l, {}), 1);
}

TEST(Sampling, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  lm::SamplingOptions o;
  o.repetition_penalty = 2.0f;
  lm::Sampler s(o);
  std::vector<float> l = {3.0f, 2.0f, -1.0f};
  const std::vector<int32_t> seen = {0, 2, 0};
  EXPECT_EQ(s.next(l, seen), 1);  // 3 -> 1.5 falls below 2
  EXPECT_EQ(l, (std::vector<float>{1.5f, 2.0f, -2.0f}));
}

TEST(Sampling, TemperatureSamplesTheSoftmax) {
  const std::vector<float> logits = {1.0f, 0.0f, -1.0f, 2.0f};
  const int draws = 40000;
  for (float t : {0.5f, 1.0f, 2.0f}) {
    const auto h = histogram(sampling(t), logits, draws);
    double z = 0.0;
    for (float l : logits) z += std::exp(l / t);
    for (int32_t id = 0; id < 4; ++id) {
      const double p = std::exp(logits[id] / t) / z;
      const double got = h.count(id) ? h.at(id) / static_cast<double>(draws) : 0.0;
      EXPECT_NEAR(got, p, 5.0 * std::sqrt(p * (1 - p) / draws) + 1e-3) << "t=" << t << " id=" << id;
    }
  }
}

TEST(Sampling, TopKAndTopPRestrictTheCandidates) {
  const std::vector<float> logits = {2.0f, 1.9f, 0.0f, -5.0f, 1.0f};
  auto top2 = histogram(sampling(1.0f, 2), logits, 2000);
  EXPECT_EQ(top2.size(), 2u);
  EXPECT_TRUE(top2.count(0) && top2.count(1));
  EXPECT_EQ(histogram(sampling(1.0f, 1), logits, 200).size(), 1u);
  // p(0) ~ 0.44, p(1) ~ 0.40: top_p 0.3 keeps only id 0, 0.5 keeps ids 0 and 1.
  EXPECT_EQ(histogram(sampling(1.0f, 0, 0.3f), logits, 500), (std::map<int32_t, int>{{0, 500}}));
  auto p5 = histogram(sampling(1.0f, 0, 0.5f), logits, 2000);
  EXPECT_EQ(p5.size(), 2u);
  EXPECT_TRUE(p5.count(0) && p5.count(1));
}

TEST(Sampling, SeedsAreDeterministic) {
  const std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.0f, -0.1f, 0.25f};
  auto draw = [&](uint64_t seed) {
    lm::Sampler s(sampling(1.0f, 0, 1.0f, seed));
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) {
      std::vector<float> l = logits;
      out.push_back(s.next(l, {}));
    }
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(Sampling, RefusesBadOptions) {
  EXPECT_THROW(lm::Sampler(sampling(0.0f)), Error);
  EXPECT_THROW(lm::Sampler(sampling(1.0f, -1)), Error);
  EXPECT_THROW(lm::Sampler(sampling(1.0f, 0, 0.0f)), Error);
  EXPECT_THROW(lm::Sampler(sampling(1.0f, 0, 1.5f)), Error);
}

class Generation : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = std::make_unique<lm::LmModel>(lm::LmModel::load(testing::fixture("phi-tiny")));
    const auto io = SafetensorsFile::open(testing::fixture("phi-tiny/io.safetensors"));
    const Tensor ids = io.get("input_ids").to(DType::I64);
    for (int64_t i = 0; i < ids.numel(); ++i) prompt_.push_back(static_cast<int32_t>(ids.data<int64_t>()[i]));
    // GPT-2's tokenizer (phi's base): ids below 300 are single bytes and early merges.
    tokenizer_ = lm::Tokenizer::load(testing::fixture("gpt2-bpe/tokenizer.json"));
  }
  lm::GenerateOptions options(int64_t n) const {
    lm::GenerateOptions o;
    o.max_new_tokens = n;
    o.tokenizer = tokenizer_.get();
    return o;
  }
  std::unique_ptr<lm::LmModel> model_;
  std::vector<int32_t> prompt_;
  std::unique_ptr<lm::Tokenizer> tokenizer_;
};

TEST_F(Generation, SampledRunsRepeatForASeed) {
  lm::GenerateOptions o = options(12);
  o.sampling = sampling(1.3f, 40, 0.95f, 9);
  o.sampling.repetition_penalty = 1.1f;
  const auto a = generate(*model_, prompt_, o), b = generate(*model_, prompt_, o);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.text, b.text);
  o.sampling.seed = 10;
  EXPECT_NE(generate(*model_, prompt_, o).ids, a.ids);
}

TEST_F(Generation, StopsAtEosAndKeepsIt) {
  const auto full = generate(*model_, prompt_, options(8));
  lm::GenerateOptions o = options(8);
  o.eos_ids = {full.ids[3]};
  const auto r = generate(*model_, prompt_, o);
  // The first occurrence of that id ends it.
  const size_t first = std::find(full.ids.begin(), full.ids.end(), full.ids[3]) - full.ids.begin();
  EXPECT_EQ(r.ids, std::vector<int32_t>(full.ids.begin(), full.ids.begin() + first + 1));
  EXPECT_EQ(r.finish_reason, "eos");
}

TEST_F(Generation, StopStringsCutTheTextAndStreamingMatches) {
  const auto full = generate(*model_, prompt_, options(8));
  ASSERT_GE(full.text.size(), 4u);
  EXPECT_EQ(full.text, tokenizer_->decode(full.ids));
  EXPECT_EQ(full.finish_reason, "length");
  // A stop string starting inside the text: generation ends once it is complete.
  const std::string stop = full.text.substr(full.text.size() / 2, 2);
  lm::GenerateOptions o = options(8);
  o.stop_strings = {"never appears", stop};
  std::string streamed;
  o.on_token = [&](int32_t, std::string_view piece) {
    streamed += piece;
    return true;
  };
  const auto r = generate(*model_, prompt_, o);
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_EQ(streamed, r.text);
  EXPECT_LE(r.ids.size(), full.ids.size());
  EXPECT_EQ(r.ids, std::vector<int32_t>(full.ids.begin(), full.ids.begin() + r.ids.size()));
  EXPECT_NE(tokenizer_->decode(r.ids).find(stop), std::string::npos);
}

TEST_F(Generation, CallbackCanStop) {
  lm::GenerateOptions o = options(8);
  int calls = 0;
  o.on_token = [&](int32_t, std::string_view) { return ++calls < 3; };
  const auto r = generate(*model_, prompt_, o);
  EXPECT_EQ(r.ids.size(), 3u);
  EXPECT_EQ(r.finish_reason, "callback");
}

TEST_F(Generation, GenerationEndsAtTheContextEnd) {
  // Asking for more tokens than fit: generation stops where the context is
  // full, with finish_reason "length", the whole sequence within the context.
  const int64_t room = 2048 - static_cast<int64_t>(prompt_.size());
  lm::GenerateOptions o = options(room + 100);
  o.stop_at_eos = false;
  const auto r = generate(*model_, prompt_, o);
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(static_cast<int64_t>(r.ids.size()), room);
  // A prompt that does not fit is refused, naming the config field, and
  // nothing is appended to the session.
  std::vector<int32_t> long_prompt(2049, 1);
  try {
    generate(*model_, long_prompt, options(1));
    FAIL();
  } catch (const ContextFullError& e) {
    EXPECT_NE(std::string(e.what()).find("max_position_embeddings"), std::string::npos) << e.what();
  }
  lm::LmSession s(*model_);
  EXPECT_THROW(s.forward(long_prompt), ContextFullError);
  EXPECT_EQ(s.length(), 0);
}

// A copy of phi-tiny whose config declares another context length.
std::filesystem::path phi_with_context(const testing::TempDir& dir, int64_t context) {
  auto config = nlohmann::json::parse(read_file(testing::fixture("phi-tiny/config.json")));
  config["max_position_embeddings"] = context;
  write_file_atomic(dir / "config.json", config.dump());
  std::filesystem::copy_file(testing::fixture("phi-tiny/model.safetensors"), dir / "model.safetensors");
  return dir.path();
}

TEST_F(Generation, NewTokensEndAtTheContextWithLength) {
  testing::TempDir dir;
  const lm::LmModel short_model = lm::LmModel::load(phi_with_context(dir, 24));
  lm::GenerateOptions o = options(1000000000);
  o.stop_at_eos = false;
  const auto r = generate(short_model, prompt_, o);
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(static_cast<int64_t>(r.ids.size() + prompt_.size()), 24);
  // The same tokens as asking for exactly that many.
  EXPECT_EQ(generate(short_model, prompt_, [&] {
              lm::GenerateOptions exact = o;
              exact.max_new_tokens = 24 - static_cast<int64_t>(prompt_.size());
              return exact;
            }()).ids,
            r.ids);
}

int64_t resident_bytes() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f != nullptr) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<int64_t>(resident) * 4096;
}

TEST_F(Generation, TheCacheGrowsWithTheTokensNotTheRequest) {
  // A 500,000-position context: reserving it whole for phi-tiny's KV cache
  // (1 KB a position) took 512 MB before the first token.
  testing::TempDir dir;
  const lm::LmModel long_model = lm::LmModel::load(phi_with_context(dir, 500000));
  lm::GenerateOptions o = options(500000 - static_cast<int64_t>(prompt_.size()));
  int64_t growth = 0;
  const int64_t before = resident_bytes();
  o.on_token = [&](int32_t, std::string_view) {
    growth = std::max(growth, resident_bytes() - before);
    return false;  // one token is enough to see the cache
  };
  const auto r = generate(long_model, prompt_, o);
  EXPECT_EQ(r.finish_reason, "callback");
  EXPECT_LT(growth, int64_t{64} << 20) << "resident set grew by " << growth << " bytes for one token";
}

TEST_F(Generation, ACallerOwnedSessionContinuesWhereItStopped) {
  // Two calls on one session (the second continuing from the first's last
  // token) give what one call gives.
  lm::GenerateOptions o = options(10);
  o.stop_at_eos = false;
  const auto whole = generate(*model_, prompt_, o);
  lm::LmSession s(*model_);
  o.max_new_tokens = 4;
  const auto first = generate(s, embed_tokens(*model_, prompt_), prompt_, o);
  ASSERT_EQ(first.ids.size(), 4u);
  EXPECT_EQ(s.length(), static_cast<int64_t>(prompt_.size()) + 3);  // the last id is not evaluated yet
  std::vector<int32_t> seen = prompt_;
  seen.insert(seen.end(), first.ids.begin(), first.ids.end());
  o.max_new_tokens = 6;
  const int32_t last = first.ids.back();
  const auto second = generate(s, embed_tokens(*model_, std::span<const int32_t>(&last, 1)), seen, o);
  std::vector<int32_t> both = first.ids;
  both.insert(both.end(), second.ids.begin(), second.ids.end());
  EXPECT_EQ(both, whole.ids);
  // Truncating back to the prompt and generating again repeats the first call.
  s.truncate(static_cast<int64_t>(prompt_.size()) - 1);
  o.max_new_tokens = 4;
  const int32_t prompt_last = prompt_.back();
  const auto again = generate(s, embed_tokens(*model_, std::span<const int32_t>(&prompt_last, 1)), prompt_, o);
  EXPECT_EQ(again.ids, first.ids);
}

TEST_F(Generation, TokenIdsOutOfRangeAreRefused) {
  std::vector<int32_t> bad = prompt_;
  bad[3] = 300;  // phi-tiny's vocabulary is 300
  try {
    generate(*model_, bad, options(1));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 300 at position 3"), std::string::npos) << e.what();
  }
  bad[3] = -1;
  EXPECT_THROW(embed_tokens(*model_, bad), Error);
}

TEST_F(Generation, EmbeddingHelpers) {
  const Tensor& table = input_embedding_table(*model_);
  ASSERT_EQ(table.shape(), (Shape{300, 64}));
  // The label anchor is the mean of the rows of the encoded text (GPT-2 adds no BOS).
  const std::vector<int32_t> ids = tokenizer_->encode("a!", true);
  ASSERT_FALSE(ids.empty());
  const Tensor anchor = label_anchor(*model_, *tokenizer_, "a!");
  std::vector<float> want(64, 0.0f);
  for (int32_t id : ids) {
    const auto row = table.row(id).to_f32_vector();
    for (int c = 0; c < 64; ++c) want[c] += row[c] / static_cast<float>(ids.size());
  }
  EXPECT_LE(testing::rel_error(anchor.to_f32_vector(), want), 1e-6);
  // Several placeholders take their tensors in order; counts must match.
  const Tensor a = Tensor::zeros(DType::F32, {2, 64}), b = Tensor::zeros(DType::F16, {1, 64});
  const std::vector<int32_t> spliced = {5, -200, 6, -200};
  EXPECT_EQ(embed_with_inserted(*model_, spliced, -200, {a, b}).dim(0), 5);
  EXPECT_THROW(embed_with_inserted(*model_, spliced, -200, {a}), Error);
  EXPECT_THROW(embed_with_inserted(*model_, spliced, -200, {a, Tensor::zeros(DType::F32, {1, 63})}), Error);
}

}  // namespace
}  // namespace tinyemo
