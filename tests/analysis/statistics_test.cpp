#include "analysis/statistics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "core/error.h"
#include "io/file.h"
#include "testing/testing.h"

namespace tinyemo::analysis {
namespace {

const nlohmann::json& reference() {
  static const nlohmann::json j =
      nlohmann::json::parse(read_file(testing::source_dir() / "tests/data/bias/reference.json"));
  return j;
}

CountTable to_table(const nlohmann::json& rows) {
  CountTable t;
  t.rows = static_cast<int>(rows.size());
  t.cols = static_cast<int>(rows[0].size());
  for (const auto& row : rows)
    for (const auto& v : row) t.counts.push_back(v.get<double>());
  return t;
}

double rel(double got, double want) { return want == 0.0 ? std::fabs(got) : std::fabs(got - want) / std::fabs(want); }

TEST(IncompleteGamma, MatchesMpmathTo1e12) {
  int n = 0;
  for (const auto& c : reference()["incomplete_gamma"]) {
    const double a = c["a"], x = c["x"], p = c["p"], q = c["q"];
    // Relative accuracy where the value is representable; tiny tails included.
    if (p > 1e-300) {
      EXPECT_LT(rel(regularized_gamma_p(a, x), p), 1e-12) << "P(" << a << ", " << x << ")";
    }
    if (q > 1e-300) {
      EXPECT_LT(rel(regularized_gamma_q(a, x), q), 1e-12) << "Q(" << a << ", " << x << ")";
    }
    ++n;
  }
  EXPECT_EQ(n, 56);
}

TEST(IncompleteGamma, EdgesAndBadArguments) {
  EXPECT_EQ(regularized_gamma_p(2.0, 0.0), 0.0);
  EXPECT_EQ(regularized_gamma_q(2.0, 0.0), 1.0);
  EXPECT_EQ(regularized_gamma_q(2.0, INFINITY), 0.0);
  // a = 1 is the exponential distribution: Q(1, x) = e^-x.
  EXPECT_NEAR(regularized_gamma_q(1.0, 3.0), std::exp(-3.0), 1e-15);
  EXPECT_THROW(regularized_gamma_p(0.0, 1.0), Error);
  EXPECT_THROW(regularized_gamma_q(1.0, -1.0), Error);
  EXPECT_THROW(regularized_gamma_q(1.0, NAN), Error);
}

TEST(ChiSquare, SurvivalFunctionMatchesMpmath) {
  for (const auto& c : reference()["chi_square_sf"]) {
    const double x = c["x"], df = c["df"], sf = c["sf"];
    EXPECT_LT(rel(chi_square_sf(x, df), sf), 1e-12) << "x=" << x << " df=" << df;
  }
  // The 5% critical values every table prints.
  EXPECT_NEAR(chi_square_sf(3.841458820694124, 1), 0.05, 1e-12);
  EXPECT_NEAR(chi_square_sf(11.070497693516351, 5), 0.05, 1e-12);
}

TEST(ChiSquare, TextbookTables) {
  for (const auto& c : reference()["chi_square_tables"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const ChiSquareTest t = chi_square_independence(to_table(c["table"]));
    EXPECT_LT(rel(t.statistic, c["statistic"]), 1e-12);
    EXPECT_EQ(t.df, c["df"].get<int>());
    EXPECT_LT(rel(t.p_value, c["p_value"]), 1e-10);
    EXPECT_LT(rel(t.cramers_v, c["cramers_v"]), 1e-12);
    EXPECT_LT(rel(t.min_expected, c["min_expected"]), 1e-12);
  }
  // Agresti's party identification table: X^2 = 30.1 on 2 df as printed.
  const auto t = chi_square_independence(to_table(reference()["chi_square_tables"][0]["table"]));
  EXPECT_NEAR(t.statistic, 30.07, 0.01);
  EXPECT_LT(t.p_value, 1e-6);
}

TEST(ChiSquare, DegenerateTablesAreUndefinedNotCrashes) {
  CountTable one_row{1, 3, {4, 5, 6}};
  auto t = chi_square_independence(one_row);
  EXPECT_FALSE(t.defined());
  EXPECT_EQ(t.p_value, 1.0);
  CountTable zeros{2, 2, {0, 0, 0, 0}};
  EXPECT_FALSE(chi_square_independence(zeros).defined());
  // Perfect association in a 2x2: V = 1.
  CountTable diagonal{2, 2, {10, 0, 0, 10}};
  EXPECT_NEAR(chi_square_independence(diagonal).cramers_v, 1.0, 1e-15);
  CountTable negative{1, 2, {1, -1}};
  EXPECT_THROW(chi_square_independence(negative), Error);
}

TEST(BenjaminiHochberg, PaperExample) {
  const auto& r = reference()["benjamini_hochberg"];
  const auto p = r["p_values"].get<std::vector<double>>();
  const auto want = r["adjusted"].get<std::vector<double>>();
  const auto adjusted = benjamini_hochberg(p);
  ASSERT_EQ(adjusted.size(), want.size());
  int rejected = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(adjusted[i], want[i], 1e-15) << i;
    rejected += adjusted[i] <= 0.05;
  }
  EXPECT_EQ(rejected, 4);  // as in the paper at q = 0.05
  // The adjustment does not depend on the input order.
  const auto order = r["shuffled_order"].get<std::vector<int>>();
  std::vector<double> shuffled;
  for (int i : order) shuffled.push_back(p[i]);
  const auto adjusted_shuffled = benjamini_hochberg(shuffled);
  for (size_t k = 0; k < order.size(); ++k) EXPECT_EQ(adjusted_shuffled[k], adjusted[order[k]]);
  EXPECT_TRUE(benjamini_hochberg({}).empty());
  EXPECT_THROW(benjamini_hochberg({0.5, 1.5}), Error);
}

TEST(MantelHaenszel, UcbAdmissions) {
  const auto& r = reference()["mantel_haenszel"];
  std::vector<Table2x2> strata;
  for (const auto& s : r["strata"]) strata.push_back({s[0], s[1], s[2], s[3]});
  const auto plain = mantel_haenszel(strata, false);
  EXPECT_LT(rel(plain.statistic, r["uncorrected"]["statistic"]), 1e-12);
  EXPECT_LT(rel(plain.p_value, r["uncorrected"]["p_value"]), 1e-10);
  EXPECT_LT(rel(plain.risk_difference, r["uncorrected"]["risk_difference"]), 1e-12);
  EXPECT_EQ(plain.strata_used, 6);
  const auto corrected = mantel_haenszel(strata, true);
  EXPECT_LT(rel(corrected.statistic, r["corrected"]["statistic"]), 1e-12);
  EXPECT_NEAR(corrected.statistic, 1.4269, 5e-5);  // R's printed value
  EXPECT_NEAR(corrected.p_value, 0.2323, 5e-5);
}

TEST(Quantile, Type7) {
  std::vector<double> v = {5, 1, 4, 2, 3};
  EXPECT_DOUBLE_EQ(quantile(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(quantile(v, 0.5), 3.0);
  EXPECT_DOUBLE_EQ(quantile(v, 0.1), 1.4);
  EXPECT_DOUBLE_EQ(quantile(v, 1.0), 5.0);
  std::vector<double> empty;
  EXPECT_THROW(quantile(empty, 0.5), Error);
}

TEST(Rng, ReproducibleBoundedAndUniform) {
  Rng a = Rng::stream(42, 7), b = Rng::stream(42, 7), c = Rng::stream(42, 8);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    differs |= x != c.next();
  }
  EXPECT_TRUE(differs);
  // below(6) is uniform: chi-square goodness of fit over 60,000 draws.
  Rng r(1);
  CountTable t{2, 6, std::vector<double>(12, 0.0)};
  for (int i = 0; i < 60000; ++i) t.counts[r.below(6)] += 1.0;
  for (int k = 0; k < 6; ++k) t.counts[6 + k] = 10000.0;  // a perfectly uniform reference row
  EXPECT_GT(chi_square_independence(t).p_value, 1e-4);
  for (int i = 0; i < 1000; ++i) {
    const double u = r.uniform();
    EXPECT_TRUE(u >= 0.0 && u < 1.0);
  }
}

// Student t quantiles from printed tables (to their 1e-9 digits) and CDF
// values from a Simpson integration of the density (200,000 panels).
TEST(StudentT, QuantilesAndCdf) {
  EXPECT_NEAR(student_t_quantile(0.975, 9), 2.2621571627982053, 1e-9);
  EXPECT_NEAR(student_t_quantile(0.975, 4), 2.7764451051977987, 1e-9);
  EXPECT_NEAR(student_t_quantile(0.975, 1), 12.706204736174698, 1e-8);
  EXPECT_NEAR(student_t_quantile(0.975, 29), 2.045229642132703, 1e-9);
  EXPECT_NEAR(student_t_quantile(0.025, 9), -2.2621571627982053, 1e-9);
  EXPECT_NEAR(student_t_quantile(0.5, 7), 0.0, 1e-12);
  EXPECT_NEAR(student_t_cdf(-1.5, 3), 0.11529193262241133, 1e-10);
  EXPECT_NEAR(student_t_cdf(0.7, 2.5), 0.7282975284052267, 1e-10);
  EXPECT_NEAR(regularized_beta(0.3, 2.0, 3.0), 0.3483, 1e-12);  // 1 - (1-x)^4 - 4x(1-x)^3 = 0.3483
  EXPECT_THROW(student_t_quantile(1.0, 3), Error);
  EXPECT_THROW(student_t_cdf(1.0, 0), Error);
}

}  // namespace
}  // namespace tinyemo::analysis
