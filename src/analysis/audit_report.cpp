#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "analysis/report.h"
#include "analysis/svg.h"

namespace tinyemo::analysis {
namespace {

using nlohmann::json;
using html::escape;

double num(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}
std::string pct(double v) { return std::isnan(v) ? "n/a" : fmt::format("{:.1f}%", 100.0 * v); }
std::string pts(double v) { return std::isnan(v) ? "n/a" : fmt::format("{:+.1f}", 100.0 * v); }
std::string pval(double p) {
  if (std::isnan(p)) return "n/a";
  return p < 1e-4 ? fmt::format("{:.1e}", p) : fmt::format("{:.4f}", p);
}
std::string ci_text(const json& ci) {
  if (!ci.is_array()) return "";
  return fmt::format("[{}, {}]", pts(ci[0].get<double>()), pts(ci[1].get<double>()));
}

std::string inputs_table(const json& j) {
  std::string s = "<table>";
  const auto row = [&](const std::string& k, const std::string& v) {
    s += fmt::format("<tr><th class=\"t\">{}</th><td class=\"t\">{}</td></tr>", escape(k), escape(v));
  };
  // Known inputs in reading order, then anything else recorded.
  static const char* kOrder[] = {"command", "model", "features", "features_format", "groups_csv", "csv_rows",
                                 "images_used", "rows_skipped", "label_column", "scores"};
  const json& inputs = j["inputs"];
  const auto show = [&](const std::string& key) {
    const json& v = inputs[key];
    row(key, v.is_string() ? v.get<std::string>() : v.dump());
  };
  for (const char* key : kOrder)
    if (inputs.contains(key)) show(key);
  for (const auto& [key, value] : inputs.items())
    if (std::find(std::begin(kOrder), std::end(kOrder), key) == std::end(kOrder)) show(key);
  const json& o = j["options"];
  row("alpha (BH-adjusted p below)", o["alpha"].dump());
  row("minimum effect |rate difference| above", fmt::format("{} ({:.0f} percentage points)", o["min_effect"].dump(),
                                                             100.0 * o["min_effect"].get<double>()));
  row("permutations", o["permutations"].dump() +
                          (o["sequential_h"].get<int>() > 0
                               ? fmt::format(" (sequential stopping at {} exceedances)", o["sequential_h"].get<int>())
                               : ""));
  row("bootstrap resamples", fmt::format("{} (percentile {:.0f}% intervals)", o["bootstrap"].dump(),
                                         100.0 * o["ci_level"].get<double>()));
  row("seed", o["seed"].dump());
  row("images audited", j["n"].dump());
  s += "</table>";
  return s;
}

// One line per flag, before the detailed evidence.
std::string flag_summary(const json& flags) {
  std::string s = "<table><tr><th>#</th><th class=\"t\">group</th><th class=\"t\">emotion</th><th class=\"t\">test"
                  "</th><th>effect (points)</th><th>BH-adjusted p</th><th>z</th><th class=\"t\">attribution</th></tr>";
  for (size_t i = 0; i < flags.size(); ++i) {
    const json& f = flags[i];
    s += fmt::format("<tr><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td>"
                     "<td>{}</td><td>{:.1f}</td><td class=\"t\">{}</td></tr>",
                     i + 1, escape(f["group"].get<std::string>()), escape(f["emotion"].get<std::string>()),
                     f["kind"] == "conditional_on_label" ? "given the true label" : "prediction rate",
                     pts(num(f, "effect")), pval(num(f, "p_adjusted")), num(f, "z"),
                     f.contains("attribution") ? escape(f["attribution"].get<std::string>()) : "");
  }
  return s + "</table>";
}

std::string flag_html(const json& f, size_t rank) {
  const json& e = f["evidence"];
  const bool conditional = f["kind"] == "conditional_on_label";
  std::string s = "<div class=\"flag\">";
  s += fmt::format("<h3>{}. group <b>{}</b> &middot; emotion <b>{}</b> &middot; {} {} points</h3>", rank,
                   escape(f["group"].get<std::string>()), escape(f["emotion"].get<std::string>()),
                   conditional ? "given the true label:" : "prediction rate", pts(num(f, "effect")));
  s += fmt::format("<p>{}</p>", escape(f["explanation"].get<std::string>()));
  s += "<table><tr><th class=\"t\">test</th><th>effect (points)</th><th>95% CI</th><th>p</th><th>BH-adjusted p</th>"
       "<th>z</th><th>attribution</th></tr>";
  s += fmt::format("<tr><td class=\"t\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1f}</td><td>{}</td></tr>",
                   conditional ? "within-label permutation (MH risk difference)" : "group-label permutation",
                   pts(num(f, "effect")), ci_text(conditional ? e["conditional"]["effect_ci"] : e["effect_ci"]),
                   pval(num(f, "p_value")),
                   pval(num(f, "p_adjusted")), num(f, "z"),
                   f.contains("attribution") ? escape(f["attribution"].get<std::string>()) : "");
  s += "</table>";
  // Conditional flags' explanations already give the recall and the CMH test.
  if (!conditional && e.contains("label_rate")) {
    s += fmt::format("<p class=\"muted\">Recall of \"{}\" in the group: {} vs {} elsewhere (gap {} points {}); "
                     "CMH X&sup2; = {:.2f} (p = {}) for predicting \"{}\" given the true label.</p>",
                     escape(e["emotion"].get<std::string>()), pct(num(e, "recall")), pct(num(e, "recall_rest")),
                     pts(num(e, "recall_gap")), ci_text(e["recall_gap_ci"]), num(e["conditional"], "cmh_statistic"),
                     pval(num(e["conditional"], "cmh_p_value")), escape(e["emotion"].get<std::string>()));
  } else if (!conditional) {
    s += fmt::format("<p class=\"muted\">{} of the group's images predicted \"{}\". No true labels were given, so "
                     "the audit cannot tell whether the data or the model make the difference.</p>",
                     e["count"].dump(), escape(e["emotion"].get<std::string>()));
  }
  return s + "</div>";
}

html::HeatMap effect_map(const json& j, const std::string& kind) {
  html::HeatMap m;
  m.cols = j["labels"].get<std::vector<std::string>>();
  for (const auto& g : j["groups"]) m.rows.push_back(g["name"].get<std::string>());
  m.values.assign(m.rows.size(), std::vector<double>(m.cols.size(), NAN));
  m.marked.assign(m.rows.size(), std::vector<bool>(m.cols.size(), false));
  double max_abs = 0.0;
  const auto index = [&](const json& p, size_t& r, size_t& c) {
    r = std::find(m.rows.begin(), m.rows.end(), p["group"].get<std::string>()) - m.rows.begin();
    c = std::find(m.cols.begin(), m.cols.end(), p["emotion"].get<std::string>()) - m.cols.begin();
  };
  for (const auto& p : j["pairs"]) {
    size_t r, c;
    index(p, r, c);
    const double v = kind == "prediction_rate" ? num(p, "effect") : num(p["conditional"], "effect");
    m.values[r][c] = v;
    if (!std::isnan(v)) max_abs = std::max(max_abs, std::fabs(v));
  }
  for (const auto& f : j["flags"]) {
    if (f["kind"] != kind) continue;
    size_t r, c;
    index(f, r, c);
    m.marked[r][c] = true;
  }
  // A fixed floor keeps small noise pale; larger effects set the scale.
  m.scale = std::max(0.2, std::ceil(max_abs * 20.0) / 20.0);
  m.unit = "";
  return m;
}

html::StackedBars distribution(const json& j, const char* counts_key) {
  html::StackedBars b;
  b.categories = j["labels"].get<std::vector<std::string>>();
  for (const auto& g : j["groups"]) {
    b.rows.push_back(g["name"].get<std::string>());
    std::vector<double> shares;
    double total = 0.0;
    for (const auto& l : b.categories) total += num(g[counts_key], l.c_str());
    for (const auto& l : b.categories) shares.push_back(total > 0 ? num(g[counts_key], l.c_str()) / total : 0.0);
    b.shares.push_back(shares);
    b.row_notes.push_back(fmt::format("n = {:.0f}", total));
  }
  return b;
}

std::string test_row(const std::string& name, const json& t, const std::string& extra) {
  if (!t["defined"].get<bool>()) {
    return fmt::format("<tr><td class=\"t\">{}</td><td colspan=\"5\" class=\"t\">undefined (fewer than two non-empty "
                       "rows or columns)</td></tr>",
                       escape(name));
  }
  return fmt::format("<tr><td class=\"t\">{}</td><td>{:.2f}</td><td>{}</td><td>{}</td><td>{:.3f}</td><td>{}</td></tr>",
                     escape(name), num(t, "statistic"), t["df"].get<int>(), pval(num(t, "p_value")),
                     num(t, "cramers_v"), extra);
}

}  // namespace

std::string audit_report_html(const json& j) {
  const bool labelled = j.value("has_labels", false);
  const auto labels = j["labels"].get<std::vector<std::string>>();
  std::string b;
  b += "<h1>Emotion bias audit: image groups</h1>";
  b += "<div class=\"review\"><b>For human review.</b> " + escape(j["note"].get<std::string>()) +
       " A flag says the difference is unlikely to be chance; whether it is unfair, and why, is for a person to "
       "judge from the evidence below.</div>";
  const json& o = j["options"];
  b += fmt::format("<p>{} images in {} groups; flagged when the BH-adjusted p-value is below {} and the rate "
                   "difference exceeds {:.0f} percentage points; {} permutations, seed {}. Full inputs at the end.</p>",
                   j["n"].dump(), j["groups"].size(), o["alpha"].dump(), 100.0 * o["min_effect"].get<double>(),
                   o["permutations"].dump(), o["seed"].dump());
  if (!j["warnings"].empty()) {
    b += "<div class=\"warn\"><b>Warnings</b><ul>";
    for (const auto& w : j["warnings"]) b += "<li>" + escape(w.get<std::string>()) + "</li>";
    b += "</ul></div>";
  }

  const size_t num_flags = j["flags"].size();
  b += fmt::format("<h2>Flagged items ({})</h2>", num_flags);
  if (num_flags == 0) {
    b += fmt::format("<p>No (group, emotion) pair has a BH-adjusted p-value below {} together with an effect larger "
                     "than {:.0f} percentage points.</p>",
                     j["options"]["alpha"].dump(), 100.0 * j["options"]["min_effect"].get<double>());
  } else {
    b += "<p class=\"muted\">Ordered by evidence (adjusted p, then |z|). <i>prediction rate</i>: how often the model "
         "predicts the emotion for the group vs all other images. <i>given the true label</i>: the same among "
         "images with the same true emotion (the model treating the groups differently).";
    if (labelled) {
      b += " <i>Attribution</i>: <b>data</b> = the group's true-label mix explains the difference; <b>model</b> = a "
           "difference remains given the true label.";
    }
    b += "</p>" + flag_summary(j["flags"]) + "<h3>Evidence for each flag</h3>";
    for (size_t i = 0; i < num_flags; ++i) b += flag_html(j["flags"][i], i + 1);
  }

  b += "<h2>Effect sizes: predicted-emotion rate, group minus the rest (percentage points)</h2>";
  b += html::heat_map_svg(effect_map(j, "prediction_rate"));
  if (labelled) {
    b += "<h2>Given the true label: Mantel-Haenszel rate difference (percentage points)</h2>"
         "<p class=\"muted\">Near zero where the groups' predicted rates differ only because their true labels do.</p>";
    b += html::heat_map_svg(effect_map(j, "conditional_on_label"));
  }

  b += "<h2>Predicted emotions per group</h2>";
  b += html::stacked_bars_svg(distribution(j, "predicted_counts"));
  if (labelled) {
    b += "<h2>True labels per group (the data)</h2>";
    b += html::stacked_bars_svg(distribution(j, "label_counts"));
  }

  b += "<h2>Independence tests</h2><table><tr><th class=\"t\">table</th><th>X&sup2;</th><th>df</th><th>p (chi-square)</th>"
       "<th>Cram&eacute;r's V</th><th>p (permutation)</th></tr>";
  b += test_row("group x predicted emotion", j["independence"], pval(num(j["independence"], "permutation_p")));
  if (labelled) {
    b += test_row("group x true label (do the data differ?)", j["label_independence"], "");
    b += fmt::format("<tr><td class=\"t\">group x predicted, within true labels (does the model treat them "
                     "differently?)</td><td colspan=\"4\" class=\"t\">sum over labels of X&sup2;, permuted within "
                     "labels</td><td>{}</td></tr>",
                     pval(num(j["conditional_independence"], "permutation_p")));
  }
  b += "</table>";

  if (labelled) {
    html::IntervalPlot acc;
    acc.axis_low = 0.0;
    acc.axis_high = 1.0;
    acc.reference = -1.0;
    for (const auto& g : j["groups"]) {
      acc.rows.push_back(g["name"].get<std::string>());
      acc.value.push_back(num(g, "accuracy"));
      const bool ci = g["accuracy_ci"].is_array();
      acc.low.push_back(ci ? g["accuracy_ci"][0].get<double>() : NAN);
      acc.high.push_back(ci ? g["accuracy_ci"][1].get<double>() : NAN);
    }
    b += "<h2>Accuracy per group (bootstrap intervals)</h2>" + html::interval_plot_svg(acc);
    b += "<h2>Recall per emotion (equal opportunity)</h2><table><tr><th class=\"t\">group</th>";
    for (const auto& l : labels) b += "<th>" + escape(l) + "</th>";
    b += "</tr>";
    for (const auto& g : j["groups"]) {
      b += "<tr><td class=\"t\">" + escape(g["name"].get<std::string>()) + "</td>";
      for (const auto& p : j["pairs"]) {
        if (p["group"] != g["name"]) continue;
        b += fmt::format("<td>{} <span class=\"muted\">({} pts {})</span></td>", pct(num(p, "recall")),
                         pts(num(p, "recall_gap")), ci_text(p["recall_gap_ci"]));
      }
      b += "</tr>";
    }
    b += "</table><p class=\"muted\">Recall of the emotion in the group; in brackets the gap to all other images "
         "with its bootstrap interval.</p>";
  }

  if (j["groups"][0].contains("mean_scores")) {
    b += "<h2>Mean scores per group</h2><table><tr><th class=\"t\">group</th>";
    for (const auto& l : labels) b += "<th>" + escape(l) + "</th>";
    b += "</tr>";
    for (const auto& g : j["groups"]) {
      b += "<tr><td class=\"t\">" + escape(g["name"].get<std::string>()) + "</td>";
      for (const auto& l : labels) b += fmt::format("<td>{:.3f}</td>", num(g["mean_scores"], l.c_str()));
      b += "</tr>";
    }
    b += "</table><p class=\"muted\">" + escape(j["inputs"].value("scores", std::string("scores"))) + ".</p>";
  }

  b += "<h2>Inputs and thresholds</h2>" + inputs_table(j);
  b += "<h2>Method</h2><ul>"
       "<li>Per (group, emotion): rate of the prediction in the group minus the rate among all other images. "
       "p-values by permutation: group labels are shuffled across images (group sizes kept), p = (1 + #{|T*| &ge; "
       "|T|}) / (1 + B); every pair is computed from the same shuffle.</li>"
       "<li>Benjamini-Hochberg adjustment across all (group, emotion) pairs of a test family; a flag needs adjusted "
       "p &lt; alpha and |effect| &gt; the minimum effect.</li>"
       "<li>Given the true label: group labels are shuffled only among images with the same true label; the effect "
       "is the Mantel-Haenszel risk difference across labels (the Cochran-Mantel-Haenszel test is shown alongside).</li>"
       "<li>Intervals: percentile bootstrap, resampling images within each group.</li>"
       "<li>Chi-square p-values from the regularised incomplete gamma function; Cram&eacute;r's V = "
       "sqrt(X&sup2; / (n (min(r, c) - 1))).</li>"
       "<li>The same inputs, options and seed give the same numbers.</li></ul>";
  return html::page("tinyemo bias audit", b);
}

}  // namespace tinyemo::analysis
