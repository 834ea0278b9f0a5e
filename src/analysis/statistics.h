// Classical statistics the bias audit reports: the regularised incomplete
// gamma function (chi-square p-values), Pearson's chi-square test of
// independence with Cramer's V, the Cochran-Mantel-Haenszel test and
// Mantel-Haenszel risk difference for stratified 2x2 tables, the
// Benjamini-Hochberg adjustment, and sample quantiles for bootstrap intervals.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tinyemo::analysis {

// P(a, x) = gamma(a, x) / Gamma(a) and Q(a, x) = 1 - P(a, x), a > 0, x >= 0.
// Series for x < a + 1, Lentz's continued fraction otherwise, each computed
// directly (never as 1 - the other) so tiny tail probabilities keep their
// relative accuracy (about 1e-14).
double regularized_gamma_p(double a, double x);
double regularized_gamma_q(double a, double x);

// Upper tail of the chi-square distribution with `df` degrees of freedom.
double chi_square_sf(double x, double df);

// A contingency table of counts, rows x columns (row-major).
struct CountTable {
  int rows = 0;
  int cols = 0;
  std::vector<double> counts;
  double at(int r, int c) const { return counts[static_cast<size_t>(r) * cols + c]; }
};

struct ChiSquareTest {
  double statistic = 0.0;
  int df = 0;
  double p_value = 1.0;
  double cramers_v = 0.0;
  double n = 0.0;
  int rows_used = 0;  // rows / columns with a non-zero total (empty ones are dropped)
  int cols_used = 0;
  double min_expected = 0.0;
  double share_expected_below_5 = 0.0;  // Cochran's rule: the chi-square approximation is poor above 0.2
  bool defined() const { return df > 0; }
};

// Pearson's X^2 test of independence (no continuity correction) with Cramer's
// V = sqrt(X^2 / (n (min(r, c) - 1))) over the non-empty rows and columns.
// Fewer than two non-empty rows or columns: df = 0, p = 1.
ChiSquareTest chi_square_independence(const CountTable& table);

// Pearson's X^2 statistic only (the permutation engine calls this per replicate).
double pearson_statistic(const CountTable& table);

// One stratum's 2x2 table: a = exposed & outcome, b = exposed & not,
// c = unexposed & outcome, d = unexposed & not.
using Table2x2 = std::array<double, 4>;

struct MantelHaenszelTest {
  double statistic = 0.0;        // CMH chi-square, 1 df
  double p_value = 1.0;
  double risk_difference = 0.0;  // MH-weighted difference in outcome rate, exposed - unexposed
  int strata_used = 0;           // strata with both exposure levels present
};

// Cochran-Mantel-Haenszel test of conditional independence across strata and
// the Mantel-Haenszel risk difference (weights n1 n0 / n). `continuity`:
// subtract 0.5 from |sum(a - E[a])| as R's mantelhaen.test does by default.
MantelHaenszelTest mantel_haenszel(const std::vector<Table2x2>& strata, bool continuity = false);

// Benjamini-Hochberg adjusted p-values (step-up; R's p.adjust(method = "BH")),
// in the input order.
std::vector<double> benjamini_hochberg(const std::vector<double>& p_values);

// I_x(a, b), the regularised incomplete beta function (a, b > 0, 0 <= x <= 1),
// by its continued fraction (modified Lentz), about 1e-14 relative.
double regularized_beta(double x, double a, double b);

// Student's t distribution with `df` > 0 degrees of freedom: P(T <= t), and
// the q-quantile (0 < q < 1).
double student_t_cdf(double t, double df);
double student_t_quantile(double q, double df);

// Sample quantile with linear interpolation between order statistics
// (Hyndman-Fan type 7, numpy's default); `values` is reordered.
double quantile(std::vector<double>& values, double q);

}  // namespace tinyemo::analysis
