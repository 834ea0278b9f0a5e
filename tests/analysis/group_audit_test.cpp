#include "analysis/group_audit.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "analysis/audit_json.h"
#include "core/rng.h"
#include "core/error.h"

namespace tinyemo::analysis {
namespace {

const std::vector<std::string> kLabels = {"anger", "fear", "joy", "sadness"};

// `n` images per group; each image's true label is drawn from the group's
// label distribution, and the model predicts the true label except with
// probability `noise` (then a uniformly random label), plus an optional
// group-specific confusion `from` -> `to` with probability `confusion`.
struct Synthetic {
  AuditData data;
  Synthetic(const std::vector<std::vector<double>>& label_mix, int n, double noise, uint64_t seed,
            int biased_group = -1, int from = 0, int to = 0, double confusion = 0.0) {
    data.labels = kLabels;
    Rng rng(seed);
    for (size_t g = 0; g < label_mix.size(); ++g) {
      data.groups.push_back(fmt::format("g{}", g));
      for (int i = 0; i < n; ++i) {
        double u = rng.uniform();
        int truth = 0;
        while (truth + 1 < static_cast<int>(kLabels.size()) && u >= label_mix[g][truth]) u -= label_mix[g][truth++];
        int pred = rng.uniform() < noise ? static_cast<int>(rng.below(kLabels.size())) : truth;
        if (static_cast<int>(g) == biased_group && truth == from && rng.uniform() < confusion) pred = to;
        data.group.push_back(static_cast<int>(g));
        data.truth.push_back(truth);
        data.predicted.push_back(pred);
        for (size_t e = 0; e < kLabels.size(); ++e) data.scores.push_back(static_cast<int>(e) == pred ? 0.7f : 0.1f);
      }
    }
  }
};

const std::vector<double> kUniform = {0.25, 0.25, 0.25, 0.25};
const std::vector<double> kAngry = {0.55, 0.15, 0.15, 0.15};

AuditOptions fast_options() {
  AuditOptions o;
  o.permutations = 5000;
  o.bootstrap = 500;
  o.seed = 7;
  return o;
}

const Flag* find_flag(const AuditResult& r, const std::string& kind, int group, int emotion) {
  for (const Flag& f : r.flags) {
    const PairResult& p = r.pairs[f.pair];
    if (f.kind == kind && p.group == group && p.emotion == emotion) return &f;
  }
  return nullptr;
}

TEST(GroupAudit, DataDifferenceIsFlaggedAndAttributedToTheData) {
  // Group 1 has more anger images; the model is equally good on both groups.
  const Synthetic s({kUniform, kAngry}, 400, 0.2, 1);
  const AuditResult r = run_group_audit(s.data, fast_options());
  ASSERT_TRUE(r.has_labels);
  const Flag* up = find_flag(r, "prediction_rate", 1, 0);
  const Flag* down = find_flag(r, "prediction_rate", 0, 0);
  ASSERT_NE(up, nullptr);
  ASSERT_NE(down, nullptr);
  EXPECT_GT(up->effect, 0.2);
  EXPECT_NEAR(up->effect, -down->effect, 1e-12);  // two groups: mirror images
  EXPECT_EQ(up->attribution, "data");
  EXPECT_LT(up->p_adjusted, 0.01);
  EXPECT_DOUBLE_EQ(up->p_value, 1.0 / 5001.0);
  EXPECT_TRUE(r.pairs[up->pair].effect_ci.defined);
  EXPECT_LT(r.pairs[up->pair].effect_ci.low, up->effect);
  EXPECT_GT(r.pairs[up->pair].effect_ci.high, up->effect);
  EXPECT_LT(r.label_independence->p_value, 1e-10);  // the data differ
  for (const Flag& f : r.flags) EXPECT_EQ(f.kind, "prediction_rate") << f.explanation;
  // Flags come strongest first.
  for (size_t i = 1; i < r.flags.size(); ++i) EXPECT_LE(r.flags[i - 1].p_adjusted, r.flags[i].p_adjusted);
}

TEST(GroupAudit, ModelDifferenceIsFlaggedConditionallyOnTheLabel) {
  // Same label mix; in group 0 the model calls 60% of joy images "anger".
  const Synthetic s({kUniform, kUniform}, 500, 0.1, 2, 0, 2, 0, 0.6);
  const AuditResult r = run_group_audit(s.data, fast_options());
  const Flag* conditional = find_flag(r, "conditional_on_label", 0, 0);
  ASSERT_NE(conditional, nullptr);
  EXPECT_GT(conditional->effect, 0.1);
  const Flag* rate = find_flag(r, "prediction_rate", 0, 0);
  ASSERT_NE(rate, nullptr);
  EXPECT_EQ(rate->attribution, "model");
  // Equal-opportunity gap on joy: lower recall in group 0, interval excluding 0.
  const PairResult& joy = r.pairs[0 * 4 + 2];
  EXPECT_LT(joy.recall_gap, -0.25);
  ASSERT_TRUE(joy.recall_gap_ci.defined);
  EXPECT_LT(joy.recall_gap_ci.high, 0.0);
  EXPECT_LT(joy.cmh.p_value, 1e-6);
  EXPECT_LT(r.groups[0].accuracy, r.groups[1].accuracy);
  EXPECT_LT(*r.conditional_permutation_p, 0.001);
  EXPECT_GT(r.label_independence->p_value, 1e-3);
}

TEST(GroupAudit, NoDifferenceNoFlags) {
  const Synthetic s({kUniform, kUniform, kUniform}, 300, 0.3, 3);
  AuditOptions o = fast_options();
  o.min_effect = 0.0;
  const AuditResult r = run_group_audit(s.data, o);
  EXPECT_TRUE(r.flags.empty());
  EXPECT_EQ(r.pairs.size(), 12u);
  EXPECT_GT(r.independence.chi_square.p_value, 0.001);
}

TEST(GroupAudit, MinEffectFiltersSmallButSignificantDifferences) {
  const Synthetic s({kUniform, {0.33, 0.22, 0.23, 0.22}}, 2000, 0.0, 4);
  AuditOptions o = fast_options();
  o.permutations = 2000;
  o.bootstrap = 0;
  o.min_effect = 0.0;
  const AuditResult loose = run_group_audit(s.data, o);
  ASSERT_NE(find_flag(loose, "prediction_rate", 1, 0), nullptr);
  o.min_effect = 0.1;
  const AuditResult strict = run_group_audit(s.data, o);
  EXPECT_EQ(find_flag(strict, "prediction_rate", 1, 0), nullptr);
}

TEST(GroupAudit, ReproducibleForASeed) {
  const Synthetic s({kUniform, kAngry}, 200, 0.3, 5);
  const auto a = audit_to_json(run_group_audit(s.data, fast_options()), {});
  const auto b = audit_to_json(run_group_audit(s.data, fast_options()), {});
  EXPECT_EQ(a.dump(), b.dump());
  AuditOptions other = fast_options();
  other.seed = 8;
  const auto c = audit_to_json(run_group_audit(s.data, other), {});
  EXPECT_NE(a["pairs"].dump(), c["pairs"].dump());
  EXPECT_EQ(a["flags"].size(), c["flags"].size());
}

TEST(GroupAudit, JsonCarriesTheEvidence) {
  const Synthetic s({kUniform, kAngry}, 300, 0.2, 6);
  const auto j = audit_to_json(run_group_audit(s.data, fast_options()), {{"groups_csv", "x.csv"}});
  ASSERT_FALSE(j["flags"].empty());
  for (const auto& f : j["flags"]) {
    for (const char* key : {"group", "emotion", "p_adjusted", "effect", "explanation", "evidence"})
      EXPECT_TRUE(f.contains(key)) << key;
  }
  EXPECT_EQ(j["options"]["seed"], 7);
  EXPECT_EQ(j["inputs"]["groups_csv"], "x.csv");
  EXPECT_EQ(j["groups"][1]["predicted_counts"].size(), 4u);
  EXPECT_TRUE(j["groups"][0].contains("mean_scores"));
  EXPECT_TRUE(j["pairs"][0].contains("conditional"));
}

TEST(GroupAudit, BadInputsGiveErrorsOrWarnings) {
  Synthetic s({kUniform, kAngry}, 50, 0.2, 7);
  AuditOptions o = fast_options();
  // A group with no images is left out with a warning.
  s.data.groups.push_back("empty");
  AuditResult r = run_group_audit(s.data, o);
  EXPECT_EQ(r.groups.size(), 2u);
  EXPECT_TRUE(std::any_of(r.warnings.begin(), r.warnings.end(),
                          [](const std::string& w) { return w.find("\"empty\" has no images") != std::string::npos; }));
  // One group: nothing to compare.
  AuditData one = s.data;
  std::fill(one.group.begin(), one.group.end(), 0);
  try {
    run_group_audit(one, o);
    FAIL() << "a single group must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at least two groups"), std::string::npos) << e.what();
  }
  // Too few permutations for BH to ever reach alpha: warned.
  o.permutations = 100;
  r = run_group_audit(s.data, o);
  EXPECT_TRUE(r.flags.empty());
  EXPECT_TRUE(std::any_of(r.warnings.begin(), r.warnings.end(),
                          [](const std::string& w) { return w.find("more --permutations") != std::string::npos; }));
  // Inconsistent arrays and bad options.
  AuditData broken = s.data;
  broken.predicted.pop_back();
  EXPECT_THROW(run_group_audit(broken, fast_options()), Error);
  broken = s.data;
  broken.predicted[0] = 9;
  EXPECT_THROW(run_group_audit(broken, fast_options()), Error);
  AuditOptions bad_alpha = fast_options();
  bad_alpha.alpha = 0.0;
  EXPECT_THROW(run_group_audit(s.data, bad_alpha), Error);
}

TEST(GroupAudit, PartialLabelsAndNoLabels) {
  Synthetic s({kUniform, kAngry}, 200, 0.2, 8);
  AuditData unlabelled = s.data;
  unlabelled.truth.clear();
  AuditResult r = run_group_audit(unlabelled, fast_options());
  EXPECT_FALSE(r.has_labels);
  EXPECT_FALSE(r.label_independence.has_value());
  for (const Flag& f : r.flags) EXPECT_EQ(f.attribution, "");
  for (size_t i = 0; i < s.data.truth.size(); i += 3) s.data.truth[i] = -1;
  r = run_group_audit(s.data, fast_options());
  EXPECT_TRUE(r.has_labels);
  EXPECT_EQ(r.n_labelled, 400 - 134);
  EXPECT_TRUE(std::any_of(r.warnings.begin(), r.warnings.end(),
                          [](const std::string& w) { return w.find("have no true label") != std::string::npos; }));
}

}  // namespace
}  // namespace tinyemo::analysis
