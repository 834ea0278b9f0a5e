#include "data/evaluation.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "analysis/statistics.h"
#include "core/error.h"
#include "models/projector/classify.h"

namespace tinyemo::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kShardSplits[] = {"all", "train", "val", "test"};

// Relabels `set` with the taxonomy's canonical names at `level` (labels
// merged when two spellings mean one label), in the taxonomy's order.
projector::FeatureSet canonical(projector::FeatureSet set, const Taxonomy& t, const std::string& level,
                                const std::vector<std::string>& level_labels, const std::string& where) {
  std::vector<std::string> mapped(set.labels.size());
  std::set<std::string> used;
  for (size_t l = 0; l < set.labels.size(); ++l) {
    const std::string& raw = set.labels[l];
    if (std::find(level_labels.begin(), level_labels.end(), raw) != level_labels.end()) {
      mapped[l] = raw;
    } else {
      const auto c = t.resolve(raw);
      TE_CHECK(c.has_value(), "{}: label \"{}\" is not in taxonomy {}{} ({})", where, raw, t.name,
               level.empty() ? "" : " at level " + level, t.source);
      mapped[l] = t.at_level(*c, level);
    }
    used.insert(mapped[l]);
  }
  std::vector<std::string> labels;
  for (const auto& l : level_labels) {
    if (used.count(l)) labels.push_back(l);
  }
  for (auto& id : set.label_ids) {
    TE_CHECK(id >= 0, "{}: a feature without a label", where);
    id = std::find(labels.begin(), labels.end(), mapped[id]) - labels.begin();
  }
  set.labels = std::move(labels);
  return set;
}

// Rows of several feature sets one after the other, labels by name (first-seen order).
projector::FeatureSet concat(const std::vector<const projector::FeatureSet*>& parts, const std::string& source) {
  projector::FeatureSet out;
  out.source = source;
  const int64_t d = parts.front()->dim();
  std::vector<float> x;
  for (const auto* p : parts) {
    TE_CHECK(p->dim() == d, "{}: features of dimension {} and {} cannot be trained together", source, d, p->dim());
    const std::vector<float> v = p->features.to_f32_vector();
    x.insert(x.end(), v.begin(), v.end());
    for (int64_t i = 0; i < p->size(); ++i) {
      const std::string& name = p->labels[p->label_ids[i]];
      auto it = std::find(out.labels.begin(), out.labels.end(), name);
      if (it == out.labels.end()) it = out.labels.insert(out.labels.end(), name);
      out.label_ids.push_back(it - out.labels.begin());
      out.files.push_back(p->files[i]);
    }
  }
  out.features = Tensor::from_vector<float>({static_cast<int64_t>(out.label_ids.size()), d}, x);
  return out;
}

struct Prepared {
  const EvalDataset* dataset = nullptr;
  bool trained_on = false;
  projector::FeatureSet train, eval;
  std::string eval_split, train_split;
  std::vector<std::string> present;  // labels present in the evaluation set (taxonomy order)
};

std::vector<std::string> present_labels(const projector::FeatureSet& set) {
  std::vector<bool> seen(set.labels.size(), false);
  for (int64_t id : set.label_ids) seen[id] = true;
  std::vector<std::string> out;
  for (size_t l = 0; l < set.labels.size(); ++l) {
    if (seen[l]) out.push_back(set.labels[l]);
  }
  return out;
}

// Fills the anchor bookkeeping of `cell` and returns, per evaluated image,
// the index of its label in `allowed` (-1 when it has no anchor).
std::vector<int64_t> truth_in(const projector::FeatureSet& eval, const std::vector<std::string>& allowed, EvalCell& cell) {
  std::vector<int64_t> truth(static_cast<size_t>(eval.size()));
  std::set<std::string> missing;
  for (int64_t i = 0; i < eval.size(); ++i) {
    const std::string& name = eval.labels[eval.label_ids[i]];
    const auto it = std::find(allowed.begin(), allowed.end(), name);
    truth[i] = it == allowed.end() ? -1 : it - allowed.begin();
    if (truth[i] < 0) {
      missing.insert(name);
      ++cell.images_without_anchor;
    }
  }
  for (const auto& l : cell.labels) {
    if (missing.count(l)) cell.labels_without_anchor.push_back(l);
  }
  return truth;
}

double accuracy_of(const std::vector<int64_t>& truth, const std::vector<int64_t>& predicted) {
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) correct += truth[i] >= 0 && truth[i] == predicted[i];
  return truth.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(truth.size());
}

std::vector<std::string> intersect(const std::vector<std::string>& wanted, const std::vector<std::string>& have) {
  std::vector<std::string> out;
  for (const auto& l : wanted) {
    if (std::find(have.begin(), have.end(), l) != have.end()) out.push_back(l);
  }
  return out;
}

std::string pct(double v) { return fmt::format("{:.2f}", 100.0 * v); }

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

}  // namespace

EvalDataset load_eval_dataset(const std::string& name, const fs::path& path, const std::optional<fs::path>& taxonomies) {
  EvalDataset d;
  d.name = name;
  d.path = path;
  const size_t colon = name.find(':');
  d.taxonomy = load_taxonomy(name.substr(0, colon), taxonomies);
  if (colon != std::string::npos) d.level = name.substr(colon + 1);
  d.labels = d.taxonomy.level_labels(d.level);
  std::error_code ec;
  bool shards = false;
  if (fs::is_directory(path, ec)) {
    for (const char* split : kShardSplits) {
      const fs::path shard = path / (std::string(split) + ".safetensors");
      if (!fs::is_regular_file(shard, ec)) continue;
      shards = true;
      d.splits[split] = canonical(projector::load_feature_shard(shard), d.taxonomy, d.level, d.labels, shard.string());
    }
  }
  if (!shards) {
    d.splits["all"] = canonical(projector::load_features(path), d.taxonomy, d.level, d.labels, path.string());
  }
  TE_CHECK(!(d.splits.count("all") && d.splits.size() > 1), "{}: holds all.safetensors beside split shards; keep one or the other",
           path.string());
  return d;
}

const EvalCell* EvalReport::cell(const std::string& method, const std::string& dataset) const {
  for (const auto& c : cells) {
    if (c.method == method && c.dataset == dataset) return &c;
  }
  return nullptr;
}

Summary summarize(const EvalCell& cell) {
  Summary s;
  s.runs = static_cast<int>(cell.accuracy.size());
  if (s.runs == 0) return s;
  for (double a : cell.accuracy) s.mean += a;
  s.mean /= s.runs;
  if (s.runs > 1) {
    double ss = 0.0;
    for (double a : cell.accuracy) ss += (a - s.mean) * (a - s.mean);
    s.sd = std::sqrt(ss / (s.runs - 1));
    const double half = analysis::student_t_quantile(0.975, s.runs - 1) * s.sd / std::sqrt(static_cast<double>(s.runs));
    s.low = s.mean - half;
    s.high = s.mean + half;
    s.interval = "t over seeds";
  } else {
    // Wilson score interval of a proportion over the n evaluated images.
    const double z = 1.959963984540054, n = static_cast<double>(std::max<int64_t>(cell.n, 1)), p = s.mean;
    const double centre = (p + z * z / (2 * n)) / (1 + z * z / n);
    const double half = z / (1 + z * z / n) * std::sqrt(p * (1 - p) / n + z * z / (4 * n * n));
    s.low = centre - half;
    s.high = centre + half;
    s.interval = "Wilson over images";
  }
  return s;
}

const std::map<std::string, double>& paper_accuracy() {
  static const std::map<std::string, double> table = {
      {"emotionroi", 71.72}, {"emoset", 82.67}, {"webemo", 35.77},   {"emotion6", 73.4},
      {"fi", 64.16},         {"artphoto", 39.83}, {"abstract", 28.32}, {"unbiasedemo", 82.40}};
  return table;
}

EvalReport run_evaluation(const std::vector<EvalDataset>& datasets, const EvalOptions& o,
                          const std::function<void(const std::string&)>& progress) {
  TE_CHECK(!datasets.empty(), "evaluation: no datasets");
  TE_CHECK(!o.train.empty(), "evaluation: name at least one dataset to train on");
  TE_CHECK(!o.seeds.empty(), "evaluation: no seeds");
  TE_CHECK(o.test_fraction > 0.0 && o.test_fraction < 1.0, "evaluation: test fraction {} not in (0, 1)", o.test_fraction);
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };
  std::set<std::string> names;
  for (const auto& d : datasets) TE_CHECK(names.insert(d.name).second, "evaluation: dataset {} given twice", d.name);
  for (const auto& t : o.train) TE_CHECK(names.count(t), "evaluation: --train names {}, which is not among the datasets", t);

  EvalReport report;
  nlohmann::json protocol_datasets = nlohmann::json::object();
  std::vector<Prepared> prepared;
  for (const auto& d : datasets) {
    Prepared p;
    p.dataset = &d;
    p.trained_on = std::find(o.train.begin(), o.train.end(), d.name) != o.train.end();
    nlohmann::json info = {{"path", d.path.string()}, {"taxonomy", d.taxonomy.source}, {"trained_on", p.trained_on}};
    if (d.splits.count("test")) {
      p.eval = d.splits.at("test");
      p.eval_split = "test";
      if (p.trained_on) {
        TE_CHECK(d.splits.count("train"), "{}: has a test split but no train split to train on", d.path.string());
        p.train = d.splits.at("train");
        p.train_split = "train";
      }
    } else {
      TE_CHECK(d.splits.count("all"), "{}: no test split and no all split: nothing to evaluate on", d.path.string());
      const projector::FeatureSet& all = d.splits.at("all");
      if (p.trained_on) {
        const projector::Split s = projector::split_train_val(all, o.test_fraction, o.split_seed);
        p.train = all.subset(s.train);
        p.eval = all.subset(s.val);
        p.train_split = fmt::format("all minus the held-out part");
        p.eval_split = fmt::format("held out of all: round({} x n) per label, split seed {}", o.test_fraction, o.split_seed);
        info["held_out_files"] = p.eval.files;
      } else {
        p.eval = all;
        p.eval_split = "all (not trained on)";
      }
    }
    TE_CHECK(p.eval.size() > 0, "{}: the evaluation set is empty", d.path.string());
    p.present = present_labels(p.eval);
    info["eval_split"] = p.eval_split;
    info["n_eval"] = p.eval.size();
    if (p.trained_on) {
      info["train_split"] = p.train_split;
      info["n_train"] = p.train.size();
    }
    info["labels"] = p.present;
    protocol_datasets[d.name] = info;
    report.datasets.push_back(d.name);
    prepared.push_back(std::move(p));
  }
  std::vector<const projector::FeatureSet*> parts;
  for (const auto& p : prepared) {
    if (p.trained_on) parts.push_back(&p.train);
  }
  std::string joint_name;
  for (const auto& t : o.train) joint_name += (joint_name.empty() ? "" : "+") + t;
  const projector::FeatureSet joint = concat(parts, "joint training set " + joint_name);
  for (const auto& p : prepared) {
    TE_CHECK(p.eval.dim() == joint.dim(), "{}: features of dimension {}, the training features have {}",
             p.dataset->path.string(), p.eval.dim(), joint.dim());
  }

  // The projector, once per seed.
  const std::string method = fmt::format("tinyemo projector, recipe {}", projector::recipe_name(o.training.recipe));
  report.methods.push_back(method);
  std::vector<EvalCell> projector_cells;
  for (const auto& p : prepared) {
    EvalCell c;
    c.method = method;
    c.dataset = p.dataset->name;
    c.trained_on = p.trained_on;
    c.n = p.eval.size();
    c.labels = p.present;
    projector_cells.push_back(std::move(c));
  }
  for (uint64_t seed : o.seeds) {
    say(fmt::format("training the projector on {} ({} images), seed {}", joint_name, joint.size(), seed));
    projector::TrainOptions t = o.training;
    t.seed = seed;
    const projector::ProjectorModel model = projector::train_projector(joint, t);
    for (size_t k = 0; k < prepared.size(); ++k) {
      const Prepared& p = prepared[k];
      EvalCell& c = projector_cells[k];
      const std::vector<std::string> allowed = intersect(p.present, model.labels());
      EvalCell scratch = c;  // anchor bookkeeping is the same for every seed: keep the first
      const std::vector<int64_t> truth = truth_in(p.eval, allowed, c.seeds.empty() ? c : scratch);
      std::vector<int64_t> predicted(truth.size(), -1);
      if (!allowed.empty()) {
        projector::ProjectorModel m = model;
        projector::restrict_labels(m, allowed);
        predicted = projector::classify(m, p.eval.features.data<float>(), p.eval.size()).predicted;
      }
      c.seeds.push_back(seed);
      c.accuracy.push_back(accuracy_of(truth, predicted));
    }
  }
  for (auto& c : projector_cells) report.cells.push_back(std::move(c));

  nlohmann::json probe_info;
  if (o.linear_probe) {
    say(fmt::format("training the linear probe on {}", joint_name));
    const LinearProbe probe = train_linear_probe(joint, o.probe);
    report.methods.push_back("linear probe");
    for (const auto& p : prepared) {
      EvalCell c;
      c.method = "linear probe";
      c.dataset = p.dataset->name;
      c.trained_on = p.trained_on;
      c.n = p.eval.size();
      c.labels = p.present;
      const std::vector<std::string> allowed = intersect(p.present, probe.labels);
      const std::vector<int64_t> truth = truth_in(p.eval, allowed, c);
      std::vector<int64_t> idx;
      for (const auto& l : allowed) idx.push_back(std::find(probe.labels.begin(), probe.labels.end(), l) - probe.labels.begin());
      std::vector<int64_t> predicted(truth.size(), -1);
      if (!idx.empty()) {
        const std::vector<int64_t> raw = probe.predict(p.eval.features.data<float>(), p.eval.size(), idx);
        for (size_t i = 0; i < raw.size(); ++i) predicted[i] = std::find(idx.begin(), idx.end(), raw[i]) - idx.begin();
      }
      c.accuracy.push_back(accuracy_of(truth, predicted));
      report.cells.push_back(std::move(c));
    }
    probe_info = {{"l2", probe.l2}, {"l2_grid", o.probe.l2_grid}, {"cv_accuracy", probe.cv_accuracy},
                  {"folds", o.probe.folds}, {"inputs", "L2-normalised (x / |x| * sqrt(D))"}};
  }

  nlohmann::json zero_shot_info;
  if (o.clip_zero_shot != nullptr) {
    say("CLIP zero-shot");
    std::vector<std::string> union_labels;
    for (const auto& p : prepared) {
      for (const auto& l : p.present) {
        if (std::find(union_labels.begin(), union_labels.end(), l) == union_labels.end()) union_labels.push_back(l);
      }
    }
    const ZeroShotClassifier zs(*o.clip_zero_shot, union_labels, o.prompt_template);
    TE_CHECK(zs.dim() == joint.dim(), "CLIP zero-shot: the text tower gives {}-d embeddings, the image features are {}-d "
             "(they must come from the same CLIP model)", zs.dim(), joint.dim());
    report.methods.push_back("CLIP zero-shot");
    for (const auto& p : prepared) {
      EvalCell c;
      c.method = "CLIP zero-shot";
      c.dataset = p.dataset->name;
      c.trained_on = false;
      c.n = p.eval.size();
      c.labels = p.present;
      const std::vector<int64_t> truth = truth_in(p.eval, p.present, c);
      const projector::Scores s = zs.classify(p.eval.features.data<float>(), p.eval.size());
      std::vector<int64_t> column;  // each present label's column in the scores
      for (const auto& l : p.present) {
        column.push_back(std::find(union_labels.begin(), union_labels.end(), l) - union_labels.begin());
      }
      std::vector<int64_t> predicted(truth.size(), 0);
      for (int64_t i = 0; i < s.n; ++i) {
        for (size_t a = 1; a < column.size(); ++a) {
          if (s.cosines[i * s.labels + column[a]] > s.cosines[i * s.labels + column[predicted[i]]]) {
            predicted[i] = static_cast<int64_t>(a);
          }
        }
      }
      c.accuracy.push_back(accuracy_of(truth, predicted));
      report.cells.push_back(std::move(c));
    }
    zero_shot_info = {{"model", o.clip_zero_shot->model.description()}, {"template", o.prompt_template}};
  }

  const projector::TrainOptions& t = o.training;
  report.protocol = {
      {"train", o.train},
      {"seeds", o.seeds},
      {"projector",
       {{"recipe", projector::recipe_name(t.recipe)},
        {"loss", projector::loss_name(t.loss.kind)},
        {"epochs", t.epochs},
        {"batch", t.batch},
        {"hidden", t.hidden},
        {"members", t.members},
        {"max_lr", t.schedule.max_lr},
        {"input_norm", projector::input_norm_name(t.input_norm)},
        {"anchors", t.anchors ? "fixed (" + std::to_string(t.anchors->labels.size()) + " labels)" : "learned"},
        {"checkpoint_selection", "none: the last epoch is evaluated"}}},
      {"test_fraction", o.test_fraction},
      {"split_seed", o.split_seed},
      {"datasets", protocol_datasets}};
  if (!probe_info.is_null()) report.protocol["linear_probe"] = probe_info;
  if (!zero_shot_info.is_null()) report.protocol["clip_zero_shot"] = zero_shot_info;
  return report;
}

nlohmann::json report_json(const EvalReport& r) {
  nlohmann::json cells = nlohmann::json::array();
  for (const auto& c : r.cells) {
    const Summary s = summarize(c);
    nlohmann::json j = {{"method", c.method},
                        {"dataset", c.dataset},
                        {"trained_on", c.trained_on},
                        {"n", c.n},
                        {"labels", c.labels},
                        {"accuracy", c.accuracy},
                        {"mean", s.mean},
                        {"sd", s.sd},
                        {"ci95", {s.low, s.high}},
                        {"ci95_method", s.interval}};
    if (!c.seeds.empty()) j["seeds"] = c.seeds;
    if (!c.labels_without_anchor.empty()) {
      j["labels_without_anchor"] = c.labels_without_anchor;
      j["images_without_anchor"] = c.images_without_anchor;
    }
    cells.push_back(j);
  }
  nlohmann::json paper = nlohmann::json::object();
  for (const auto& d : r.datasets) {
    if (paper_accuracy().count(d)) paper[d] = paper_accuracy().at(d);
  }
  return {{"datasets", r.datasets}, {"methods", r.methods}, {"cells", cells},
          {"paper", {{"method", "TinyEmo-700M (paper, Table VIII)"}, {"accuracy_percent", paper}}},
          {"protocol", r.protocol}};
}

namespace {

// A table cell's text; `marks` gets the footnote marks.
std::string cell_text(const EvalCell* c) {
  if (c == nullptr) return "";
  const Summary s = summarize(*c);
  std::string t = s.runs > 1 ? fmt::format("{} ± {} [{}, {}]", pct(s.mean), pct(s.sd), pct(s.low), pct(s.high))
                             : fmt::format("{} [{}, {}]", pct(s.mean), pct(s.low), pct(s.high));
  if (!c->trained_on) t += " †";
  if (!c->labels_without_anchor.empty()) t += " ‡";
  return t;
}

std::vector<std::string> footnotes(const EvalReport& r) {
  std::vector<std::string> notes;
  notes.push_back("Top-1 accuracy (%) over the labels present in each evaluation set: mean ± sd over the seeds with "
                  "the 95 % Student-t interval of the mean; single runs (deterministic methods) with the 95 % Wilson "
                  "interval over the images.");
  notes.push_back("† zero-shot: the dataset was not trained on (CLIP zero-shot is zero-shot everywhere).");
  for (const auto& c : r.cells) {
    if (c.labels_without_anchor.empty()) continue;
    std::string labels;
    for (const auto& l : c.labels_without_anchor) labels += (labels.empty() ? "" : ", ") + l;
    notes.push_back(fmt::format("‡ {} on {}: no anchor for {} ({} of {} images, counted as wrong).", c.method, c.dataset,
                                labels, c.images_without_anchor, c.n));
  }
  notes.push_back("Checkpoint selection: none (the projector's last epoch; the probe's penalty by cross-validation on "
                  "the training set). TinyEmo's train.py instead keeps the epoch that scores best on UnbiasedEmo's "
                  "test set, so its numbers are selected on a test split.");
  notes.push_back("Paper: TinyEmo-700M, Table VIII of the TinyEmo paper, for reference only: its training sets, "
                  "anchors (from the LM) and splits are not the ones above.");
  return notes;
}

std::string dataset_line(const EvalReport& r, const std::string& d) {
  const auto& info = r.protocol.at("datasets").at(d);
  std::string line = fmt::format("{}: evaluated on {} ({} images)", d, info.at("eval_split").get<std::string>(),
                                 info.at("n_eval").get<int64_t>());
  if (info.at("trained_on").get<bool>()) {
    line += fmt::format("; trained on {} ({} images)", info.at("train_split").get<std::string>(),
                        info.at("n_train").get<int64_t>());
  }
  return line;
}

}  // namespace

std::string report_markdown(const EvalReport& r) {
  std::string md = "# Evaluation (TinyEmo Table VIII protocol)\n\n";
  std::string trained;
  for (const auto& t : r.protocol.at("train")) trained += (trained.empty() ? "" : ", ") + t.get<std::string>();
  md += fmt::format("Trained jointly on: {}. Seeds: {}.\n\n", trained, r.protocol.at("seeds").dump());
  md += "| method |";
  for (const auto& d : r.datasets) md += fmt::format(" {} |", d);
  md += "\n| --- |";
  for (size_t i = 0; i < r.datasets.size(); ++i) md += " --- |";
  md += "\n";
  for (const auto& m : r.methods) {
    md += fmt::format("| {} |", m);
    for (const auto& d : r.datasets) md += fmt::format(" {} |", cell_text(r.cell(m, d)));
    md += "\n";
  }
  md += "| TinyEmo-700M (paper) |";
  for (const auto& d : r.datasets) {
    md += paper_accuracy().count(d) ? fmt::format(" {:.2f} |", paper_accuracy().at(d)) : " |";
  }
  md += "\n\n";
  for (const auto& n : footnotes(r)) md += "- " + n + "\n";
  md += "\nEvaluation sets:\n\n";
  for (const auto& d : r.datasets) md += "- " + dataset_line(r, d) + "\n";
  return md;
}

std::string report_html(const EvalReport& r) {
  std::string h =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tinyemo evaluation</title>\n"
      "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
      "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}"
      "tr.paper td{color:#555;font-style:italic}</style></head><body>\n"
      "<h1>Evaluation (TinyEmo Table VIII protocol)</h1>\n";
  std::string trained;
  for (const auto& t : r.protocol.at("train")) trained += (trained.empty() ? "" : ", ") + t.get<std::string>();
  h += "<p>Trained jointly on: " + html_escape(trained) + ". Seeds: " + html_escape(r.protocol.at("seeds").dump()) +
       ".</p>\n<table>\n<tr><th>method</th>";
  for (const auto& d : r.datasets) h += "<th>" + html_escape(d) + "</th>";
  h += "</tr>\n";
  for (const auto& m : r.methods) {
    h += "<tr><td>" + html_escape(m) + "</td>";
    for (const auto& d : r.datasets) h += "<td>" + html_escape(cell_text(r.cell(m, d))) + "</td>";
    h += "</tr>\n";
  }
  h += "<tr class=\"paper\"><td>TinyEmo-700M (paper)</td>";
  for (const auto& d : r.datasets) {
    h += "<td>" + (paper_accuracy().count(d) ? fmt::format("{:.2f}", paper_accuracy().at(d)) : std::string()) + "</td>";
  }
  h += "</tr>\n</table>\n<ul>\n";
  for (const auto& n : footnotes(r)) h += "<li>" + html_escape(n) + "</li>\n";
  h += "</ul>\n<h2>Evaluation sets</h2>\n<ul>\n";
  for (const auto& d : r.datasets) h += "<li>" + html_escape(dataset_line(r, d)) + "</li>\n";
  h += "</ul>\n</body></html>\n";
  return h;
}

}  // namespace tinyemo::data
