#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "analysis/report.h"
#include "analysis/svg.h"

namespace tinyemo::analysis {
namespace {

using nlohmann::json;
using html::escape;

std::string pval(double p) { return p < 1e-4 ? fmt::format("{:.1e}", p) : fmt::format("{:.4f}", p); }
std::string str(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Effect sizes d: rows = emotions, columns = "vs rest" then, when pairs were
// tested, every emotion (row vs column; the pair tests are antisymmetric).
html::HeatMap effect_map(const json& j) {
  html::HeatMap m;
  for (const auto& l : j["labels"]) m.rows.push_back(l["label"].get<std::string>());
  m.cols = {"vs rest"};
  if (j["options"]["label_pairs"].get<bool>()) m.cols.insert(m.cols.end(), m.rows.begin(), m.rows.end());
  m.values.assign(m.rows.size(), std::vector<double>(m.cols.size(), NAN));
  m.marked.assign(m.rows.size(), std::vector<bool>(m.cols.size(), false));
  const auto row_of = [&](const std::string& l) { return std::find(m.rows.begin(), m.rows.end(), l) - m.rows.begin(); };
  double max_abs = 0.0;
  for (const auto& t : j["tests"]) {
    if (!t["effect_size"].is_number()) continue;
    const double d = t["effect_size"].get<double>();
    max_abs = std::max(max_abs, std::fabs(d));
    const auto a = row_of(t["a"].get<std::string>());
    const bool flagged = t["p_adjusted"].get<double>() < j["options"]["alpha"].get<double>() &&
                         std::fabs(d) > j["options"]["min_effect"].get<double>();
    if (t["b"] == "rest") {
      m.values[a][0] = d;
      m.marked[a][0] = flagged;
    } else {
      const auto b = row_of(t["b"].get<std::string>());
      m.values[a][b + 1] = d;
      m.values[b][a + 1] = -d;
      m.marked[a][b + 1] = m.marked[b][a + 1] = flagged;
    }
  }
  m.scale = std::max(1.0, std::ceil(max_abs * 2.0) / 2.0);
  m.print_factor = 1.0;
  return m;
}

}  // namespace

std::string associations_report_html(const json& j) {
  const auto names = j["target_names"].get<std::vector<std::string>>();
  const json& o = j["options"];
  std::string b = "<h1>Emotion associations in an LM's embedding space</h1>";
  b += "<div class=\"review\"><b>For human review.</b> " + escape(j["note"].get<std::string>()) + "</div>";
  b += fmt::format("<p>Target sets <b>{}</b> ({} terms) and <b>{}</b> ({} terms); {} emotion labels; {} tests; flagged "
                   "when the BH-adjusted two-sided p-value is below {} and |d| exceeds {}; seed {}.</p>",
                   escape(names[0]), j["targets"][0]["terms"].size(), escape(names[1]),
                   j["targets"][1]["terms"].size(), j["labels"].size(), j["tests"].size(), o["alpha"].dump(),
                   o["min_effect"].dump(), o["seed"].dump());
  if (!j["warnings"].empty()) {
    b += "<div class=\"warn\"><b>Warnings</b><ul>";
    for (const auto& w : j["warnings"]) b += "<li>" + escape(w.get<std::string>()) + "</li>";
    b += "</ul></div>";
  }
  b += fmt::format("<h2>Flagged items ({})</h2>", j["flags"].size());
  if (j["flags"].empty()) {
    b += "<p>No association test met both thresholds.</p>";
  } else {
    b += "<table><tr><th>#</th><th class=\"t\">emotion</th><th class=\"t\">versus</th><th class=\"t\">closer set</th>"
         "<th>d</th><th>p</th><th>BH-adjusted p</th></tr>";
    for (size_t i = 0; i < j["flags"].size(); ++i) {
      const json& f = j["flags"][i];
      b += fmt::format("<tr><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td>"
                       "<td>{:+.2f}</td><td>{}</td><td>{}</td></tr>",
                       i + 1, escape(str(f["emotion"])), escape(str(f["versus"])), escape(str(f["target_closer"])),
                       f["effect"].get<double>(), pval(f["p_value"].get<double>()),
                       pval(f["p_adjusted"].get<double>()));
    }
    b += "</table><ol>";
    for (const auto& f : j["flags"]) b += "<li>" + escape(f["explanation"].get<std::string>()) + "</li>";
    b += "</ol>";
  }
  b += fmt::format("<h2>Effect sizes d (positive: {} closer to the row emotion)</h2>", escape(names[0]));
  b += html::heat_map_svg(effect_map(j));

  b += "<h2>Which emotions sit closest to each set's terms</h2><table><tr><th>rank</th>";
  for (const auto& n : names) b += fmt::format("<th class=\"t\">{}</th><th>mean cosine</th>", escape(n));
  b += "</tr>";
  for (size_t r = 0; r < j["labels"].size(); ++r) {
    b += fmt::format("<tr><td>{}</td>", r + 1);
    for (const auto& t : j["targets"]) {
      const json& c = t["closest"][r];
      b += fmt::format("<td class=\"t\">{}</td><td>{:.4f}</td>", escape(str(c["label"])), c["mean_cosine"].get<double>());
    }
    b += "</tr>";
  }
  b += "</table>";

  for (const auto& t : j["targets"]) {
    b += fmt::format("<details><summary>Terms of <b>{}</b> ({}) and their nearest emotion</summary><table><tr>"
                     "<th class=\"t\">term</th><th class=\"t\">nearest</th><th class=\"t\">tokens</th></tr>",
                     escape(str(t["name"])), escape(str(t["file"])));
    for (const auto& term : t["terms"]) {
      b += fmt::format("<tr><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td></tr>",
                       escape(str(term["term"])), escape(str(term["nearest"])), escape(term["tokens"].dump()));
    }
    b += "</table></details>";
  }

  b += "<h2>Inputs and options</h2><table>";
  for (const auto& [k, v] : j["inputs"].items())
    b += fmt::format("<tr><th class=\"t\">{}</th><td class=\"t\">{}</td></tr>", escape(k), escape(str(v)));
  for (const auto& [k, v] : o.items())
    b += fmt::format("<tr><th class=\"t\">{}</th><td class=\"t\">{}</td></tr>", escape(k), escape(str(v)));
  b += "</table>";
  b += "<h2>Method</h2><ul>"
       "<li>Anchor of a text: the mean of the LM's input-embedding rows of its tokens (BOS included where the "
       "tokenizer adds one, as TinyEmo's label anchors), labels wrapped in the template shown.</li>"
       "<li>WEAT (Caliskan et al. 2017): s(w, A, B) = mean cos(w, A) - mean cos(w, B); d = (mean s over the first set "
       "- mean s over the second) / sample std of s over both; attributes: one emotion's anchor against the other "
       "emotions' anchors, and against each other emotion.</li>"
       "<li>p-values over re-partitions of the pooled terms into sets of the original sizes: exact when the "
       "partitions are few enough, otherwise sampled, p = (1 + #) / (1 + B); Benjamini-Hochberg over all tests.</li>"
       "</ul>";
  return html::page("tinyemo bias associations", b);
}

}  // namespace tinyemo::analysis
