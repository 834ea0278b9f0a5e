// Training a Metric Projector on precomputed features.
//
// `Recipe::TinyEmo` is TinyEmo's trainer (projector_mps/src/model/model.py):
// batches of 32 shuffled each epoch with the last partial batch dropped,
// training-mode BatchNorm and dropout 0.2, the image embedding and the label
// anchors L2-normalised, the chosen metric loss, AdamW (weight decay 0.01) +
// OneCycleLR (max_lr 5e-4, pct_start 0.005) stepped once per batch.
// `Recipe::Best` is tinyemo's own, chosen by cross-validation (see
// docs/projector.md for everything tried): the CosineEmbedding loss,
// L2-normalised input features, and an ensemble of 5 projectors (different
// seeds, shared anchors) whose normalised outputs are averaged.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/projector/dataset.h"
#include "models/projector/losses.h"
#include "models/projector/model.h"
#include "models/projector/optim.h"

namespace tinyemo::projector {

enum class Recipe { TinyEmo, Best };
std::string_view recipe_name(Recipe r);
Recipe parse_recipe(std::string_view name);

struct TrainOptions {
  Recipe recipe = Recipe::TinyEmo;
  LossSpec loss;
  int64_t hidden = 1280;
  int epochs = 5;
  int batch = 32;
  uint64_t seed = 0;
  double dropout = 0.2;
  InputNorm input_norm = InputNorm::None;
  OneCycleConfig schedule;
  AdamWConfig adamw;
  // Ensemble size: members trained with different seeds against one anchor table.
  int members = 1;
  // Fixed label anchors (TinyEmo: from the LM); without them the anchors are
  // learned (initialised N(0, 1), trained with the same optimiser).
  std::optional<AnchorSet> anchors;

  // The options a recipe starts from (callers may override fields after).
  static TrainOptions for_recipe(Recipe recipe);
};

// Stratified held-out split: in every label, a seeded shuffle of its samples,
// the first round(fraction * n) held out. Returns {train, val} indices, each sorted.
struct Split {
  std::vector<int64_t> train, val;
};
Split split_train_val(const FeatureSet& set, double fraction, uint64_t seed);

struct EpochReport {
  int member = 0;
  int epoch = 0;
  double mean_loss = 0.0;
  double seconds = 0.0;
};

// Refuses, before anything is allocated, options whose training cannot fit in
// the machine's memory (e.g. --hidden 1e8: 1e16 parameters), saying how much
// they would need. train_projector calls it first.
void check_training_memory(const FeatureSet& train, const TrainOptions& options);

// Trains on every sample of `train` (label_ids must be >= 0). `on_epoch`
// (optional) is called after each epoch.
ProjectorModel train_projector(const FeatureSet& train, const TrainOptions& options,
                               const std::function<void(const EpochReport&)>& on_epoch = {});

}  // namespace tinyemo::projector
