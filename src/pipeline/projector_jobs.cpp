#include "pipeline/projector_jobs.h"

#include <algorithm>
#include <set>

#include "io/file.h"
#include "models/lm/embeddings.h"
#include "models/lm/gguf_model.h"
#include "models/lm/model.h"
#include "models/lm/tokenizer.h"

namespace tinyemo::pipeline {

using namespace tinyemo::projector;

AnchorSet lm_label_anchors(const LmAnchorSource& source, const std::vector<std::string>& labels) {
  const lm::LmModel model = lm::LmModel::load(source.lm);
  // The LM's own tokenizer: its folder's files, or those a .gguf carries.
  const std::unique_ptr<lm::Tokenizer> tok = lm::load_lm_tokenizer(source.lm, source.tokenizer);
  return lm_label_anchors(model, *tok, source.grounding, labels);
}

AnchorSet lm_label_anchors(const lm::LmModel& model, const lm::Tokenizer& tokenizer, const std::string& grounding,
                           const std::vector<std::string>& labels) {
  AnchorSet a;
  a.labels = labels;
  a.hidden = model.token_embeddings().dim(1);
  for (const auto& label : labels) {
    std::string text = grounding;
    for (size_t at = text.find("{label}"); at != std::string::npos; at = text.find("{label}", at + label.size())) {
      text.replace(at, 7, label);
    }
    const std::vector<float> row = label_anchor(model, tokenizer, text).to_f32_vector();
    a.rows.insert(a.rows.end(), row.begin(), row.end());
  }
  return a;
}

void use_anchors(ProjectorModel& model, AnchorSet a, const std::string& source) {
  TE_CHECK(a.hidden == model.hidden_dim(), "{}: anchors have dimension {}, the projector's output has {}", source,
           a.hidden, model.hidden_dim());
  model.set_anchors(std::move(a.labels), std::move(a.rows));
}

FeatureSet select_split(const FeatureSet& set, const ProjectorModel& model, const std::string& split,
                        const std::string& model_path) {
  if (split == "all") return set;
  TE_CHECK(split == "val" || split == "train", "--split must be all, val or train, got \"{}\"", split);
  TE_CHECK(!model.split.files.empty(), "{}: the model records no held-out files (trained with --val-fraction 0?)",
           model_path);
  const std::set<std::string> held(model.split.files.begin(), model.split.files.end());
  std::vector<int64_t> rows;
  int64_t found = 0;
  for (int64_t i = 0; i < set.size(); ++i) {
    const bool is_held = held.count(set.files[i]) != 0;
    found += is_held;
    if (is_held == (split == "val")) rows.push_back(i);
  }
  TE_CHECK(found == static_cast<int64_t>(held.size()),
           "{}: holds {} of the model's {} held-out files (the model was trained from {})", set.source, found,
           held.size(), model.split.features);
  return set.subset(rows);
}

EvalSplit choose_eval_split(const FeatureSet& set, const ProjectorModel& model, const std::string& split,
                            const std::string& model_path) {
  TE_CHECK(split == "auto" || split == "all" || split == "val" || split == "train",
           "--split must be auto, all, val or train, got \"{}\"", split);
  const std::set<std::string> held(model.split.files.begin(), model.split.files.end());
  int64_t held_here = 0;
  for (const std::string& f : set.files) held_here += held.count(f) != 0;
  // The same features the model was trained from (compared as paths after resolving links).
  std::error_code ec;
  const bool training_features =
      !model.split.features.empty() &&
      std::filesystem::weakly_canonical(model.split.features, ec) == std::filesystem::weakly_canonical(set.source, ec);
  EvalSplit e;
  e.split = split;
  if (split == "auto") e.split = held_here > 0 ? "val" : "all";
  e.set = select_split(set, model, e.split, model_path);
  if (e.split == "val") {
    e.note = fmt::format("the {} files the model held out at training", e.set.size());
  } else if (e.split == "train") {
    e.note = fmt::format("the {} files the model was trained on (not a measure of generalisation)", e.set.size());
  } else if (held_here > 0 || training_features) {
    e.note = fmt::format("all {} files, including those the model was trained on ({} held out: --split val)",
                         e.set.size(), held_here);
  } else if (held.empty()) {
    e.note = fmt::format("all {} files (the model records no held-out files, so these may include its training data)",
                         e.set.size());
  } else {
    e.note = fmt::format("all {} files (none is a file the model held out or was trained from)", e.set.size());
  }
  return e;
}

Evaluation evaluate_features(const ProjectorModel& model, FeatureSet set) {
  remap_labels(set, model.labels());
  const Scores s = classify(model, set.features.data<float>(), set.size());
  std::vector<int64_t> truth, predicted;
  for (int64_t i = 0; i < set.size(); ++i) {
    if (set.label_ids[i] < 0) continue;
    truth.push_back(set.label_ids[i]);
    predicted.push_back(s.predicted[i]);
  }
  TE_CHECK(!truth.empty(), "{}: no labelled features to evaluate", set.source);
  return evaluate(truth, predicted, model.labels());
}

TrainJobResult run_train_job(const TrainJob& job, const std::function<void(int64_t, int64_t)>& on_start,
                             const std::function<void(const EpochReport&)>& on_epoch) {
  TrainOptions opt = job.options;
  TE_CHECK(job.anchors_file.empty() || !job.lm_anchors.given(), "give --anchors or --anchors-lm, not both");
  // A model written into its own feature folder would be read as features by the next run.
  check_output_outside(job.out, job.features, "the features");
  if (!job.anchors_file.empty()) opt.anchors = load_anchors(job.anchors_file, opt.hidden);
  const FeatureSet all = load_features(job.features);
  if (job.on_warning) {
    for (const auto& skip : all.skipped) job.on_warning("skipped " + skip);
  }
  if (opt.anchors) {
    for (const auto& label : all.labels) {
      TE_CHECK(std::find(opt.anchors->labels.begin(), opt.anchors->labels.end(), label) != opt.anchors->labels.end(),
               "{}: no anchor for label \"{}\" of {}", job.anchors_file, label, job.features);
    }
  }
  if (job.lm_anchors.given()) {
    opt.anchors = lm_label_anchors(job.lm_anchors, all.labels);
    TE_CHECK(!job.hidden_given || opt.hidden == opt.anchors->hidden,
             "--hidden {} does not match the hidden size {} of {}", opt.hidden, opt.anchors->hidden, job.lm_anchors.lm);
    opt.hidden = opt.anchors->hidden;
  }
  const Split split = split_train_val(all, job.val_fraction, job.split_seed);
  TE_CHECK(split.train.size() >= 2, "{}: too few features to train on ({} after holding out {})", job.features,
           split.train.size(), split.val.size());
  if (job.on_warning && opt.batch > static_cast<int64_t>(split.train.size())) {
    job.on_warning(fmt::format("the batch size {} is larger than the {} training features: every epoch is one batch "
                               "of {} (lower --batch for more steps)",
                               opt.batch, split.train.size(), split.train.size()));
  }
  if (on_start) on_start(static_cast<int64_t>(split.train.size()), static_cast<int64_t>(split.val.size()));
  TrainJobResult r;
  r.model = train_projector(all.subset(split.train), opt, on_epoch);
  r.model.split.features = job.features;
  r.model.split.fraction = job.val_fraction;
  r.model.split.seed = job.split_seed;
  for (int64_t i : split.val) r.model.split.files.push_back(all.files[i]);
  r.model.save(job.out);
  r.train = static_cast<int64_t>(split.train.size());
  r.val = static_cast<int64_t>(split.val.size());
  r.summary = {{"model", job.out},
               {"train", r.train},
               {"val", r.val},
               {"labels", r.model.labels()},
               {"training", r.model.config().training}};
  if (!split.val.empty()) {
    r.val_evaluation = evaluate_features(r.model, all.subset(split.val));
    r.summary["val_evaluation"] = evaluation_json(*r.val_evaluation);
  }
  return r;
}

FeatureRows load_feature_rows(const std::vector<std::string>& files, int64_t dim) {
  FeatureRows rows;
  for (const auto& f : files) {
    try {
      if (f.ends_with(".safetensors")) {
        const FeatureSet shard = load_feature_shard(f, dim);
        for (int64_t i = 0; i < shard.size(); ++i) rows.names.push_back(f + ":" + shard.files[i]);
        rows.errors.resize(rows.names.size());
        rows.values.insert(rows.values.end(), shard.features.data<float>(),
                           shard.features.data<float>() + shard.size() * dim);
      } else {
        const std::vector<float> v = load_feature_file(f, dim);
        rows.names.push_back(f);
        rows.errors.emplace_back();
        rows.values.insert(rows.values.end(), v.begin(), v.end());
      }
    } catch (const Error& e) {
      rows.names.push_back(f);
      rows.errors.emplace_back(e.what());
    }
  }
  return rows;
}

}  // namespace tinyemo::pipeline
