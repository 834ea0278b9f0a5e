#include "analysis/weat.h"

#include <cmath>
#include <limits>
#include <numeric>

#include "core/rng.h"
#include "core/error.h"

namespace tinyemo::analysis {
namespace {

// Number of k-subsets of n, saturating at `cap` + 1.
int64_t choose_capped(int n, int k, int64_t cap) {
  double c = 1.0;
  for (int i = 1; i <= k; ++i) {
    c = c * (n - k + i) / i;
    if (c > static_cast<double>(cap)) return cap + 1;
  }
  return static_cast<int64_t>(std::llround(c));
}

bool at_least(double value, double observed) {
  return value >= observed - 1e-12 * std::max(1.0, std::fabs(observed));
}

}  // namespace

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  TE_CHECK(a.size() == b.size(), "cosine of vectors of sizes {} and {}", a.size(), b.size());
  double ab = 0.0, aa = 0.0, bb = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return aa > 0.0 && bb > 0.0 ? ab / std::sqrt(aa * bb) : 0.0;
}

double association(const std::vector<float>& w, const Vectors& a, const Vectors& b) {
  double sa = 0.0, sb = 0.0;
  for (const auto& v : a) sa += cosine(w, v);
  for (const auto& v : b) sb += cosine(w, v);
  return sa / static_cast<double>(a.size()) - sb / static_cast<double>(b.size());
}

WeatResult weat(const Vectors& x, const Vectors& y, const Vectors& a, const Vectors& b, const WeatOptions& o) {
  TE_CHECK(!x.empty() && !y.empty(), "WEAT: both target sets need at least one term ({} and {})", x.size(), y.size());
  TE_CHECK(!a.empty() && !b.empty(), "WEAT: both attribute sets need at least one vector ({} and {})", a.size(),
           b.size());
  TE_CHECK(o.permutations >= 1, "WEAT: need at least one permutation");
  WeatResult r;
  for (const auto& w : x) r.s_x.push_back(association(w, a, b));
  for (const auto& w : y) r.s_y.push_back(association(w, a, b));
  std::vector<double> all = r.s_x;
  all.insert(all.end(), r.s_y.begin(), r.s_y.end());
  const int nx = static_cast<int>(x.size()), n = static_cast<int>(all.size());
  const double sum_x = std::accumulate(r.s_x.begin(), r.s_x.end(), 0.0);
  const double total = std::accumulate(all.begin(), all.end(), 0.0);
  r.statistic = 2.0 * sum_x - total;
  const double mean = total / n;
  double ss = 0.0;
  for (double v : all) ss += (v - mean) * (v - mean);
  const double sd = n > 1 ? std::sqrt(ss / (n - 1)) : 0.0;
  const double diff = sum_x / nx - (total - sum_x) / (n - nx);
  r.effect_size = sd > 0.0 ? diff / sd : std::numeric_limits<double>::quiet_NaN();

  // S_i = 2 sum(X_i) - total; its mean over partitions is total (nx - ny) / n.
  const double centre = total * (2.0 * nx - n) / n;
  const double observed_dev = std::fabs(r.statistic - centre);
  int64_t ge = 0, ge_abs = 0;
  const auto tally = [&](double subset_sum) {
    const double s = 2.0 * subset_sum - total;
    ge += at_least(s, r.statistic);
    ge_abs += at_least(std::fabs(s - centre), observed_dev);
  };
  const int64_t count = n <= 62 ? choose_capped(n, nx, o.exact_limit) : o.exact_limit + 1;
  if (count <= o.exact_limit) {
    // Every nx-subset of n items as a bit mask, in Gosper's order.
    r.exact = true;
    uint64_t mask = (uint64_t{1} << nx) - 1;
    const uint64_t end = uint64_t{1} << n;
    while (mask < end) {
      double s = 0.0;
      for (uint64_t m = mask; m; m &= m - 1) s += all[__builtin_ctzll(m)];
      tally(s);
      ++r.partitions;
      const uint64_t low = mask & (0 - mask), ripple = mask + low;
      mask = (((ripple ^ mask) >> 2) / low) | ripple;
    }
    r.p_one_sided = static_cast<double>(ge) / static_cast<double>(r.partitions);
    r.p_two_sided = static_cast<double>(ge_abs) / static_cast<double>(r.partitions);
  } else {
    Rng rng = Rng::stream(o.seed, o.stream);
    std::vector<int> index(n);
    std::iota(index.begin(), index.end(), 0);
    for (int64_t rep = 0; rep < o.permutations; ++rep) {
      double s = 0.0;
      for (int i = 0; i < nx; ++i) {
        const auto j = i + static_cast<int>(rng.below(static_cast<uint64_t>(n - i)));
        std::swap(index[i], index[j]);
        s += all[index[i]];
      }
      tally(s);
    }
    r.partitions = o.permutations;
    r.p_one_sided = static_cast<double>(1 + ge) / static_cast<double>(1 + o.permutations);
    r.p_two_sided = static_cast<double>(1 + ge_abs) / static_cast<double>(1 + o.permutations);
  }
  return r;
}

}  // namespace tinyemo::analysis
