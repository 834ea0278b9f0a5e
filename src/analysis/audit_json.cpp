#include "analysis/audit_json.h"

#include <cmath>

namespace tinyemo::analysis {
namespace {

nlohmann::json interval(const Interval& ci) {
  if (!ci.defined) return nullptr;
  return nlohmann::json::array({json_number(ci.low), json_number(ci.high)});
}

nlohmann::json chi_square(const ChiSquareTest& t) {
  return {{"statistic", json_number(t.statistic)},
          {"df", t.df},
          {"p_value", json_number(t.p_value)},
          {"cramers_v", json_number(t.cramers_v)},
          {"n", t.n},
          {"min_expected", json_number(t.min_expected)},
          {"share_expected_below_5", json_number(t.share_expected_below_5)},
          {"defined", t.defined()}};
}

template <class T>
nlohmann::json by_label(const std::vector<std::string>& labels, const std::vector<T>& values) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t e = 0; e < labels.size() && e < values.size(); ++e) j[labels[e]] = json_number(static_cast<double>(values[e]));
  return j;
}

nlohmann::json pair_json(const AuditResult& r, const PairResult& p) {
  nlohmann::json j = {{"group", r.groups[p.group].name},
                      {"emotion", r.labels[p.emotion]},
                      {"count", p.count},
                      {"rate", json_number(p.rate)},
                      {"rate_rest", json_number(p.rate_rest)},
                      {"effect", json_number(p.effect)},
                      {"effect_ci", interval(p.effect_ci)},
                      {"p_value", json_number(p.evidence.p_value)},
                      {"p_adjusted", json_number(p.evidence.p_adjusted)},
                      {"z", json_number(p.evidence.z)},
                      {"replicates", p.evidence.replicates}};
  if (r.has_labels) {
    j["label_rate"] = json_number(p.label_rate);
    j["label_rate_rest"] = json_number(p.label_rate_rest);
    j["conditional"] = {{"effect", json_number(p.conditional_effect)},
                        {"effect_ci", interval(p.conditional_effect_ci)},
                        {"p_value", json_number(p.conditional.p_value)},
                        {"p_adjusted", json_number(p.conditional.p_adjusted)},
                        {"z", json_number(p.conditional.z)},
                        {"replicates", p.conditional.replicates},
                        {"cmh_statistic", json_number(p.cmh.statistic)},
                        {"cmh_p_value", json_number(p.cmh.p_value)},
                        {"cmh_strata", p.cmh.strata_used}};
    j["n_true"] = p.n_true;
    j["recall"] = json_number(p.recall);
    j["recall_rest"] = json_number(p.recall_rest);
    j["recall_gap"] = json_number(p.recall_gap);
    j["recall_gap_ci"] = interval(p.recall_gap_ci);
  }
  return j;
}

}  // namespace

nlohmann::json json_number(double v) {
  if (!std::isfinite(v)) return nullptr;
  return v;
}

nlohmann::json audit_to_json(const AuditResult& r, const nlohmann::json& inputs) {
  const AuditOptions& o = r.options;
  nlohmann::json j;
  j["kind"] = "tinyemo.bias.audit";
  j["note"] =
      "Flags mark (group, emotion) pairs whose difference is statistically supported and larger than the minimum "
      "effect. They are leads for a person to review with the evidence shown, not verdicts of bias.";
  j["inputs"] = inputs;
  j["options"] = {{"alpha", o.alpha},          {"min_effect", o.min_effect}, {"permutations", o.permutations},
                  {"bootstrap", o.bootstrap},  {"ci_level", o.ci_level},     {"seed", o.seed},
                  {"sequential_h", o.sequential_h}};
  j["n"] = r.n;
  j["labels"] = r.labels;
  j["groups"] = nlohmann::json::array();
  for (const GroupSummary& g : r.groups) {
    nlohmann::json gj = {{"name", g.name},
                         {"n", g.n},
                         {"predicted_counts", by_label(r.labels, g.predicted_counts)},
                         {"predicted_share", by_label(r.labels, g.predicted_share)}};
    if (!g.mean_scores.empty()) gj["mean_scores"] = by_label(r.labels, g.mean_scores);
    if (r.has_labels) {
      gj["n_labelled"] = g.n_labelled;
      gj["label_counts"] = by_label(r.labels, g.label_counts);
      gj["accuracy"] = json_number(g.accuracy);
      gj["accuracy_ci"] = interval(g.accuracy_ci);
      gj["accuracy_gap"] = json_number(g.accuracy_gap);
      gj["accuracy_gap_ci"] = interval(g.accuracy_gap_ci);
    }
    j["groups"].push_back(gj);
  }
  j["independence"] = chi_square(r.independence.chi_square);
  j["independence"]["permutation_p"] = json_number(r.independence.permutation_p);
  j["has_labels"] = r.has_labels;
  if (r.has_labels) {
    j["n_labelled"] = r.n_labelled;
    j["label_independence"] = chi_square(*r.label_independence);
    j["conditional_independence"] = {{"permutation_p", json_number(r.conditional_permutation_p.value_or(NAN))},
                                     {"statistic", "sum over true labels of Pearson X^2 (group x predicted)"}};
  }
  j["pairs"] = nlohmann::json::array();
  for (const PairResult& p : r.pairs) j["pairs"].push_back(pair_json(r, p));
  j["flags"] = nlohmann::json::array();
  for (const Flag& f : r.flags) {
    const PairResult& p = r.pairs[f.pair];
    nlohmann::json fj = {{"kind", f.kind},
                         {"group", r.groups[p.group].name},
                         {"emotion", r.labels[p.emotion]},
                         {"effect", json_number(f.effect)},
                         {"p_value", json_number(f.p_value)},
                         {"p_adjusted", json_number(f.p_adjusted)},
                         {"z", json_number(f.z)},
                         {"explanation", f.explanation},
                         {"evidence", pair_json(r, p)}};
    if (!f.attribution.empty()) fj["attribution"] = f.attribution;
    j["flags"].push_back(fj);
  }
  j["warnings"] = r.warnings;
  j["replicates_run"] = {{"prediction_rate", r.replicates_run}, {"conditional_on_label", r.conditional_replicates_run}};
  return j;
}

}  // namespace tinyemo::analysis
