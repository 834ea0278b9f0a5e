// Permutation tests of the bias audit: ~1,400 images (Emotion6's size), 6
// emotions, 2/5/10 groups, 10,000 replicates. Compares the engine (one shuffle
// per replicate updates every (group, emotion) statistic) with testing each
// pair on its own (one permutation run per pair, the anchor), and reports the
// cost per image per replicate (each replicate must at least draw a random
// number and move one label per image). Prints one JSON object.
#include <fmt/format.h>

#include <time.h>

#include <cstdio>

#include "analysis/group_audit.h"
#include "analysis/permutation.h"
#include "core/rng.h"
#include "bench_util.h"
#include "core/thread_pool.h"

using namespace tinyemo;
using namespace tinyemo::analysis;

namespace {

constexpr int kImages = 1386, kLabels = 6;
constexpr int64_t kReplicates = 10000;

AuditData synthetic(int groups) {
  AuditData d;
  for (int e = 0; e < kLabels; ++e) d.labels.push_back(fmt::format("e{}", e));
  for (int g = 0; g < groups; ++g) d.groups.push_back(fmt::format("g{}", g));
  Rng rng(1);
  for (int i = 0; i < kImages; ++i) {
    d.group.push_back(static_cast<int>(rng.below(groups)));
    d.truth.push_back(static_cast<int>(rng.below(kLabels)));
    d.predicted.push_back(rng.uniform() < 0.75 ? d.truth.back() : static_cast<int>(rng.below(kLabels)));
  }
  return d;
}

// CPU seconds of this process (all threads): on a shared, loaded machine the
// wall clock counts time spent waiting for a core; this does not.
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// One rate difference (group g vs the rest, emotion e) from a count table.
CountStatistics single_pair(const CountTable3& observed, int groups, int g, int e) {
  double n_g = 0, n = 0, c_e = 0;
  for (int h = 0; h < groups; ++h) {
    for (int f = 0; f < kLabels; ++f) {
      const double v = observed[h * kLabels + f];
      n += v;
      if (h == g) n_g += v;
      if (f == e) c_e += v;
    }
  }
  return [=](const CountTable3& c, double* out) {
    const double a = c[g * kLabels + e];
    out[0] = a / n_g - (c_e - a) / (n - n_g);
  };
}

}  // namespace

int main() {
  nlohmann::json runs = nlohmann::json::array();
  for (int groups : {2, 5, 10}) {
    const AuditData d = synthetic(groups);
    AuditOptions o;
    o.bootstrap = 0;
    nlohmann::json run = {{"groups", groups}, {"pairs", groups * kLabels}};
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      // Both permutation families (prediction rate, and conditional on the true label).
      const double audit = bench::median_seconds(3, [&] { run_group_audit(d, o); });
      run[fmt::format("audit_seconds_{}t", threads)] = audit;
      run[fmt::format("ns_per_image_replicate_{}t", threads)] = audit / (2.0 * kImages * kReplicates) * 1e9;
    }
    set_num_threads(1);
    const double cpu0 = cpu_seconds();
    run_group_audit(d, o);
    const double cpu = cpu_seconds() - cpu0;
    run["audit_cpu_seconds_1t"] = cpu;
    run["cpu_ns_per_image_replicate_1t"] = cpu / (2.0 * kImages * kReplicates) * 1e9;
    // The anchor: one permutation run per pair (1,000 replicates, scaled to 10,000).
    set_num_threads(1);
    PermutationDesign design{groups, kLabels, 1, d.group, d.predicted, {}};
    const CountTable3 observed = count_table(design);
    const double per_pair = bench::median_seconds(1, [&] {
      for (int g = 0; g < groups; ++g)
        for (int e = 0; e < kLabels; ++e)
          permutation_test(design, 1, single_pair(observed, groups, g, e), {kReplicates / 10, 0, 0});
    }) * 10.0;
    const double together = bench::median_seconds(3, [&] {
      permutation_test(design, 1, single_pair(observed, groups, 0, 0), {kReplicates, 0, 0});
    });
    run["one_family_all_pairs_seconds_1t"] = run["audit_seconds_1t"].get<double>() / 2.0;
    run["anchor_pair_by_pair_seconds_1t"] = per_pair;
    run["speedup_vs_pair_by_pair_1t"] = per_pair / (run["audit_seconds_1t"].get<double>() / 2.0);
    run["one_statistic_seconds_1t"] = together;
    runs.push_back(run);
  }
  const nlohmann::json out = {
      {"bench", "bias_permutation"},
      {"machine", bench::machine_info()},
      {"images", kImages},
      {"labels", kLabels},
      {"replicates", kReplicates},
      {"note", "audit_seconds: run_group_audit with both permutation families (no bootstrap); "
               "ns_per_image_replicate: that time / (2 families x images x replicates), the floor being one "
               "random draw and one swap per image; cpu_*: process CPU time (immune to waiting for a core); anchor: each (group, emotion) pair tested by its own run"},
      {"runs", runs}};
  std::printf("%s\n", out.dump().c_str());
}
