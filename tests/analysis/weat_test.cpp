#include "analysis/weat.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "analysis/associations.h"
#include "core/rng.h"
#include "core/error.h"
#include "io/file.h"
#include "testing/testing.h"

namespace tinyemo::analysis {
namespace {

Vectors to_vectors(const nlohmann::json& rows) {
  Vectors v;
  for (const auto& r : rows) v.push_back(r.get<std::vector<float>>());
  return v;
}

const nlohmann::json& reference() {
  static const nlohmann::json j =
      nlohmann::json::parse(read_file(testing::source_dir() / "tests/data/bias/reference.json"));
  return j;
}

TEST(Weat, MatchesExhaustiveNumpyReference) {
  for (const auto& c : reference()["weat"]) {
    const WeatResult r =
        weat(to_vectors(c["X"]), to_vectors(c["Y"]), to_vectors(c["A"]), to_vectors(c["B"]), WeatOptions{});
    EXPECT_TRUE(r.exact);
    EXPECT_EQ(r.partitions, c["partitions"].get<int64_t>());
    // Inputs are float32 in both; cosines accumulate in double here.
    EXPECT_NEAR(r.statistic, c["statistic"].get<double>(), 1e-6);
    EXPECT_NEAR(r.effect_size, c["effect_size"].get<double>(), 1e-6);
    EXPECT_DOUBLE_EQ(r.p_one_sided, c["p_one_sided"].get<double>());
    EXPECT_DOUBLE_EQ(r.p_two_sided, c["p_two_sided"].get<double>());
  }
}

// Targets near attribute A (X) or B (Y) in a random 32-d space.
struct Planted {
  Vectors x, y, a, b;
  Planted(int nx, int ny, double signal, uint64_t seed) {
    Rng rng(seed);
    const auto gaussian = [&] {
      return static_cast<float>(std::sqrt(-2.0 * std::log(1.0 - rng.uniform())) * std::cos(6.283185307 * rng.uniform()));
    };
    const auto random_vector = [&] {
      std::vector<float> v(32);
      for (auto& e : v) e = gaussian();
      return v;
    };
    const auto near = [&](const std::vector<float>& c) {
      std::vector<float> v = random_vector();
      for (size_t i = 0; i < v.size(); ++i) v[i] += static_cast<float>(signal) * c[i];
      return v;
    };
    a = {random_vector(), random_vector()};
    b = {random_vector(), random_vector()};
    for (int i = 0; i < nx; ++i) x.push_back(near(a[i % 2]));
    for (int i = 0; i < ny; ++i) y.push_back(near(b[i % 2]));
  }
};

TEST(Weat, PlantedAssociationIsLargeAndSignificant) {
  const Planted p(8, 8, 1.5, 1);
  const WeatResult r = weat(p.x, p.y, p.a, p.b, {});
  EXPECT_TRUE(r.exact);
  EXPECT_EQ(r.partitions, 12870);
  EXPECT_GT(r.effect_size, 1.5);
  EXPECT_DOUBLE_EQ(r.p_one_sided, 1.0 / 12870);  // only the observed partition is as extreme
  EXPECT_DOUBLE_EQ(r.p_two_sided, 2.0 / 12870);  // and its mirror image
  // Swapping the attribute sets flips the sign, not the evidence.
  const WeatResult swapped = weat(p.x, p.y, p.b, p.a, {});
  EXPECT_NEAR(swapped.effect_size, -r.effect_size, 1e-12);
  EXPECT_DOUBLE_EQ(swapped.p_two_sided, r.p_two_sided);
  EXPECT_GT(swapped.p_one_sided, 0.99);
}

TEST(Weat, SampledPartitionsAgreeWithExact) {
  const Planted p(7, 9, 0.25, 2);
  const WeatResult exact = weat(p.x, p.y, p.a, p.b, {});
  WeatOptions sampled;
  sampled.exact_limit = 10;
  sampled.permutations = 40000;
  sampled.seed = 3;
  const WeatResult s = weat(p.x, p.y, p.a, p.b, sampled);
  ASSERT_TRUE(exact.exact);
  ASSERT_FALSE(s.exact);
  EXPECT_EQ(s.effect_size, exact.effect_size);
  const double se = std::sqrt(exact.p_two_sided * (1 - exact.p_two_sided) / 40000);
  EXPECT_NEAR(s.p_two_sided, exact.p_two_sided, 4 * se + 1e-4) << exact.p_two_sided;
  EXPECT_NEAR(s.p_one_sided, exact.p_one_sided, 4 * std::sqrt(exact.p_one_sided * (1 - exact.p_one_sided) / 40000) + 1e-4);
}

TEST(Weat, NoAssociationNoEvidence) {
  // 200 null WEATs (targets and attributes unrelated): two-sided p-values are
  // valid, about 1% below 0.01 (at most 6 allowed here).
  int small = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const Planted p(6, 6, 0.0, 100 + seed);
    small += weat(p.x, p.y, p.a, p.b, {}).p_two_sided < 0.01;
  }
  EXPECT_LE(small, 6);
}

TEST(Weat, BadArguments) {
  const Planted p(3, 3, 1.0, 4);
  EXPECT_THROW(weat({}, p.y, p.a, p.b, {}), Error);
  EXPECT_THROW(weat(p.x, p.y, {}, p.b, {}), Error);
  Vectors short_x = p.x;
  short_x[0].pop_back();
  EXPECT_THROW(weat(short_x, p.y, p.a, p.b, {}), Error);
  // Identical targets: d undefined (NaN), p = 1.
  const Vectors same(4, p.x[0]);
  const WeatResult r = weat(same, same, p.a, p.b, {});
  EXPECT_TRUE(std::isnan(r.effect_size));
  EXPECT_EQ(r.p_two_sided, 1.0);
}

TEST(TermList, ParsesWordsPhrasesIdsAndComments) {
  const TermList l = parse_term_list("\xEF\xBB\xBF# group terms\nwoman\n  young woman \r\n\nwoman\nids: 5 7, 9\n", "a.txt", "a");
  EXPECT_EQ(l.name, "a");
  ASSERT_EQ(l.terms.size(), 3u);
  EXPECT_EQ(l.terms[1], "young woman");
  EXPECT_TRUE(l.given_ids[0].empty());
  EXPECT_EQ(l.given_ids[2], (std::vector<int32_t>{5, 7, 9}));
  ASSERT_EQ(l.warnings.size(), 1u);
  EXPECT_NE(l.warnings[0].find("line 5"), std::string::npos) << l.warnings[0];
}

TEST(TermList, BadListsAreClearErrors) {
  const auto message = [](std::string_view text) {
    try {
      parse_term_list(text, "list.txt", "list");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("# only a comment\n\n").find("list.txt: no terms"), std::string::npos);
  EXPECT_NE(message("ok\nids: 3 x\n").find("list.txt: line 2"), std::string::npos);
  EXPECT_NE(message("ids:\n").find("without token ids"), std::string::npos);
  EXPECT_NE(message("ids: -4\n").find("non-negative"), std::string::npos);
  EXPECT_NE(message(std::string("a\0b\n", 4)).find("NUL"), std::string::npos);
}

}  // namespace
}  // namespace tinyemo::analysis
