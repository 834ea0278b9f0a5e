#include "analysis/group_audit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "analysis/permutation.h"
#include "core/rng.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace tinyemo::analysis {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Separate random streams for the two permutation families and the bootstrap.
constexpr uint64_t kConditionalSalt = 0x636f6e646974696fULL;
constexpr uint64_t kBootstrapSalt = 0x626f6f7473747261ULL;

double ratio(double num, double den) { return den > 0.0 ? num / den : kNaN; }

std::string percent(double share) { return std::isnan(share) ? "n/a" : fmt::format("{:.1f}%", 100.0 * share); }
std::string points(double diff) { return fmt::format("{:+.1f} points", 100.0 * diff); }
std::string interval_text(const Interval& ci, double level) {
  if (!ci.defined) return "";
  return fmt::format(" ({:.0f}% CI {:+.1f} to {:+.1f})", 100.0 * level, 100.0 * ci.low, 100.0 * ci.high);
}

// The audit's inputs re-indexed to the non-empty groups.
struct Prepared {
  std::vector<int> group;  // per image, into kept
  std::vector<int> kept;   // kept group -> original index
  int num_groups = 0;
  int num_labels = 0;
  int64_t n = 0;
};

Prepared prepare(const AuditData& d, std::vector<std::string>& warnings) {
  Prepared p;
  p.n = static_cast<int64_t>(d.group.size());
  p.num_labels = static_cast<int>(d.labels.size());
  TE_CHECK(p.num_labels >= 2, "bias audit: need at least two emotion labels (got {})", p.num_labels);
  TE_CHECK(d.predicted.size() == d.group.size(), "bias audit: {} predictions for {} images", d.predicted.size(),
           d.group.size());
  TE_CHECK(d.scores.empty() || d.scores.size() == d.group.size() * d.labels.size(),
           "bias audit: {} scores for {} images x {} labels", d.scores.size(), d.group.size(), d.labels.size());
  TE_CHECK(d.truth.empty() || d.truth.size() == d.group.size(), "bias audit: {} true labels for {} images",
           d.truth.size(), d.group.size());
  std::vector<int64_t> sizes(d.groups.size(), 0);
  for (int64_t i = 0; i < p.n; ++i) {
    TE_CHECK(d.group[i] >= 0 && d.group[i] < static_cast<int>(d.groups.size()), "bias audit: image {} has group {}",
             i, d.group[i]);
    TE_CHECK(d.predicted[i] >= 0 && d.predicted[i] < p.num_labels, "bias audit: image {} has prediction {}", i,
             d.predicted[i]);
    TE_CHECK(d.truth.empty() || (d.truth[i] >= -1 && d.truth[i] < p.num_labels), "bias audit: image {} has label {}",
             i, d.truth[i]);
    ++sizes[d.group[i]];
  }
  std::vector<int> remap(d.groups.size(), -1);
  for (size_t g = 0; g < d.groups.size(); ++g) {
    if (sizes[g] == 0) {
      warnings.push_back(fmt::format("group \"{}\" has no images and is left out of the audit", d.groups[g]));
      continue;
    }
    remap[g] = static_cast<int>(p.kept.size());
    p.kept.push_back(static_cast<int>(g));
  }
  p.num_groups = static_cast<int>(p.kept.size());
  if (p.num_groups < 2) {
    fail("bias audit: comparing groups needs at least two groups with images; found {}{}", p.num_groups,
         p.num_groups == 1 ? fmt::format(" (\"{}\")", d.groups[p.kept[0]]) : std::string());
  }
  p.group.resize(p.n);
  for (int64_t i = 0; i < p.n; ++i) p.group[i] = remap[d.group[i]];
  return p;
}

// Rate-difference statistics for one count table (one stratum): entry g*L+e is
// the rate of emotion e in group g minus its rate among the other images; the
// last entry is Pearson's X^2 for the table. Margins are fixed under
// permutation, so they are computed once.
class RateDifferences {
 public:
  RateDifferences(const CountTable3& observed, int groups, int labels) : G_(groups), L_(labels) {
    row_.assign(G_, 0.0);
    col_.assign(L_, 0.0);
    for (int g = 0; g < G_; ++g) {
      for (int e = 0; e < L_; ++e) {
        row_[g] += observed[g * L_ + e];
        col_[e] += observed[g * L_ + e];
      }
    }
    total_ = std::accumulate(row_.begin(), row_.end(), 0.0);
  }
  int num_statistics() const { return G_ * L_ + 1; }
  void operator()(const CountTable3& c, double* out) const {
    double x2 = 0.0;
    for (int g = 0; g < G_; ++g) {
      const double rest = total_ - row_[g];
      for (int e = 0; e < L_; ++e) {
        const double count = c[g * L_ + e];
        out[g * L_ + e] = count / row_[g] - (rest > 0.0 ? (col_[e] - count) / rest : 0.0);
        const double expected = row_[g] * col_[e] / total_;
        if (expected > 0.0) x2 += (count - expected) * (count - expected) / expected;
      }
    }
    out[G_ * L_] = x2;
  }

 private:
  int G_, L_;
  std::vector<double> row_, col_;
  double total_ = 0.0;
};

// Mantel-Haenszel risk differences across true-label strata (entry g*L+e:
// group g vs the rest, outcome "predicted e") and, last, the sum over strata of
// Pearson's X^2 for group x predicted.
class ConditionalDifferences {
 public:
  ConditionalDifferences(const CountTable3& observed, int strata, int groups, int labels)
      : K_(strata), G_(groups), L_(labels) {
    n_kg_.assign(static_cast<size_t>(K_) * G_, 0.0);
    c_ke_.assign(static_cast<size_t>(K_) * L_, 0.0);
    n_k_.assign(K_, 0.0);
    for (int k = 0; k < K_; ++k) {
      for (int g = 0; g < G_; ++g) {
        for (int e = 0; e < L_; ++e) {
          const double v = observed[(static_cast<size_t>(k) * G_ + g) * L_ + e];
          n_kg_[k * G_ + g] += v;
          c_ke_[k * L_ + e] += v;
          n_k_[k] += v;
        }
      }
    }
  }
  int num_statistics() const { return G_ * L_ + 1; }
  void operator()(const CountTable3& c, double* out) const {
    double x2 = 0.0;
    for (int g = 0; g < G_; ++g) {
      for (int e = 0; e < L_; ++e) {
        double num = 0.0, den = 0.0;
        for (int k = 0; k < K_; ++k) {
          const double n1 = n_kg_[k * G_ + g], n0 = n_k_[k] - n1;
          const double a = c[(static_cast<size_t>(k) * G_ + g) * L_ + e];
          if (e == 0) {  // X^2 contributions of this stratum's row g, once per (k, g)
            for (int f = 0; f < L_; ++f) {
              const double expected = n_k_[k] > 0.0 ? n1 * c_ke_[k * L_ + f] / n_k_[k] : 0.0;
              const double v = c[(static_cast<size_t>(k) * G_ + g) * L_ + f];
              if (expected > 0.0) x2 += (v - expected) * (v - expected) / expected;
            }
          }
          if (n1 <= 0.0 || n0 <= 0.0) continue;
          const double w = n1 * n0 / n_k_[k];
          num += w * (a / n1 - (c_ke_[k * L_ + e] - a) / n0);
          den += w;
        }
        out[g * L_ + e] = den > 0.0 ? num / den : 0.0;
      }
    }
    out[G_ * L_] = x2;
  }

 private:
  int K_, G_, L_;
  std::vector<double> n_kg_, c_ke_, n_k_;
};

std::vector<PermutationEvidence> evidence(const PermutationResult& r, int pairs) {
  std::vector<double> p(r.p_value.begin(), r.p_value.begin() + pairs);
  const std::vector<double> adjusted = benjamini_hochberg(p);
  std::vector<PermutationEvidence> out(pairs);
  for (int i = 0; i < pairs; ++i) out[i] = {p[i], adjusted[i], r.z(i), r.replicates_used[i]};
  return out;
}

Interval percentile_interval(std::vector<double> values, double level) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return std::isnan(v); }), values.end());
  Interval ci;
  // An interval from fewer than half the replicates (the statistic was often
  // undefined, e.g. no image of that true label drawn) would mislead.
  if (values.size() < 20) return ci;
  const double tail = 0.5 * (1.0 - level);
  ci.low = quantile(values, tail);
  ci.high = quantile(values, 1.0 - tail);
  ci.defined = true;
  return ci;
}

// Per-image counts a statistic needs, for one resample or the original data.
struct Tallies {
  std::vector<double> predicted;    // [g][e]
  std::vector<double> correct;      // [g]
  std::vector<double> labelled;     // [g]
  std::vector<double> true_count;   // [g][e]
  std::vector<double> true_correct; // [g][e]
  std::vector<double> size;         // [g]
  CountTable3 by_label;             // [true label][g][predicted]
  Tallies(int G, int L)
      : predicted(static_cast<size_t>(G) * L), correct(G), labelled(G), true_count(static_cast<size_t>(G) * L),
        true_correct(static_cast<size_t>(G) * L), size(G), by_label(static_cast<size_t>(L) * G * L), G_(G) {}
  void add(int g, int pred, int truth, int L) {
    size[g] += 1.0;
    predicted[g * L + pred] += 1.0;
    if (truth < 0) return;
    labelled[g] += 1.0;
    true_count[g * L + truth] += 1.0;
    by_label[(static_cast<size_t>(truth) * G_ + g) * L + pred] += 1.0;
    if (pred == truth) {
      correct[g] += 1.0;
      true_correct[g * L + truth] += 1.0;
    }
  }

 private:
  int G_;
};

// Statistics with bootstrap intervals, as a flat vector: [G*L effects,
// G accuracies, G accuracy gaps, G*L recall gaps, G*L conditional effects].
constexpr int num_bootstrap_statistics(int G, int L) { return 3 * G * L + 2 * G; }

std::vector<double> bootstrap_statistics(const Tallies& t, int G, int L) {
  std::vector<double> out;
  out.reserve(num_bootstrap_statistics(G, L));
  const double n = std::accumulate(t.size.begin(), t.size.end(), 0.0);
  const double labelled = std::accumulate(t.labelled.begin(), t.labelled.end(), 0.0);
  const double correct = std::accumulate(t.correct.begin(), t.correct.end(), 0.0);
  std::vector<double> pred_total(L, 0.0), true_total(L, 0.0), true_correct_total(L, 0.0);
  for (int g = 0; g < G; ++g) {
    for (int e = 0; e < L; ++e) {
      pred_total[e] += t.predicted[g * L + e];
      true_total[e] += t.true_count[g * L + e];
      true_correct_total[e] += t.true_correct[g * L + e];
    }
  }
  for (int g = 0; g < G; ++g)
    for (int e = 0; e < L; ++e)
      out.push_back(ratio(t.predicted[g * L + e], t.size[g]) -
                    ratio(pred_total[e] - t.predicted[g * L + e], n - t.size[g]));
  for (int g = 0; g < G; ++g) out.push_back(ratio(t.correct[g], t.labelled[g]));
  for (int g = 0; g < G; ++g)
    out.push_back(ratio(t.correct[g], t.labelled[g]) - ratio(correct - t.correct[g], labelled - t.labelled[g]));
  for (int g = 0; g < G; ++g)
    for (int e = 0; e < L; ++e)
      out.push_back(ratio(t.true_correct[g * L + e], t.true_count[g * L + e]) -
                    ratio(true_correct_total[e] - t.true_correct[g * L + e], true_total[e] - t.true_count[g * L + e]));
  // Mantel-Haenszel risk differences, with this resample's stratum margins.
  std::vector<double> conditional(G * L + 1);
  ConditionalDifferences(t.by_label, L, G, L)(t.by_label, conditional.data());
  out.insert(out.end(), conditional.begin(), conditional.begin() + G * L);
  return out;
}

// Percentile intervals from a bootstrap that resamples images within each
// group (group sizes fixed, as in the permutation tests).
std::vector<Interval> bootstrap_intervals(const Prepared& p, const AuditData& d, const AuditOptions& o) {
  const int G = p.num_groups, L = p.num_labels;
  std::vector<std::vector<int64_t>> members(G);
  for (int64_t i = 0; i < p.n; ++i) members[p.group[i]].push_back(i);
  const int num_stats = num_bootstrap_statistics(G, L);
  std::vector<double> samples(static_cast<size_t>(o.bootstrap) * num_stats);
  parallel_for(o.bootstrap, 16, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      Rng rng = Rng::stream(o.seed ^ kBootstrapSalt, static_cast<uint64_t>(b));
      Tallies t(G, L);
      for (int g = 0; g < G; ++g) {
        const auto& m = members[g];
        for (size_t k = 0; k < m.size(); ++k) {
          const int64_t i = m[rng.below(m.size())];
          t.add(g, d.predicted[i], d.truth.empty() ? -1 : d.truth[i], L);
        }
      }
      const std::vector<double> s = bootstrap_statistics(t, G, L);
      std::copy(s.begin(), s.end(), samples.begin() + b * num_stats);
    }
  });
  std::vector<Interval> out(num_stats);
  std::vector<double> column(o.bootstrap);
  for (int s = 0; s < num_stats; ++s) {
    for (int64_t b = 0; b < o.bootstrap; ++b) column[b] = samples[b * num_stats + s];
    out[s] = percentile_interval(column, o.ci_level);
  }
  return out;
}

void describe_flags(AuditResult& r, const std::vector<std::string>& group_names) {
  const double level = r.options.ci_level;
  for (Flag& f : r.flags) {
    const PairResult& pr = r.pairs[f.pair];
    const std::string& group = group_names[pr.group];
    const std::string& emotion = r.labels[pr.emotion];
    const GroupSummary& gs = r.groups[pr.group];
    if (f.kind == "prediction_rate") {
      f.explanation = fmt::format(
          "{} of the {} images in group \"{}\" are predicted \"{}\" vs {} of the other {} images ({}{}); "
          "permutation p = {:.3g}, BH-adjusted p = {:.3g}, z = {:.1f}.",
          percent(pr.rate), gs.n, group, emotion, percent(pr.rate_rest), r.n - gs.n, points(pr.effect),
          interval_text(pr.effect_ci, level), pr.evidence.p_value, pr.evidence.p_adjusted, pr.evidence.z);
      if (!r.has_labels) continue;
      f.explanation += fmt::format(
          " True labels: {} of the group are \"{}\" vs {} of the others; given the true label the difference is {} "
          "(BH-adjusted p = {:.3g}).",
          percent(pr.label_rate), emotion, percent(pr.label_rate_rest), points(pr.conditional_effect),
          pr.conditional.p_adjusted);
      const bool conditional_flagged =
          pr.conditional.p_adjusted < r.options.alpha && std::fabs(pr.conditional_effect) > r.options.min_effect;
      const double label_diff = pr.label_rate - pr.label_rate_rest;
      if (conditional_flagged) {
        f.attribution = "model";
        f.explanation += " The model treats the group differently even among images with the same true label.";
      } else if (label_diff * pr.effect > 0.0 && std::fabs(label_diff) >= 0.5 * std::fabs(pr.effect)) {
        f.attribution = "data";
        f.explanation += " The difference follows the group's label distribution (the data differ); no "
                         "significant difference remains given the true label.";
      } else {
        f.attribution = "undetermined";
        f.explanation += " Neither the label distribution nor a conditional difference accounts for it clearly.";
      }
    } else {
      f.explanation = fmt::format(
          "Among images with the same true label, group \"{}\" is predicted \"{}\" {:.1f} points {} often than the "
          "other images (Mantel-Haenszel risk difference{}; within-label permutation p = {:.3g}, BH-adjusted p = "
          "{:.3g}; CMH X^2 = {:.2f}, p = {:.3g}).",
          group, emotion, 100.0 * std::fabs(pr.conditional_effect), pr.conditional_effect >= 0 ? "more" : "less",
          interval_text(pr.conditional_effect_ci, level), pr.conditional.p_value, pr.conditional.p_adjusted,
          pr.cmh.statistic, pr.cmh.p_value);
      if (pr.n_true > 0) {
        f.explanation += fmt::format(" Recall of \"{}\": {} in the group ({} images) vs {} elsewhere, gap {}{}.",
                                     emotion, percent(pr.recall), pr.n_true, percent(pr.recall_rest),
                                     points(pr.recall_gap), interval_text(pr.recall_gap_ci, level));
      }
    }
  }
}

}  // namespace

AuditResult run_group_audit(const AuditData& d, const AuditOptions& o) {
  TE_CHECK(o.alpha > 0.0 && o.alpha < 1.0, "bias audit: --alpha must be in (0, 1) (got {})", o.alpha);
  TE_CHECK(o.min_effect >= 0.0 && o.min_effect < 1.0, "bias audit: --min-effect must be in [0, 1) (got {})",
           o.min_effect);
  TE_CHECK(o.permutations >= 1, "bias audit: --permutations must be >= 1 (got {})", o.permutations);
  TE_CHECK(o.bootstrap >= 0, "bias audit: --bootstrap must be >= 0 (got {})", o.bootstrap);
  TE_CHECK(o.ci_level > 0.0 && o.ci_level < 1.0, "bias audit: confidence level must be in (0, 1)");
  AuditResult r;
  r.options = o;
  r.labels = d.labels;
  const Prepared p = prepare(d, r.warnings);
  const int G = p.num_groups, L = p.num_labels;
  r.n = p.n;
  std::vector<std::string> group_names;
  for (int g : p.kept) group_names.push_back(d.groups[g]);

  // Per-group summaries.
  Tallies observed(G, L);
  for (int64_t i = 0; i < p.n; ++i) observed.add(p.group[i], d.predicted[i], d.truth.empty() ? -1 : d.truth[i], L);
  r.has_labels = !d.truth.empty() && std::accumulate(observed.labelled.begin(), observed.labelled.end(), 0.0) > 0.0;
  r.n_labelled = r.has_labels ? static_cast<int64_t>(std::accumulate(observed.labelled.begin(), observed.labelled.end(), 0.0)) : 0;
  r.groups.resize(G);
  for (int g = 0; g < G; ++g) {
    GroupSummary& gs = r.groups[g];
    gs.name = group_names[g];
    gs.n = static_cast<int64_t>(observed.size[g]);
    for (int e = 0; e < L; ++e) {
      gs.predicted_counts.push_back(static_cast<int64_t>(observed.predicted[g * L + e]));
      gs.predicted_share.push_back(observed.predicted[g * L + e] / observed.size[g]);
    }
    if (gs.n < o.small_group) {
      r.warnings.push_back(fmt::format("group \"{}\" has only {} images: its rates are imprecise and small "
                                       "differences cannot be detected",
                                       gs.name, gs.n));
    }
  }
  if (!d.scores.empty()) {
    for (auto& gs : r.groups) gs.mean_scores.assign(L, 0.0);
    for (int64_t i = 0; i < p.n; ++i)
      for (int e = 0; e < L; ++e) r.groups[p.group[i]].mean_scores[e] += d.scores[i * L + e];
    for (auto& gs : r.groups)
      for (auto& v : gs.mean_scores) v /= static_cast<double>(gs.n);
  }

  // Group x predicted emotion: chi-square and per-pair permutation tests.
  PermutationDesign design{G, L, 1, p.group, d.predicted, {}};
  const CountTable3 table = count_table(design);
  r.independence.chi_square = chi_square_independence({G, L, table});
  if (r.independence.chi_square.share_expected_below_5 > 0.2) {
    r.warnings.push_back(fmt::format(
        "{:.0f}% of the expected counts in the group x predicted-emotion table are below 5: the chi-square "
        "p-value is approximate; the permutation p-value does not rely on that approximation",
        100.0 * r.independence.chi_square.share_expected_below_5));
  }
  const RateDifferences rates(table, G, L);
  const PermutationResult perm =
      permutation_test(design, rates.num_statistics(), rates, {o.permutations, o.seed, o.sequential_h});
  r.replicates_run = perm.replicates_run;
  r.independence.permutation_p = perm.p_value[G * L];
  const std::vector<PermutationEvidence> pair_evidence = evidence(perm, G * L);
  const double min_adjusted = static_cast<double>(G * L) / static_cast<double>(o.permutations + 1);
  if (min_adjusted >= o.alpha) {
    r.warnings.push_back(fmt::format(
        "with {} permutations and {} (group, emotion) pairs the smallest possible BH-adjusted p-value is {:.3g}, "
        "not below alpha = {}: nothing can be flagged; use more --permutations",
        o.permutations, G * L, min_adjusted, o.alpha));
  }

  r.pairs.resize(static_cast<size_t>(G) * L);
  for (int g = 0; g < G; ++g) {
    for (int e = 0; e < L; ++e) {
      PairResult& pr = r.pairs[g * L + e];
      pr.group = g;
      pr.emotion = e;
      pr.count = r.groups[g].predicted_counts[e];
      pr.rate = r.groups[g].predicted_share[e];
      pr.effect = perm.observed[g * L + e];
      pr.rate_rest = pr.rate - pr.effect;
      pr.evidence = pair_evidence[g * L + e];
    }
  }
  for (int e = 0; e < L; ++e) {
    const bool predicted = std::any_of(r.groups.begin(), r.groups.end(), [e](const GroupSummary& gs) {
      return gs.predicted_counts[e] > 0;
    });
    if (!predicted) r.warnings.push_back(fmt::format("no image is predicted \"{}\"", d.labels[e]));
  }

  // With true labels: the data (label distribution) and the model (conditional) apart.
  if (r.has_labels) {
    if (r.n_labelled < p.n) {
      r.warnings.push_back(fmt::format("{} of {} images have no true label: label-based results use the {} that do",
                                       p.n - r.n_labelled, p.n, r.n_labelled));
    }
    PermutationDesign conditional{G, L, L, {}, {}, {}};
    for (int64_t i = 0; i < p.n; ++i) {
      if (d.truth[i] < 0) continue;
      conditional.group.push_back(p.group[i]);
      conditional.category.push_back(d.predicted[i]);
      conditional.stratum.push_back(d.truth[i]);
    }
    CountTable label_table{G, L, std::vector<double>(static_cast<size_t>(G) * L, 0.0)};
    for (size_t i = 0; i < conditional.group.size(); ++i)
      label_table.counts[conditional.group[i] * L + conditional.stratum[i]] += 1.0;
    r.label_independence = chi_square_independence(label_table);
    const CountTable3 strata_table = count_table(conditional);
    const ConditionalDifferences differences(strata_table, L, G, L);
    const PermutationResult cperm = permutation_test(conditional, differences.num_statistics(), differences,
                                                     {o.permutations, o.seed ^ kConditionalSalt, o.sequential_h});
    r.conditional_replicates_run = cperm.replicates_run;
    r.conditional_permutation_p = cperm.p_value[G * L];
    const std::vector<PermutationEvidence> cond_evidence = evidence(cperm, G * L);
    for (int g = 0; g < G; ++g) {
      GroupSummary& gs = r.groups[g];
      gs.n_labelled = static_cast<int64_t>(observed.labelled[g]);
      for (int e = 0; e < L; ++e) gs.label_counts.push_back(static_cast<int64_t>(label_table.at(g, e)));
      gs.accuracy = ratio(observed.correct[g], observed.labelled[g]);
      if (gs.n_labelled == 0)
        r.warnings.push_back(fmt::format("group \"{}\" has no image with a true label", gs.name));
    }
    const std::vector<double> point = bootstrap_statistics(observed, G, L);
    for (int g = 0; g < G; ++g) r.groups[g].accuracy_gap = point[G * L + G + g];
    for (int g = 0; g < G; ++g) {
      for (int e = 0; e < L; ++e) {
        PairResult& pr = r.pairs[g * L + e];
        const double labelled_g = observed.labelled[g], labelled_all = static_cast<double>(r.n_labelled);
        double true_total = 0.0, true_correct_total = 0.0;
        for (int h = 0; h < G; ++h) {
          true_total += observed.true_count[h * L + e];
          true_correct_total += observed.true_correct[h * L + e];
        }
        pr.label_rate = ratio(observed.true_count[g * L + e], labelled_g);
        pr.label_rate_rest = ratio(true_total - observed.true_count[g * L + e], labelled_all - labelled_g);
        pr.conditional_effect = cperm.observed[g * L + e];
        pr.conditional = cond_evidence[g * L + e];
        std::vector<Table2x2> strata(L);
        for (int k = 0; k < L; ++k) {
          const auto cell = [&](int gg, int ee) { return strata_table[(static_cast<size_t>(k) * G + gg) * L + ee]; };
          double a = 0.0, n1 = 0.0, c = 0.0, n0 = 0.0;
          for (int h = 0; h < G; ++h) {
            for (int f = 0; f < L; ++f) {
              (h == g ? n1 : n0) += cell(h, f);
              if (f == e) (h == g ? a : c) += cell(h, f);
            }
          }
          strata[k] = {a, n1 - a, c, n0 - c};
        }
        pr.cmh = mantel_haenszel(strata);
        pr.n_true = static_cast<int64_t>(observed.true_count[g * L + e]);
        pr.recall = ratio(observed.true_correct[g * L + e], observed.true_count[g * L + e]);
        pr.recall_rest = ratio(true_correct_total - observed.true_correct[g * L + e],
                               true_total - observed.true_count[g * L + e]);
        pr.recall_gap = pr.recall - pr.recall_rest;
      }
    }
  }

  if (o.bootstrap > 0) {
    const std::vector<Interval> ci = bootstrap_intervals(p, d, o);
    for (int g = 0; g < G; ++g) {
      for (int e = 0; e < L; ++e) {
        r.pairs[g * L + e].effect_ci = ci[g * L + e];
        if (r.has_labels) {
          r.pairs[g * L + e].recall_gap_ci = ci[G * L + 2 * G + g * L + e];
          r.pairs[g * L + e].conditional_effect_ci = ci[2 * G * L + 2 * G + g * L + e];
        }
      }
      if (r.has_labels) {
        r.groups[g].accuracy_ci = ci[G * L + g];
        r.groups[g].accuracy_gap_ci = ci[G * L + G + g];
      }
    }
  }

  // Flags, strongest evidence first.
  for (size_t i = 0; i < r.pairs.size(); ++i) {
    const PairResult& pr = r.pairs[i];
    if (pr.evidence.p_adjusted < o.alpha && std::fabs(pr.effect) > o.min_effect) {
      r.flags.push_back({"prediction_rate", static_cast<int>(i), pr.effect, pr.evidence.p_value,
                         pr.evidence.p_adjusted, pr.evidence.z, "", ""});
    }
    if (r.has_labels && pr.conditional.p_adjusted < o.alpha && std::fabs(pr.conditional_effect) > o.min_effect) {
      // Given the true label, a difference is the model's by construction.
      r.flags.push_back({"conditional_on_label", static_cast<int>(i), pr.conditional_effect, pr.conditional.p_value,
                         pr.conditional.p_adjusted, pr.conditional.z, "model", ""});
    }
  }
  std::stable_sort(r.flags.begin(), r.flags.end(), [](const Flag& a, const Flag& b) {
    if (a.p_adjusted != b.p_adjusted) return a.p_adjusted < b.p_adjusted;
    return std::fabs(a.z) > std::fabs(b.z);
  });
  describe_flags(r, group_names);
  return r;
}

}  // namespace tinyemo::analysis
