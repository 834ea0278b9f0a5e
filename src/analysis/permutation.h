// Permutation tests of "group membership is exchangeable" for statistics that
// are functions of a group x category count table (optionally one table per
// stratum, with group labels permuted only within strata). Every replicate
// shuffles once and hands the whole count table to one callback that
// computes all statistics together, so testing every (group, emotion) pair
// costs one shuffle per replicate, not one per pair.
//
// p-values are two-sided: p = (1 + #{|T*| >= |T|}) / (1 + B). With
// `sequential_h` > 0 a statistic stops counting at its h-th exceedance
// (Besag & Clifford 1991): p = h / l where l is the replicate of that
// exceedance; statistics that never reach h keep (1 + g) / (1 + B). The run
// ends when every statistic has stopped, so clearly null statistics cost a few
// hundred replicates while small p-values keep full resolution.
//
// Replicates are generated in fixed-size chunks, each with its own random
// stream (seed, chunk index), so results are identical for any thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace tinyemo::analysis {

struct PermutationDesign {
  int num_groups = 0;
  int num_categories = 0;
  int num_strata = 1;
  std::vector<int> group;     // per item, in [0, num_groups)
  std::vector<int> category;  // per item, in [0, num_categories)
  std::vector<int> stratum;   // per item, in [0, num_strata); empty = one stratum
};

// counts[(stratum * num_groups + group) * num_categories + category]
using CountTable3 = std::vector<double>;
// Writes `num_statistics` values for one count table.
using CountStatistics = std::function<void(const CountTable3& counts, double* statistics)>;

struct PermutationOptions {
  int64_t replicates = 10000;
  uint64_t seed = 0;
  int sequential_h = 0;  // 0: always run all replicates
};

struct PermutationResult {
  std::vector<double> observed;
  std::vector<double> p_value;
  std::vector<int64_t> exceedances;    // counted up to each statistic's stopping replicate
  std::vector<int64_t> replicates_used;  // l for stopped statistics, else B
  std::vector<double> null_mean;       // mean and standard deviation of T* over all replicates run
  std::vector<double> null_sd;
  int64_t replicates_run = 0;
  // (T - mean) / sd of the permutation distribution; 0 when sd = 0.
  double z(size_t i) const;
};

// The observed count table of a design.
CountTable3 count_table(const PermutationDesign& design);

PermutationResult permutation_test(const PermutationDesign& design, int num_statistics,
                                   const CountStatistics& statistics, const PermutationOptions& options);

}  // namespace tinyemo::analysis
