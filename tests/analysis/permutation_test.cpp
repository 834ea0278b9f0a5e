#include "analysis/permutation.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/thread_pool.h"

namespace tinyemo::analysis {
namespace {

double choose(int n, int k) { return std::exp(std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0)); }

// Two groups, binary outcome; statistic = outcome rate in group 0 - in group 1.
struct TwoByTwo {
  PermutationDesign design;
  int n0, n1, ones;
  TwoByTwo(int n0_, int n1_, int ones_in_0, int ones_in_1) : n0(n0_), n1(n1_), ones(ones_in_0 + ones_in_1) {
    design.num_groups = 2;
    design.num_categories = 2;
    for (int i = 0; i < n0; ++i) {
      design.group.push_back(0);
      design.category.push_back(i < ones_in_0 ? 1 : 0);
    }
    for (int i = 0; i < n1; ++i) {
      design.group.push_back(1);
      design.category.push_back(i < ones_in_1 ? 1 : 0);
    }
  }
  double stat(double x) const { return x / n0 - (ones - x) / n1; }
  CountStatistics statistic() const {
    return [this](const CountTable3& c, double* out) { out[0] = stat(c[1]); };
  }
  // Exact two-sided p-value from the hypergeometric distribution of the count.
  double exact_p(int observed_ones_in_0) const {
    const double obs = std::fabs(stat(observed_ones_in_0));
    double p = 0.0;
    for (int x = std::max(0, ones - n1); x <= std::min(ones, n0); ++x) {
      if (std::fabs(stat(x)) >= obs - 1e-12) p += choose(ones, x) * choose(n0 + n1 - ones, n0 - x) / choose(n0 + n1, n0);
    }
    return p;
  }
};

TEST(Permutation, MatchesExactHypergeometricPValue) {
  const TwoByTwo t(6, 8, 4, 1);
  const double exact = t.exact_p(4);
  const int64_t B = 40000;
  const auto r = permutation_test(t.design, 1, t.statistic(), {B, 11, 0});
  const double se = std::sqrt(exact * (1 - exact) / B);
  EXPECT_NEAR(r.p_value[0], exact, 4 * se + 1.0 / B) << "exact " << exact;
  EXPECT_EQ(r.replicates_run, B);
  // Null mean of a rate difference under exchangeability is 0.
  EXPECT_NEAR(r.null_mean[0], 0.0, 4 * r.null_sd[0] / std::sqrt(double(B)));
}

TEST(Permutation, SameResultForAnyThreadCount) {
  const TwoByTwo t(40, 60, 15, 10);
  const int before = num_threads();
  set_num_threads(1);
  const auto one = permutation_test(t.design, 1, t.statistic(), {3000, 5, 0});
  set_num_threads(2);
  const auto two = permutation_test(t.design, 1, t.statistic(), {3000, 5, 0});
  set_num_threads(before);
  EXPECT_EQ(one.p_value, two.p_value);
  EXPECT_EQ(one.null_mean, two.null_mean);
  const auto other_seed = permutation_test(t.design, 1, t.statistic(), {3000, 6, 0});
  EXPECT_NE(one.null_mean, other_seed.null_mean);
}

TEST(Permutation, StrataKeepTheirGroupSizes) {
  // Stratum 0 is all group 0, stratum 1 mixes groups: permuting within strata
  // must keep "group 0 items in stratum 0" fixed, and the expected count of
  // cell (k, g, e) under the null is n_kg * C_ke / n_k.
  PermutationDesign d{2, 3, 2, {}, {}, {}};
  for (int i = 0; i < 30; ++i) {
    d.group.push_back(i < 10 || i % 3 == 0 ? 0 : 1);
    d.stratum.push_back(i < 10 ? 0 : 1);
    d.category.push_back(i % 3 == 1 ? 2 : (i * 7) % 3);
  }
  const CountTable3 observed = count_table(d);
  const auto r = permutation_test(
      d, 2,
      [](const CountTable3& c, double* out) {
        out[0] = c[0] + c[1] + c[2];   // stratum 0, group 0, all categories
        out[1] = c[6 + 0 * 3 + 2];     // stratum 1, group 0, category 2
      },
      {4000, 3, 0});
  EXPECT_EQ(r.null_sd[0], 0.0);
  EXPECT_EQ(r.p_value[0], 1.0);
  double n_10 = 0, c_12 = 0, n_1 = 0;
  for (int g = 0; g < 2; ++g) {
    for (int e = 0; e < 3; ++e) {
      const double v = observed[(1 * 2 + g) * 3 + e];
      n_1 += v;
      if (g == 0) n_10 += v;
      if (e == 2) c_12 += v;
    }
  }
  EXPECT_NEAR(r.null_mean[1], n_10 * c_12 / n_1, 4 * r.null_sd[1] / std::sqrt(4000.0));
}

TEST(Permutation, SequentialStopsEarlyForNullAndKeepsResolutionForStrong) {
  const TwoByTwo null_case(50, 50, 20, 19);
  const auto r = permutation_test(null_case.design, 1, null_case.statistic(), {10000, 1, 10});
  EXPECT_LT(r.replicates_run, 10000);
  EXPECT_EQ(r.exceedances[0], 10);
  EXPECT_NEAR(r.p_value[0], null_case.exact_p(20), 0.35);  // h = 10: a coarse but valid estimate
  EXPECT_DOUBLE_EQ(r.p_value[0], 10.0 / r.replicates_used[0]);
  const TwoByTwo strong(50, 50, 40, 5);
  const auto s = permutation_test(strong.design, 1, strong.statistic(), {10000, 1, 10});
  EXPECT_EQ(s.replicates_run, 10000);
  EXPECT_DOUBLE_EQ(s.p_value[0], 1.0 / 10001.0);
}

TEST(Permutation, RejectsInconsistentDesigns) {
  const auto stat = [](const CountTable3&, double* out) { out[0] = 0; };
  PermutationDesign bad{2, 2, 1, {0, 1, 2}, {0, 1, 0}, {}};
  EXPECT_THROW(permutation_test(bad, 1, stat, {10, 0, 0}), Error);
  PermutationDesign mismatch{2, 2, 1, {0, 1}, {0}, {}};
  EXPECT_THROW(permutation_test(mismatch, 1, stat, {10, 0, 0}), Error);
  PermutationDesign ok{2, 2, 1, {0, 1}, {0, 1}, {}};
  EXPECT_THROW(permutation_test(ok, 1, stat, {0, 0, 0}), Error);
}

}  // namespace
}  // namespace tinyemo::analysis
