#include "analysis/permutation.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace tinyemo::analysis {
namespace {

// Replicates per random stream, and the most chunks per round between
// stopping checks (rounds grow 1, 2, 4, 8, 8, ... chunks so that clearly null
// statistics stop after a few hundred replicates). Both are fixed so that
// results never depend on the number of threads.
constexpr int64_t kChunkReplicates = 256;
constexpr int64_t kMaxChunksPerRound = 8;

// Items of one stratum: their categories (shuffled in place by each
// replicate) and the group sizes, consecutive positions forming each group.
struct Stratum {
  std::vector<int> categories;
  std::vector<int64_t> group_sizes;
  std::vector<double> category_totals;
};

std::vector<Stratum> split_strata(const PermutationDesign& d) {
  const size_t n = d.group.size();
  TE_CHECK(d.num_groups > 0 && d.num_categories > 0 && d.num_strata > 0,
           "permutation test: {} groups, {} categories, {} strata", d.num_groups, d.num_categories, d.num_strata);
  TE_CHECK(d.category.size() == n && (d.stratum.empty() || d.stratum.size() == n),
           "permutation test: {} group labels, {} categories, {} strata labels", n, d.category.size(),
           d.stratum.size());
  std::vector<Stratum> strata(d.num_strata);
  for (auto& s : strata) {
    s.group_sizes.assign(d.num_groups, 0);
    s.category_totals.assign(d.num_categories, 0.0);
  }
  for (size_t i = 0; i < n; ++i) {
    const int s = d.stratum.empty() ? 0 : d.stratum[i];
    TE_CHECK(s >= 0 && s < d.num_strata && d.group[i] >= 0 && d.group[i] < d.num_groups && d.category[i] >= 0 &&
                 d.category[i] < d.num_categories,
             "permutation test: item {} has stratum {}, group {}, category {}", i, s, d.group[i], d.category[i]);
    strata[s].categories.push_back(d.category[i]);
    ++strata[s].group_sizes[d.group[i]];
    strata[s].category_totals[d.category[i]] += 1.0;
  }
  return strata;
}

// One chunk's tallies; first_hits[i] holds the chunk-relative replicate
// numbers of statistic i's first `h` exceedances (for the stopping rule).
struct ChunkTally {
  std::vector<int64_t> exceedances;
  std::vector<double> sum, sum_sq;
  std::vector<std::vector<int64_t>> first_hits;
  int64_t replicates = 0;
};

bool exceeds(double permuted, double observed) {
  const double tolerance = 1e-9 * std::max(1.0, std::fabs(observed));
  return std::fabs(permuted) >= std::fabs(observed) - tolerance;
}

ChunkTally run_chunk(std::vector<Stratum> strata, const PermutationDesign& d, int num_statistics,
                     const CountStatistics& statistics, const std::vector<double>& observed, uint64_t seed,
                     int64_t chunk, int64_t replicates, int h) {
  ChunkTally t;
  t.exceedances.assign(num_statistics, 0);
  t.sum.assign(num_statistics, 0.0);
  t.sum_sq.assign(num_statistics, 0.0);
  t.first_hits.resize(num_statistics);
  t.replicates = replicates;
  Rng rng = Rng::stream(seed, static_cast<uint64_t>(chunk));
  CountTable3 counts(static_cast<size_t>(d.num_strata) * d.num_groups * d.num_categories);
  std::vector<double> stats(num_statistics);
  for (int64_t r = 0; r < replicates; ++r) {
    std::fill(counts.begin(), counts.end(), 0.0);
    for (int s = 0; s < d.num_strata; ++s) {
      auto& cats = strata[s].categories;
      const auto n = static_cast<int64_t>(cats.size());
      double* base = counts.data() + static_cast<size_t>(s) * d.num_groups * d.num_categories;
      // Positions are dealt to groups in order; each is final once swapped in,
      // so it is counted in the same pass. The last group takes what is left:
      // its counts are the stratum's totals minus the others'.
      int64_t pos = 0;
      for (int g = 0; g + 1 < d.num_groups; ++g) {
        double* row = base + static_cast<size_t>(g) * d.num_categories;
        for (const int64_t end = pos + strata[s].group_sizes[g]; pos < end; ++pos) {
          const auto j = pos + static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - pos)));
          std::swap(cats[pos], cats[j]);
          row[cats[pos]] += 1.0;
        }
      }
      double* last = base + static_cast<size_t>(d.num_groups - 1) * d.num_categories;
      for (int c = 0; c < d.num_categories; ++c) {
        double rest = strata[s].category_totals[c];
        for (int g = 0; g + 1 < d.num_groups; ++g) rest -= base[static_cast<size_t>(g) * d.num_categories + c];
        last[c] = rest;
      }
    }
    statistics(counts, stats.data());
    for (int i = 0; i < num_statistics; ++i) {
      t.sum[i] += stats[i];
      t.sum_sq[i] += stats[i] * stats[i];
      if (exceeds(stats[i], observed[i])) {
        ++t.exceedances[i];
        if (static_cast<int>(t.first_hits[i].size()) < h) t.first_hits[i].push_back(r);
      }
    }
  }
  return t;
}

}  // namespace

double PermutationResult::z(size_t i) const {
  return null_sd[i] > 0.0 ? (observed[i] - null_mean[i]) / null_sd[i] : 0.0;
}

CountTable3 count_table(const PermutationDesign& d) {
  CountTable3 counts(static_cast<size_t>(d.num_strata) * d.num_groups * d.num_categories, 0.0);
  split_strata(d);  // validates
  for (size_t i = 0; i < d.group.size(); ++i) {
    const int s = d.stratum.empty() ? 0 : d.stratum[i];
    counts[(static_cast<size_t>(s) * d.num_groups + d.group[i]) * d.num_categories + d.category[i]] += 1.0;
  }
  return counts;
}

PermutationResult permutation_test(const PermutationDesign& d, int num_statistics, const CountStatistics& statistics,
                                   const PermutationOptions& options) {
  TE_CHECK(options.replicates >= 1, "permutation test: need at least 1 replicate (got {})", options.replicates);
  TE_CHECK(options.sequential_h >= 0, "permutation test: sequential h must be >= 0");
  const std::vector<Stratum> strata = split_strata(d);
  PermutationResult result;
  result.observed.assign(num_statistics, 0.0);
  statistics(count_table(d), result.observed.data());

  const int h = options.sequential_h;
  const int64_t B = options.replicates;
  const int64_t num_chunks = (B + kChunkReplicates - 1) / kChunkReplicates;
  std::vector<int64_t> exceedances(num_statistics, 0), stopped_at(num_statistics, 0);
  std::vector<double> sum(num_statistics, 0.0), sum_sq(num_statistics, 0.0);
  int64_t done = 0;
  int64_t round_size = h > 0 ? 1 : kMaxChunksPerRound;
  for (int64_t round_begin = 0; round_begin < num_chunks;
       round_begin += round_size, round_size = std::min(2 * round_size, kMaxChunksPerRound)) {
    const int64_t round_chunks = std::min(round_size, num_chunks - round_begin);
    std::vector<ChunkTally> tallies(round_chunks);
    thread_pool().run(round_chunks, [&](int64_t k, int) {
      const int64_t chunk = round_begin + k;
      const int64_t reps = std::min(kChunkReplicates, B - chunk * kChunkReplicates);
      tallies[k] = run_chunk(strata, d, num_statistics, statistics, result.observed, options.seed, chunk, reps, h);
    });
    // Merge in chunk order so each statistic's stopping replicate is exact.
    bool all_stopped = h > 0;
    for (const ChunkTally& t : tallies) {
      for (int i = 0; i < num_statistics; ++i) {
        sum[i] += t.sum[i];
        sum_sq[i] += t.sum_sq[i];
        if (stopped_at[i] > 0) continue;
        if (h > 0 && exceedances[i] + t.exceedances[i] >= h) {
          const int64_t needed = h - exceedances[i];
          stopped_at[i] = done + t.first_hits[i][needed - 1] + 1;
          exceedances[i] = h;
        } else {
          exceedances[i] += t.exceedances[i];
        }
      }
      done += t.replicates;
    }
    for (int i = 0; i < num_statistics && all_stopped; ++i) all_stopped = stopped_at[i] > 0;
    if (all_stopped) break;
  }

  result.replicates_run = done;
  result.exceedances = exceedances;
  result.p_value.resize(num_statistics);
  result.replicates_used.resize(num_statistics);
  result.null_mean.resize(num_statistics);
  result.null_sd.resize(num_statistics);
  for (int i = 0; i < num_statistics; ++i) {
    if (stopped_at[i] > 0) {
      result.replicates_used[i] = stopped_at[i];
      result.p_value[i] = static_cast<double>(h) / static_cast<double>(stopped_at[i]);
    } else {
      result.replicates_used[i] = B;
      result.p_value[i] = static_cast<double>(1 + exceedances[i]) / static_cast<double>(1 + B);
    }
    const double mean = sum[i] / static_cast<double>(done);
    result.null_mean[i] = mean;
    result.null_sd[i] = std::sqrt(std::max(0.0, sum_sq[i] / static_cast<double>(done) - mean * mean));
  }
  return result;
}

}  // namespace tinyemo::analysis
