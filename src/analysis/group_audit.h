// Image-group audit: does the emotion a model predicts depend on which group
// an image belongs to? Works on plain arrays (group per image, predicted label,
// optional scores and true labels), so it can audit any classifier.
//
// What it computes (see docs/bias.md for the reasoning):
// - per group: predicted-emotion counts and shares, mean scores; with true
//   labels also accuracy (bootstrap interval) and per-emotion recall;
// - independence of group and predicted emotion: Pearson chi-square, Cramer's
//   V, and a permutation p-value for the same statistic;
// - per (group, emotion): rate of that prediction in the group minus the rate
//   in all other images, with a permutation p-value (group labels shuffled),
//   Benjamini-Hochberg across all pairs, and a bootstrap interval;
// - with true labels, "the data differ" (chi-square on group x true label) is
//   separated from "the model treats the groups differently": the same pairs
//   re-tested conditionally on the true label (group labels shuffled only
//   among images with the same true label; effect = Mantel-Haenszel risk
//   difference across true-label strata; CMH chi-square alongside), and
//   equal-opportunity (recall) gaps with bootstrap intervals;
// - flags: pairs with BH-adjusted p < alpha and |effect| > min_effect,
//   ordered by evidence. Flags are for a person to review, not verdicts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/statistics.h"

namespace tinyemo::analysis {

struct AuditData {
  std::vector<std::string> labels;  // emotion names, in the model's order
  std::vector<std::string> groups;  // group names
  std::vector<int> group;           // per image: index into groups
  std::vector<int> predicted;       // per image: index into labels
  std::vector<float> scores;        // per image x label (row-major); empty when not available
  std::string score_name;           // what the scores are, e.g. "probability"
  std::vector<int> truth;           // per image: true label index or -1; empty when no labels
};

struct AuditOptions {
  double alpha = 0.01;
  double min_effect = 0.1;
  int64_t permutations = 10000;
  int64_t bootstrap = 2000;
  double ci_level = 0.95;
  uint64_t seed = 0;
  int sequential_h = 0;  // Besag-Clifford stopping (see permutation.h); 0 = off
  int small_group = 20;  // groups smaller than this get a low-power warning
};

struct Interval {
  double low = 0.0, high = 0.0;
  bool defined = false;
};

struct PermutationEvidence {
  double p_value = 1.0;
  double p_adjusted = 1.0;
  double z = 0.0;                 // (T - mean T*) / sd T*
  int64_t replicates = 0;
};

struct GroupSummary {
  std::string name;
  int64_t n = 0;
  std::vector<int64_t> predicted_counts;  // per label
  std::vector<double> predicted_share;
  std::vector<double> mean_scores;  // per label; empty without scores
  // With true labels (images with a known label only):
  int64_t n_labelled = 0;
  std::vector<int64_t> label_counts;
  double accuracy = 0.0;
  Interval accuracy_ci;
  double accuracy_gap = 0.0;  // accuracy in the group - accuracy in all other images
  Interval accuracy_gap_ci;
};

struct PairResult {
  int group = 0;
  int emotion = 0;
  int64_t count = 0;       // images of the group predicted as the emotion
  double rate = 0.0;       // count / group size
  double rate_rest = 0.0;  // the same among all other images
  double effect = 0.0;     // rate - rate_rest
  Interval effect_ci;
  PermutationEvidence evidence;
  // With true labels:
  double label_rate = 0.0;       // share of the group whose true label is the emotion
  double label_rate_rest = 0.0;
  double conditional_effect = 0.0;  // MH risk difference across true-label strata
  Interval conditional_effect_ci;
  PermutationEvidence conditional;  // within-stratum permutation test of conditional_effect
  MantelHaenszelTest cmh;           // analytic companion (CMH chi-square, 1 df)
  int64_t n_true = 0;               // images of the group whose true label is the emotion
  double recall = 0.0;              // of the emotion, in the group (NaN when n_true = 0)
  double recall_rest = 0.0;
  double recall_gap = 0.0;          // equal-opportunity difference
  Interval recall_gap_ci;
};

struct Flag {
  std::string kind;  // "prediction_rate" or "conditional_on_label"
  int pair = 0;      // index into AuditResult::pairs
  double effect = 0.0;
  double p_value = 1.0;
  double p_adjusted = 1.0;
  double z = 0.0;
  // prediction_rate with labels: "model", "data" or "undetermined"; conditional_on_label: "model";
  // without labels: "" (the audit cannot tell).
  std::string attribution;
  std::string explanation;  // one sentence with the numbers
};

struct OmnibusTest {
  ChiSquareTest chi_square;      // analytic
  double permutation_p = 1.0;    // of the same statistic
};

struct AuditResult {
  AuditOptions options;
  std::vector<std::string> labels;
  int64_t n = 0;
  std::vector<GroupSummary> groups;  // only groups with at least one image
  OmnibusTest independence;          // group x predicted emotion
  bool has_labels = false;
  int64_t n_labelled = 0;
  std::optional<ChiSquareTest> label_independence;  // group x true label ("the data differ")
  std::optional<double> conditional_permutation_p;  // sum over strata of X^2 (group x predicted | true label)
  std::vector<PairResult> pairs;                    // group-major
  std::vector<Flag> flags;                          // ordered by evidence
  std::vector<std::string> warnings;
  int64_t replicates_run = 0;
  int64_t conditional_replicates_run = 0;
};

// Throws tinyemo::Error for inconsistent arrays or fewer than two non-empty groups.
AuditResult run_group_audit(const AuditData& data, const AuditOptions& options);

}  // namespace tinyemo::analysis
