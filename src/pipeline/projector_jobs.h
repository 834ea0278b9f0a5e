// The Metric Projector's jobs as `tinyemo projector ...` runs them: training
// with a held-out split recorded in the model, evaluation on a chosen split,
// label anchors from an LM's input embeddings, feature rows from files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "models/projector/classify.h"
#include "models/projector/dataset.h"
#include "models/projector/model.h"
#include "models/projector/train.h"

namespace tinyemo::lm {
class LmModel;
class Tokenizer;
}  // namespace tinyemo::lm

namespace tinyemo::pipeline {

// Label anchors from an LM's input embeddings (TinyEmo's LLM.get_embds): for
// each label, the mean of the embedding rows of the grounding text's tokens
// ("{label}" replaced by the label), BOS included where the tokenizer adds one.
struct LmAnchorSource {
  std::string lm;                  // a model folder or .gguf
  std::string tokenizer;           // empty: the LM's own (its folder, or the files inside the .gguf)
  std::string grounding = "{label}";
  bool given() const { return !lm.empty(); }
};
projector::AnchorSet lm_label_anchors(const LmAnchorSource& source, const std::vector<std::string>& labels);
// The same with a loaded model and tokenizer (the C API's te_lm_label_anchors).
projector::AnchorSet lm_label_anchors(const lm::LmModel& model, const lm::Tokenizer& tokenizer, const std::string& grounding,
                                      const std::vector<std::string>& labels);

// Replaces the model's labels and anchors (open taxonomy), checking the width.
void use_anchors(projector::ProjectorModel& model, projector::AnchorSet anchors, const std::string& source);

// The rows of `set` that the model held out ("val"), the others ("train") or
// all ("all"); errors when the set does not hold the model's held-out files.
projector::FeatureSet select_split(const projector::FeatureSet& set, const projector::ProjectorModel& model,
                                   const std::string& split, const std::string& model_path);
// The rows `projector eval` scores and what they are. `split` "auto" (the
// default) is "val" when `set` holds the files the model held out at training
// (so training files never enter an accuracy unasked), else "all" with a note
// saying why (no held-out files recorded, or none of them in `set`: other
// data). "val", "train" and "all" are taken as asked; "all" on the features
// the model was trained from says that it mixes training files in.
struct EvalSplit {
  projector::FeatureSet set;
  std::string split;  // "val", "train" or "all"
  std::string note;   // one sentence for the user: which rows these are
};
EvalSplit choose_eval_split(const projector::FeatureSet& set, const projector::ProjectorModel& model,
                            const std::string& split, const std::string& model_path);

// Top-1 metrics of the model on the labelled rows of `set`.
projector::Evaluation evaluate_features(const projector::ProjectorModel& model, projector::FeatureSet set);

struct TrainJob {
  std::string features, out;
  projector::TrainOptions options;
  double val_fraction = 0.2;
  uint64_t split_seed = 0;
  std::string anchors_file;  // fixed anchors from a file, or
  LmAnchorSource lm_anchors;  // from an LM (then the LM's hidden size is H)
  bool hidden_given = false;  // options.hidden was asked for (checked against the LM's)
  // Told what the job passed over or doubts (entries of the feature folder
  // the walk skipped, ...), one message each; null: not told.
  std::function<void(const std::string&)> on_warning;
};
struct TrainJobResult {
  projector::ProjectorModel model;
  int64_t train = 0, val = 0;
  std::optional<projector::Evaluation> val_evaluation;
  nlohmann::json summary;  // {model, train, val, labels, training, val_evaluation?}
};
// Loads the features, holds out val_fraction of every label, trains, records
// the split in the model, saves it to `out` and evaluates the held-out part.
// An `out` inside the feature folder (or equal to the shard) is refused first.
// `on_start` gets (train count, held-out count) before training.
TrainJobResult run_train_job(const TrainJob& job, const std::function<void(int64_t, int64_t)>& on_start,
                             const std::function<void(const projector::EpochReport&)>& on_epoch);

// Feature rows from files: .pt files (one [D] row each, named by the file) and
// feature shards (.safetensors, rows named "<file>:<label>/<stem>"). A file
// that cannot be read (missing, malformed, another width) becomes one entry
// with its error, and the others are still read.
struct FeatureRows {
  std::vector<std::string> names;
  std::vector<std::string> errors;  // [names.size()], empty for a row that was read
  std::vector<float> values;        // [rows read, D], in the order of `names`, skipping failed entries
};
FeatureRows load_feature_rows(const std::vector<std::string>& files, int64_t dim);

}  // namespace tinyemo::pipeline
