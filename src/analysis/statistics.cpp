#include "analysis/statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace tinyemo::analysis {
namespace {

constexpr double kEpsilon = 1e-16;
constexpr double kTiny = 1e-300;
constexpr int kMaxIterations = 1000000;

// x^a e^-x / Gamma(a), the common prefactor of the series and the fraction.
double gamma_prefactor(double a, double x) { return std::exp(a * std::log(x) - x - std::lgamma(a)); }

// P(a, x) by its power series: sum_n x^n / (a (a+1) ... (a+n)), x < a + 1.
double gamma_p_series(double a, double x) {
  double term = 1.0 / a, sum = term, ap = a;
  for (int n = 0; n < kMaxIterations; ++n) {
    ap += 1.0;
    term *= x / ap;
    sum += term;
    if (std::fabs(term) < std::fabs(sum) * kEpsilon) return sum * gamma_prefactor(a, x);
  }
  fail("incomplete gamma series did not converge (a={}, x={})", a, x);
}

// Q(a, x) by its continued fraction (modified Lentz), x >= a + 1.
double gamma_q_fraction(double a, double x) {
  double b = x + 1.0 - a, c = 1.0 / kTiny, d = 1.0 / b, h = d;
  for (int i = 1; i < kMaxIterations; ++i) {
    const double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1.0) < kEpsilon) return h * gamma_prefactor(a, x);
  }
  fail("incomplete gamma continued fraction did not converge (a={}, x={})", a, x);
}

void check_gamma_args(double a, double x) {
  TE_CHECK(a > 0.0 && std::isfinite(a), "incomplete gamma: shape a must be positive and finite (got {})", a);
  TE_CHECK(x >= 0.0 && !std::isnan(x), "incomplete gamma: x must be >= 0 (got {})", x);
}

}  // namespace

double regularized_gamma_p(double a, double x) {
  check_gamma_args(a, x);
  if (x == 0.0) return 0.0;
  if (std::isinf(x)) return 1.0;
  return x < a + 1.0 ? gamma_p_series(a, x) : 1.0 - gamma_q_fraction(a, x);
}

double regularized_gamma_q(double a, double x) {
  check_gamma_args(a, x);
  if (x == 0.0) return 1.0;
  if (std::isinf(x)) return 0.0;
  return x < a + 1.0 ? 1.0 - gamma_p_series(a, x) : gamma_q_fraction(a, x);
}

double chi_square_sf(double x, double df) {
  TE_CHECK(df > 0.0, "chi-square: degrees of freedom must be positive (got {})", df);
  if (x <= 0.0) return 1.0;
  return regularized_gamma_q(0.5 * df, 0.5 * x);
}

namespace {

struct Margins {
  std::vector<double> row, col;
  double total = 0.0;
};

Margins margins(const CountTable& t) {
  TE_CHECK(t.rows >= 0 && t.cols >= 0 && t.counts.size() == static_cast<size_t>(t.rows) * t.cols,
           "contingency table: {} counts for {}x{}", t.counts.size(), t.rows, t.cols);
  Margins m{std::vector<double>(t.rows, 0.0), std::vector<double>(t.cols, 0.0), 0.0};
  for (int r = 0; r < t.rows; ++r) {
    for (int c = 0; c < t.cols; ++c) {
      const double v = t.at(r, c);
      TE_CHECK(v >= 0.0 && std::isfinite(v), "contingency table: count [{}, {}] is {}", r, c, v);
      m.row[r] += v;
      m.col[c] += v;
    }
  }
  m.total = std::accumulate(m.row.begin(), m.row.end(), 0.0);
  return m;
}

}  // namespace

double pearson_statistic(const CountTable& t) {
  const Margins m = margins(t);
  if (m.total <= 0.0) return 0.0;
  double x2 = 0.0;
  for (int r = 0; r < t.rows; ++r) {
    if (m.row[r] <= 0.0) continue;
    for (int c = 0; c < t.cols; ++c) {
      if (m.col[c] <= 0.0) continue;
      const double expected = m.row[r] * m.col[c] / m.total;
      const double diff = t.at(r, c) - expected;
      x2 += diff * diff / expected;
    }
  }
  return x2;
}

ChiSquareTest chi_square_independence(const CountTable& t) {
  const Margins m = margins(t);
  ChiSquareTest test;
  test.n = m.total;
  test.rows_used = static_cast<int>(std::count_if(m.row.begin(), m.row.end(), [](double v) { return v > 0.0; }));
  test.cols_used = static_cast<int>(std::count_if(m.col.begin(), m.col.end(), [](double v) { return v > 0.0; }));
  if (test.rows_used < 2 || test.cols_used < 2) return test;
  test.statistic = pearson_statistic(t);
  test.df = (test.rows_used - 1) * (test.cols_used - 1);
  test.p_value = chi_square_sf(test.statistic, test.df);
  test.cramers_v = std::sqrt(test.statistic / (m.total * (std::min(test.rows_used, test.cols_used) - 1)));
  test.min_expected = std::numeric_limits<double>::infinity();
  int below5 = 0;
  for (int r = 0; r < t.rows; ++r) {
    for (int c = 0; c < t.cols; ++c) {
      if (m.row[r] <= 0.0 || m.col[c] <= 0.0) continue;
      const double expected = m.row[r] * m.col[c] / m.total;
      test.min_expected = std::min(test.min_expected, expected);
      below5 += expected < 5.0;
    }
  }
  test.share_expected_below_5 = static_cast<double>(below5) / (test.rows_used * test.cols_used);
  return test;
}

MantelHaenszelTest mantel_haenszel(const std::vector<Table2x2>& strata, bool continuity) {
  MantelHaenszelTest test;
  double deviation = 0.0, variance = 0.0, rd_num = 0.0, rd_den = 0.0;
  for (const auto& [a, b, c, d] : strata) {
    const double exposed = a + b, unexposed = c + d, n = exposed + unexposed;
    if (exposed <= 0.0 || unexposed <= 0.0) continue;
    ++test.strata_used;
    const double outcome = a + c, no_outcome = b + d;
    deviation += a - exposed * outcome / n;
    if (n > 1.0) variance += exposed * unexposed * outcome * no_outcome / (n * n * (n - 1.0));
    const double weight = exposed * unexposed / n;
    rd_num += weight * (a / exposed - c / unexposed);
    rd_den += weight;
  }
  if (rd_den > 0.0) test.risk_difference = rd_num / rd_den;
  if (variance > 0.0) {
    const double dev = continuity ? std::max(0.0, std::fabs(deviation) - 0.5) : std::fabs(deviation);
    test.statistic = dev * dev / variance;
    test.p_value = chi_square_sf(test.statistic, 1.0);
  }
  return test;
}

std::vector<double> benjamini_hochberg(const std::vector<double>& p_values) {
  const size_t m = p_values.size();
  std::vector<size_t> order(m);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return p_values[i] < p_values[j]; });
  std::vector<double> adjusted(m);
  double running_min = 1.0;
  for (size_t rank = m; rank-- > 0;) {
    const size_t i = order[rank];
    TE_CHECK(p_values[i] >= 0.0 && p_values[i] <= 1.0, "Benjamini-Hochberg: p-value {} is outside [0, 1]", p_values[i]);
    running_min = std::min(running_min, p_values[i] * static_cast<double>(m) / static_cast<double>(rank + 1));
    adjusted[i] = running_min;
  }
  return adjusted;
}

double quantile(std::vector<double>& values, double q) {
  TE_CHECK(!values.empty(), "quantile of an empty sample");
  TE_CHECK(q >= 0.0 && q <= 1.0, "quantile level {} is outside [0, 1]", q);
  const double h = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(h));
  std::nth_element(values.begin(), values.begin() + lo, values.end());
  const double low = values[lo];
  if (lo + 1 >= values.size()) return low;
  const double high = *std::min_element(values.begin() + lo + 1, values.end());
  return low + (h - static_cast<double>(lo)) * (high - low);
}

namespace {

// The continued fraction of I_x(a, b) (modified Lentz), valid for x < (a + 1) / (a + b + 2).
double beta_fraction(double x, double a, double b) {
  constexpr double kTiny = 1e-300, kEps = 1e-15;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 10000; ++m) {
    const double m2 = 2.0 * m;
    double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    for (int half = 0; half < 2; ++half) {
      d = 1.0 + num * d;
      if (std::fabs(d) < kTiny) d = kTiny;
      c = 1.0 + num / c;
      if (std::fabs(c) < kTiny) c = kTiny;
      d = 1.0 / d;
      const double delta = d * c;
      h *= delta;
      if (half == 1 && std::fabs(delta - 1.0) < kEps) return h;
      num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    }
  }
  return h;
}

}  // namespace

double regularized_beta(double x, double a, double b) {
  TE_CHECK(a > 0.0 && b > 0.0 && x >= 0.0 && x <= 1.0, "incomplete beta: need a, b > 0 and 0 <= x <= 1 (got x {}, a {}, b {})",
           x, a, b);
  if (x == 0.0 || x == 1.0) return x;
  const double log_front = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1.0) / (a + b + 2.0)) return std::exp(log_front) * beta_fraction(x, a, b) / a;
  return 1.0 - std::exp(log_front) * beta_fraction(1.0 - x, b, a) / b;
}

double student_t_cdf(double t, double df) {
  TE_CHECK(df > 0.0, "Student t: degrees of freedom must be positive (got {})", df);
  if (std::isinf(t)) return t > 0 ? 1.0 : 0.0;
  // P(T > |t|); near 0 through P(|T| < |t|) = I_{t^2/(df+t^2)}(1/2, df/2), whose argument keeps its precision.
  const double t2 = t * t;
  const double tail = t2 < df ? 0.5 - 0.5 * regularized_beta(t2 / (df + t2), 0.5, 0.5 * df)
                              : 0.5 * regularized_beta(df / (df + t2), 0.5 * df, 0.5);
  return t > 0 ? 1.0 - tail : tail;
}

double student_t_quantile(double q, double df) {
  TE_CHECK(q > 0.0 && q < 1.0, "Student t quantile: level {} is outside (0, 1)", q);
  double lo = -1.0, hi = 1.0;
  while (student_t_cdf(lo, df) > q) lo *= 2.0;
  while (student_t_cdf(hi, df) < q) hi *= 2.0;
  for (int i = 0; i < 200 && hi - lo > 1e-13 * std::max(1.0, std::fabs(hi)); ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, df) < q ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace tinyemo::analysis
