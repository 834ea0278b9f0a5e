#include "analysis/associations.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "analysis/audit_json.h"
#include "analysis/statistics.h"
#include "core/error.h"
#include "io/file.h"
#include "models/lm/embeddings.h"

namespace tinyemo::analysis {
namespace {

std::string trim(std::string_view s) {
  const auto not_space = [](char c) { return c != ' ' && c != '\t' && c != '\r'; };
  const auto b = std::find_if(s.begin(), s.end(), not_space);
  const auto e = std::find_if(s.rbegin(), s.rend(), not_space).base();
  return b < e ? std::string(b, e) : std::string();
}

std::vector<int32_t> parse_ids(std::string_view text, const std::string& where, int line) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == ',')) ++i;
    if (i >= text.size()) break;
    int32_t v = 0;
    const auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), v);
    TE_CHECK(ec == std::errc() && v >= 0, "{}: line {}: \"ids:\" needs non-negative token ids, got \"{}\"", where, line,
             std::string(text.substr(i, 12)));
    ids.push_back(v);
    i = static_cast<size_t>(end - text.data());
  }
  TE_CHECK(!ids.empty(), "{}: line {}: \"ids:\" without token ids", where, line);
  return ids;
}

std::string fill_template(std::string_view tmpl, const std::string& label) {
  std::string out(tmpl);
  const size_t at = out.find("{label}");
  if (at != std::string::npos) out.replace(at, 7, label);
  return out;
}

std::string weat_explanation(const nlohmann::json& t, const std::string& x, const std::string& y) {
  const double d = t["effect_size"].get<double>();
  const std::string versus =
      t["b"] == "rest" ? std::string("the other emotions") : fmt::format("\"{}\"", t["b"].get<std::string>());
  return fmt::format(
      "Terms of \"{}\" sit closer to \"{}\" (relative to {}) than terms of \"{}\" do: effect size d = {:+.2f}, "
      "two-sided p = {:.3g} ({} over {} partitions), BH-adjusted p = {:.3g}.",
      d >= 0 ? x : y, t["a"].get<std::string>(), versus, d >= 0 ? y : x, d, t["p_two_sided"].get<double>(),
      t["exact"].get<bool>() ? "exact" : "sampled", t["partitions"].get<int64_t>(), t["p_adjusted"].get<double>());
}

// cos(term t, label anchor e) for every pair, row-major [terms, labels].
struct CosineTable {
  size_t terms = 0, labels = 0;
  std::vector<double> values;
  double at(size_t t, size_t e) const { return values[t * labels + e]; }

  // s(w, A, B) for every term w: A = {anchor a}, B = {anchor b} or, for b < 0,
  // every other anchor in label order. The sums run in the order weat.cpp's
  // association() runs them over copied vectors, so the results are the same bits.
  std::vector<double> associations(size_t a, int64_t b) const {
    std::vector<double> s(terms);
    for (size_t t = 0; t < terms; ++t) {
      double sa = 0.0, sb = 0.0;
      sa += at(t, a);
      size_t nb = 0;
      for (size_t f = 0; f < labels; ++f) {
        if (b < 0 ? f == a : f != static_cast<size_t>(b)) continue;
        sb += at(t, f);
        ++nb;
      }
      s[t] = sa / 1.0 - sb / static_cast<double>(nb);
    }
    return s;
  }
};

CosineTable cosine_table(const Vectors& terms, const Vectors& anchors) {
  CosineTable c;
  c.terms = terms.size();
  c.labels = anchors.size();
  c.values.resize(c.terms * c.labels);
  for (size_t t = 0; t < c.terms; ++t)
    for (size_t e = 0; e < c.labels; ++e) c.values[t * c.labels + e] = cosine(terms[t], anchors[e]);
  return c;
}

}  // namespace

TermList parse_term_list(std::string_view text, const std::string& source, const std::string& name) {
  TermList list;
  list.name = name;
  list.source = source;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  std::set<std::string> seen;
  int line = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t nl = std::min(text.find('\n', pos), text.size());
    const std::string_view raw = text.substr(pos, nl - pos);
    ++line;
    pos = nl + 1;
    TE_CHECK(raw.find('\0') == std::string_view::npos, "{}: line {}: NUL byte (not a text file?)", source, line);
    const std::string term = trim(raw);
    if (term.empty() || term[0] == '#') continue;
    std::vector<int32_t> ids;
    if (term.rfind("ids:", 0) == 0) ids = parse_ids(std::string_view(term).substr(4), source, line);
    if (!seen.insert(term).second) {
      list.warnings.push_back(fmt::format("{}: line {}: \"{}\" is listed twice; the repeat is ignored", source, line, term));
      continue;
    }
    list.terms.push_back(term);
    list.given_ids.push_back(std::move(ids));
  }
  TE_CHECK(!list.terms.empty(), "{}: no terms (one word or phrase per line)", source);
  return list;
}

TermList load_term_list(const std::filesystem::path& path) {
  return parse_term_list(read_file(path), path.string(), path.stem().string());
}

EmbeddedTerms embed_terms(const lm::LmModel& model, const lm::Tokenizer* tokenizer, const TermList& terms, bool with_bos,
                          std::string_view template_text) {
  EmbeddedTerms out;
  for (size_t i = 0; i < terms.terms.size(); ++i) {
    std::vector<int32_t> ids = terms.given_ids[i];
    if (ids.empty()) {
      TE_CHECK(tokenizer != nullptr, "{}: \"{}\" needs a tokenizer (none found; pass --tokenizer or give \"ids:\")",
               terms.source, terms.terms[i]);
      ids = tokenizer->encode(fill_template(template_text, terms.terms[i]), with_bos);
    }
    TE_CHECK(!ids.empty(), "{}: \"{}\" has no tokens", terms.source, terms.terms[i]);
    const int64_t vocab = model.token_embeddings().dim(0);
    for (int32_t id : ids) {
      TE_CHECK(id < vocab, "{}: \"{}\": token id {} is outside the LM's vocabulary ({} tokens)", terms.source,
               terms.terms[i], id, vocab);
    }
    out.vectors.push_back(mean_embedding(model, ids).to_f32_vector());
    out.ids.push_back(std::move(ids));
  }
  return out;
}

nlohmann::json run_associations(const AssociationInput& in, const AssociationOptions& o, const nlohmann::json& inputs) {
  const std::vector<std::string>& labels = in.labels.terms;
  const Vectors& anchors = in.label_vectors.vectors;
  TE_CHECK(labels.size() >= 2, "{}: need at least two labels (got {})", in.labels.source, labels.size());
  TE_CHECK(o.alpha > 0.0 && o.alpha < 1.0, "associations: --alpha must be in (0, 1) (got {})", o.alpha);
  TE_CHECK(o.min_effect >= 0.0, "associations: --min-effect must be >= 0 (got {})", o.min_effect);
  nlohmann::json j;
  j["kind"] = "tinyemo.bias.associations";
  j["note"] =
      "Associations in the LM's input-embedding space between the target term sets and the emotion labels. "
      "Flags are leads for a person to review, not verdicts: embeddings reflect the LM's training text, and word "
      "lists decide what is measured.";
  j["inputs"] = inputs;
  j["options"] = {{"permutations", o.weat.permutations}, {"exact_limit", o.weat.exact_limit}, {"seed", o.weat.seed},
                  {"alpha", o.alpha}, {"min_effect", o.min_effect}, {"label_pairs", o.label_pairs},
                  {"template", in.template_text}};
  std::vector<std::string> warnings;
  for (const TermList* list : {&in.x, &in.y, &in.labels})
    warnings.insert(warnings.end(), list->warnings.begin(), list->warnings.end());
  if (in.x.terms.size() != in.y.terms.size()) {
    warnings.push_back(fmt::format("the target sets have different sizes ({} and {}); WEAT is defined for equal sizes, "
                                   "the test statistic is re-centred for the difference",
                                   in.x.terms.size(), in.y.terms.size()));
  }
  std::set<std::string> shared;
  for (const auto& t : in.x.terms)
    if (std::find(in.y.terms.begin(), in.y.terms.end(), t) != in.y.terms.end()) shared.insert(t);
  for (const auto& t : shared) warnings.push_back(fmt::format("\"{}\" is in both target sets", t));

  j["labels"] = nlohmann::json::array();
  for (size_t e = 0; e < labels.size(); ++e)
    j["labels"].push_back({{"label", labels[e]}, {"tokens", in.label_vectors.ids[e]}});

  // The cosine of every target term to every label anchor, computed once:
  // everything below reads these, so memory is terms x labels (plus the
  // anchors), never labels^2 x hidden as copying each test's attribute sets was.
  const CosineTable cx = cosine_table(in.x_vectors.vectors, anchors);
  const CosineTable cy = cosine_table(in.y_vectors.vectors, anchors);

  // Where each target set sits: cosine of every term to every label anchor.
  j["targets"] = nlohmann::json::array();
  for (const auto* set : {&in.x, &in.y}) {
    const EmbeddedTerms& ev = set == &in.x ? in.x_vectors : in.y_vectors;
    const CosineTable& ct = set == &in.x ? cx : cy;
    nlohmann::json tj = {{"name", set->name}, {"file", set->source}, {"terms", nlohmann::json::array()}};
    std::vector<double> mean(labels.size(), 0.0);
    for (size_t t = 0; t < set->terms.size(); ++t) {
      nlohmann::json cos = nlohmann::json::object();
      size_t best = 0;
      double best_cos = -2.0;
      for (size_t e = 0; e < labels.size(); ++e) {
        const double c = ct.at(t, e);
        cos[labels[e]] = c;
        mean[e] += c / static_cast<double>(set->terms.size());
        if (c > best_cos) best_cos = c, best = e;
      }
      tj["terms"].push_back({{"term", set->terms[t]}, {"tokens", ev.ids[t]}, {"cosine", cos}, {"nearest", labels[best]}});
    }
    std::vector<size_t> order(labels.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return mean[a] > mean[b]; });
    tj["closest"] = nlohmann::json::array();
    for (size_t e : order) tj["closest"].push_back({{"label", labels[e]}, {"mean_cosine", mean[e]}});
    j["targets"].push_back(tj);
  }
  // Mean cosine difference per label (X - Y): the descriptive side of the tests.
  nlohmann::json diff = nlohmann::json::object();
  for (size_t e = 0; e < labels.size(); ++e) {
    double dx = 0.0, dy = 0.0;
    for (size_t t = 0; t < cx.terms; ++t) dx += cx.at(t, e) / static_cast<double>(cx.terms);
    for (size_t t = 0; t < cy.terms; ++t) dy += cy.at(t, e) / static_cast<double>(cy.terms);
    diff[labels[e]] = dx - dy;
  }
  j["mean_cosine_difference"] = diff;

  // WEATs: each label vs the rest, then each pair. A test names its
  // attribute sets by label index (b = -1: every other label).
  struct Spec {
    std::string kind;
    size_t a;
    int64_t b;
  };
  std::vector<Spec> specs;
  for (size_t e = 0; e < labels.size(); ++e) specs.push_back({"label_vs_rest", e, -1});
  if (o.label_pairs) {
    for (size_t e = 0; e < labels.size(); ++e)
      for (size_t f = e + 1; f < labels.size(); ++f) specs.push_back({"label_pair", e, static_cast<int64_t>(f)});
  }
  const auto label_name = [&](int64_t b) { return b < 0 ? std::string("rest") : labels[static_cast<size_t>(b)]; };
  std::vector<double> p_two;
  j["tests"] = nlohmann::json::array();
  bool any_undefined = false;
  for (size_t i = 0; i < specs.size(); ++i) {
    WeatOptions wo = o.weat;
    wo.stream = i;
    const WeatResult r = weat_from_associations(cx.associations(specs[i].a, specs[i].b),
                                                cy.associations(specs[i].a, specs[i].b), wo);
    any_undefined |= std::isnan(r.effect_size);
    p_two.push_back(r.p_two_sided);
    j["tests"].push_back({{"kind", specs[i].kind},
                          {"a", labels[specs[i].a]},
                          {"b", label_name(specs[i].b)},
                          {"statistic", r.statistic},
                          {"effect_size", json_number(r.effect_size)},
                          {"p_one_sided", r.p_one_sided},
                          {"p_two_sided", r.p_two_sided},
                          {"exact", r.exact},
                          {"partitions", r.partitions},
                          {"s_x", r.s_x},
                          {"s_y", r.s_y}});
  }
  if (any_undefined) warnings.push_back("some effect sizes are undefined: every term has the same association");
  const std::vector<double> adjusted = benjamini_hochberg(p_two);
  for (size_t i = 0; i < specs.size(); ++i) j["tests"][i]["p_adjusted"] = adjusted[i];
  // The smallest two-sided p a partition test can give: 2 / C(n, |X|) when
  // exact with equal sizes (partitions come in mirrored pairs), 1 / C(n, |X|)
  // otherwise, 1 / (1 + B) when sampled. BH multiplies the smallest by the
  // number of tests.
  const auto& first = j["tests"][0];
  const double floor_p = first["exact"].get<bool>()
                             ? (in.x.terms.size() == in.y.terms.size() ? 2.0 : 1.0) / first["partitions"].get<double>()
                             : 1.0 / (1.0 + static_cast<double>(o.weat.permutations));
  if (floor_p * static_cast<double>(specs.size()) >= o.alpha) {
    warnings.push_back(fmt::format(
        "with {} and {} terms the smallest possible p-value is {:.3g}; after adjusting for {} tests nothing can reach "
        "alpha = {}: use longer word lists{}",
        in.x.terms.size(), in.y.terms.size(), floor_p, specs.size(), o.alpha,
        first["exact"].get<bool>() ? "" : " or more --permutations"));
  }

  j["flags"] = nlohmann::json::array();
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& t = j["tests"][i];
    if (!t["effect_size"].is_number()) continue;
    const double d = t["effect_size"].get<double>();
    if (adjusted[i] < o.alpha && std::fabs(d) > o.min_effect) {
      j["flags"].push_back({{"kind", t["kind"]},
                            {"emotion", t["a"]},
                            {"versus", t["b"]},
                            {"target_closer", d >= 0 ? in.x.name : in.y.name},
                            {"effect", d},
                            {"p_value", t["p_two_sided"]},
                            {"p_adjusted", adjusted[i]},
                            {"explanation", weat_explanation(t, in.x.name, in.y.name)}});
    }
  }
  std::stable_sort(j["flags"].begin(), j["flags"].end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    if (a["p_adjusted"] != b["p_adjusted"]) return a["p_adjusted"].get<double>() < b["p_adjusted"].get<double>();
    return std::fabs(a["effect"].get<double>()) > std::fabs(b["effect"].get<double>());
  });
  j["target_names"] = {in.x.name, in.y.name};
  j["warnings"] = warnings;
  return j;
}

}  // namespace tinyemo::analysis
