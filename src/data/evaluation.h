// TinyEmo's Table VIII protocol: the Metric Projector trained jointly on a
// chosen set of datasets (the union of their labels), then top-1 accuracy on
// each dataset's evaluation set over the labels present in it — zero-shot for
// the datasets not trained on — over several training seeds, beside baseline
// rows (a linear probe on the same features, CLIP zero-shot) and the paper's
// numbers. Nothing is ever selected on an evaluation set: the projector trains
// for the recipe's fixed number of epochs, the probe's penalty is chosen by
// cross-validation inside the training set.
//
// Evaluation sets: a dataset's `test` split when it has one. A dataset
// shipped without splits (`all`) is split once — stratified, round(fraction x
// n) of each label held out, `split_seed` (the same rule as `projector train
// --val-fraction`), fixed across training seeds — when it is trained on, and
// evaluated whole when it is not.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/linear_probe.h"
#include "data/taxonomy.h"
#include "data/zero_shot.h"
#include "models/projector/dataset.h"
#include "models/projector/train.h"

namespace tinyemo::data {

// One dataset's features: the shards `features --format F` writes
// (<dir>/{all,train,val,test}.safetensors), or one feature folder / shard
// (TinyEmo's `<label>/<name>.pt` layout) read as the split `all`. Labels are
// mapped to the canonical names of the taxonomy `name` (a label it does not
// know is an error naming it). `name` may carry a level, "webemo:7": the
// taxonomy's labels at that level (features written with `--level 7`, or
// fine labels, which are mapped up).
struct EvalDataset {
  std::string name;   // as given ("emotion6", "webemo:7")
  std::filesystem::path path;
  Taxonomy taxonomy;
  std::string level;  // "" = the taxonomy's own labels
  std::vector<std::string> labels;  // the taxonomy's labels at `level`
  std::map<std::string, projector::FeatureSet> splits;
};
EvalDataset load_eval_dataset(const std::string& name, const std::filesystem::path& path,
                              const std::optional<std::filesystem::path>& taxonomies = {});

struct EvalOptions {
  std::vector<std::string> train;  // names of the datasets trained on jointly (at least one)
  std::vector<uint64_t> seeds = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  projector::TrainOptions training = projector::TrainOptions::for_recipe(projector::Recipe::TinyEmo);
  double test_fraction = 0.2;  // held out of an `all` dataset that is trained on
  uint64_t split_seed = 0;
  bool linear_probe = true;
  LinearProbeOptions probe;
  const ClipTextEncoder* clip_zero_shot = nullptr;  // the CLIP zero-shot row, when given
  std::string prompt_template = kDefaultPromptTemplate;
};

// One method on one dataset.
struct EvalCell {
  std::string method, dataset;
  bool trained_on = false;
  int64_t n = 0;                                 // evaluated images
  std::vector<std::string> labels;               // the labels present in the evaluation set
  std::vector<std::string> labels_without_anchor;  // present but unscorable (their images count as wrong)
  int64_t images_without_anchor = 0;
  std::vector<uint64_t> seeds;    // empty for deterministic methods
  std::vector<double> accuracy;   // one per seed, or one value
};

struct Summary {
  int runs = 0;
  double mean = 0.0, sd = 0.0;  // sd: sample standard deviation over seeds (0 for one run)
  double low = 0.0, high = 0.0;  // 95 %: Student t over seeds; for one run, Wilson's interval over the n images
  std::string interval;          // "t over seeds" or "Wilson over images"
};
Summary summarize(const EvalCell& cell);

struct EvalReport {
  std::vector<std::string> datasets;  // in the order given
  std::vector<std::string> methods;   // rows, in order
  std::vector<EvalCell> cells;
  nlohmann::json protocol;            // options, per-dataset evaluation sets and held-out files
  const EvalCell* cell(const std::string& method, const std::string& dataset) const;
};

// Runs the protocol; `progress` (optional) is told what is being done.
EvalReport run_evaluation(const std::vector<EvalDataset>& datasets, const EvalOptions& options,
                          const std::function<void(const std::string&)>& progress = {});

// TinyEmo-700M's Table VIII accuracies (%), by dataset name.
const std::map<std::string, double>& paper_accuracy();

nlohmann::json report_json(const EvalReport& report);
std::string report_markdown(const EvalReport& report);
std::string report_html(const EvalReport& report);

}  // namespace tinyemo::data
