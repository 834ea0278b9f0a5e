#include "analysis/audit_inputs.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/ranges.h>

#include "analysis/groups_csv.h"
#include "core/error.h"
#include "models/projector/classify.h"
#include "models/projector/dataset.h"

namespace tinyemo::analysis {
namespace fs = std::filesystem;
namespace {

// Skipped rows are summarised per reason, naming the first few files.
class SkipLog {
 public:
  void add(const std::string& reason, const std::string& file) { by_reason_[reason].push_back(file); }
  size_t total() const {
    size_t n = 0;
    for (const auto& [reason, files] : by_reason_) n += files.size();
    return n;
  }
  void write(std::vector<std::string>& warnings) const {
    constexpr size_t kNamed = 5;
    for (const auto& [reason, files] : by_reason_) {
      std::string names;
      for (size_t i = 0; i < std::min(files.size(), kNamed); ++i) names += (i ? ", " : "") + files[i];
      if (files.size() > kNamed) names += fmt::format(", ... ({} more)", files.size() - kNamed);
      warnings.push_back(fmt::format("{} row{} skipped: {}: {}", files.size(), files.size() == 1 ? "" : "s", reason,
                                     names));
    }
  }

 private:
  std::map<std::string, std::vector<std::string>> by_reason_;
};

// A CSV path must stay inside the features folder.
bool is_contained(const std::string& file) {
  const fs::path p(file);
  if (p.is_absolute() || p.has_root_name()) return false;
  return std::none_of(p.begin(), p.end(), [](const fs::path& part) { return part == ".."; });
}

// Shard entries are `<label>/<stem>`; the CSV may name them with an extension.
std::string shard_key(const std::string& file) {
  const fs::path p(file);
  return p.has_extension() ? (p.parent_path() / p.stem()).generic_string() : p.generic_string();
}

}  // namespace

AuditInputs load_audit_inputs(const fs::path& model_path, const fs::path& features, const fs::path& groups_csv) {
  const projector::ProjectorModel model = projector::ProjectorModel::load(model_path);
  AuditInputs inputs = load_audit_inputs(model, features, groups_csv);
  inputs.provenance["model"] = model_path.string();
  return inputs;
}

AuditInputs load_audit_inputs(const projector::ProjectorModel& model, const fs::path& features,
                              const fs::path& groups_csv) {
  TE_CHECK(fs::exists(features), "{}: features not found (expected a folder <label>/<name>.pt or a feature shard)",
           features.string());
  const GroupsCsv csv = load_groups_csv(groups_csv);
  AuditInputs in;
  in.warnings = csv.warnings;
  const int64_t D = model.input_dim();
  const std::vector<std::string>& labels = model.labels();
  std::map<std::string, int> label_index;
  for (size_t i = 0; i < labels.size(); ++i) label_index[labels[i]] = static_cast<int>(i);

  // Groups in name order (stable report layout); a group whose rows are all
  // skipped stays listed so the audit can say it is empty.
  std::set<std::string> group_names;
  for (const GroupRow& row : csv.rows) group_names.insert(row.group);
  in.data.groups.assign(group_names.begin(), group_names.end());
  std::map<std::string, int> group_index;
  for (size_t i = 0; i < in.data.groups.size(); ++i) group_index[in.data.groups[i]] = static_cast<int>(i);

  const bool shard = fs::is_regular_file(features);
  projector::FeatureSet shard_set;
  std::map<std::string, int64_t> shard_rows;
  if (shard) {
    shard_set = projector::load_feature_shard(features, D);
    for (int64_t i = 0; i < shard_set.size(); ++i) shard_rows.emplace(shard_set.files[i], i);
  }

  SkipLog skipped;
  std::vector<float> x;
  std::set<std::string> unknown_labels;
  for (const GroupRow& row : csv.rows) {
    if (!is_contained(row.file)) {
      skipped.add("path leaves the features folder", row.file);
      continue;
    }
    if (shard) {
      const auto it = shard_rows.find(shard_key(row.file));
      if (it == shard_rows.end()) {
        skipped.add(fmt::format("not in the feature shard {}", features.string()), row.file);
        continue;
      }
      const float* f = shard_set.features.data<float>() + it->second * D;
      x.insert(x.end(), f, f + D);
    } else {
      const fs::path file = features / row.file;
      std::error_code ec;
      if (!fs::exists(file, ec)) {
        skipped.add(fmt::format("no such file in {}", features.string()), row.file);
        continue;
      }
      // Anything else (a FIFO, a folder) is refused by the reader with what it is.
      try {
        const std::vector<float> f = projector::load_feature_file(file, D);
        x.insert(x.end(), f.begin(), f.end());
      } catch (const Error& e) {
        skipped.add(fmt::format("unreadable feature file ({})", e.what()), row.file);
        continue;
      }
    }
    int truth = -1;
    if (!row.label.empty()) {
      const auto it = label_index.find(row.label);
      if (it != label_index.end()) {
        truth = it->second;
      } else {
        unknown_labels.insert(row.label);
      }
    }
    in.files.push_back(row.file);
    in.data.group.push_back(group_index.at(row.group));
    if (csv.has_label_column) in.data.truth.push_back(truth);
  }
  skipped.write(in.warnings);
  if (!unknown_labels.empty()) {
    std::string names;
    for (const auto& l : unknown_labels) names += (names.empty() ? "\"" : ", \"") + l + "\"";
    in.warnings.push_back(fmt::format("labels not among the model's labels ({}), treated as unknown: {}",
                                      fmt::join(labels, ", "), names));
  }
  TE_CHECK(!in.files.empty(), "{}: none of its {} rows names a usable feature file in {}", groups_csv.string(),
           csv.rows.size(), features.string());

  const int64_t n = static_cast<int64_t>(in.files.size());
  const projector::Scores scores = projector::classify(model, x.data(), n);
  in.data.labels = labels;
  in.data.predicted.assign(scores.predicted.begin(), scores.predicted.end());
  in.data.scores = scores.probabilities;
  in.data.score_name = "probability";
  in.provenance = {{"features", features.string()},
                   {"features_format", shard ? "feature shard (safetensors)" : "TinyEmo folder (<label>/<name>.pt)"},
                   {"groups_csv", groups_csv.string()},
                   {"csv_rows", csv.rows.size() + csv.rows_skipped},
                   {"images_used", n},
                   {"rows_skipped", skipped.total() + csv.rows_skipped},
                   {"label_column", csv.has_label_column},
                   {"scores", "softmax probabilities of the projector (cosine / temperature)"}};
  return in;
}

}  // namespace tinyemo::analysis
