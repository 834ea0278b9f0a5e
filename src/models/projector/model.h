// A trained Metric Projector: one self-contained safetensors file holding
//   model.0.weight [H, D], model.0.bias [H]            first Linear
//   model.1.weight, model.1.bias, model.1.running_mean,
//   model.1.running_var [H], model.1.num_batches_tracked (I64 [])  BatchNorm1d
//   model.4.weight [H, H], model.4.bias [H]            second Linear
//   anchors [L, H]                                     one row per label
// (TinyEmo's state-dict names, so the MLP tensors load into its AlignmentMLP),
// and metadata: `format` = "tinyemo-projector", `labels` (JSON array, one per
// anchor row), `config` (JSON: dimensions, BN eps, input normalisation,
// softmax temperature, member count, how it was trained) and `split` (JSON:
// the feature files held out for validation, so `eval --split val` scores
// exactly them).
// An ensemble (`--recipe best`) adds members 1..K-1 as `members.<k>.model.*`
// with the same shapes; all members share the anchors, and the projection is
// the mean of the members' L2-normalised outputs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/memory.h"
#include "models/projector/mlp.h"

namespace tinyemo::projector {

// What is applied to features before the MLP.
enum class InputNorm {
  None,  // TinyEmo: raw CLIP features
  L2,    // x / |x| * sqrt(D) (unit direction, rescaled to unit-variance entries)
};
std::string_view input_norm_name(InputNorm n);
InputNorm parse_input_norm(std::string_view name);
// out [n, D] = the input normalisation of x [n, D] (may alias x).
void normalize_inputs(InputNorm norm, const float* x, int64_t n, int64_t D, float* out);

struct ProjectorConfig {
  MlpDims dims;
  double bn_eps = 1e-5;
  double bn_momentum = 0.1;
  double dropout = 0.2;
  InputNorm input_norm = InputNorm::None;
  // Softmax temperature turning cosines into label probabilities.
  double temperature = 0.1;
  // How the model was made (recipe, loss, epochs, seed, ...): recorded, not used.
  nlohmann::json training = nlohmann::json::object();
};

struct HeldOutSplit {
  std::string features;            // the feature source the model was trained from
  double fraction = 0.0;
  uint64_t seed = 0;
  std::vector<std::string> files;  // held-out `<label>/<stem>` entries
};

// One AlignmentMLP: flat parameters (MlpLayout order) and BatchNorm running statistics.
struct MlpWeights {
  MlpWeights() = default;
  // Zero parameters, BN running mean 0 and variance 1.
  explicit MlpWeights(const MlpLayout& layout);
  LargeVector<float> params;
  std::vector<float> running_mean, running_var;
  int64_t num_batches_tracked = 0;
};

class ProjectorModel {
 public:
  ProjectorModel() = default;
  // No weights yet (set_members), zero anchors.
  ProjectorModel(const ProjectorConfig& config, std::vector<std::string> labels);

  const ProjectorConfig& config() const { return config_; }
  ProjectorConfig& config() { return config_; }
  const MlpLayout& layout() const { return layout_; }
  int64_t input_dim() const { return config_.dims.input; }
  int64_t hidden_dim() const { return config_.dims.hidden; }

  // Ensemble members (at least one; member 0 is TinyEmo's checkpoint layout).
  const std::vector<MlpWeights>& members() const { return members_; }
  MlpWeights& member(size_t k) { return members_.at(k); }
  const MlpWeights& member(size_t k) const { return members_.at(k); }
  void set_members(std::vector<MlpWeights> members);

  const std::vector<std::string>& labels() const { return labels_; }
  // Anchors, one row of H floats per label (as given; normalised when used).
  const std::vector<float>& anchors() const { return anchors_; }
  // Replaces labels and anchors (open taxonomy): anchors [labels.size(), H].
  void set_anchors(std::vector<std::string> labels, std::vector<float> anchors);

  HeldOutSplit split;

  // Eval-mode projection of raw features x [n, D] -> out [n, H] (input
  // normalisation, then the MLP with BN running statistics), before the L2
  // normalisation classification applies. Ensembles: the mean of the members'
  // normalised outputs.
  void project(const float* x, int64_t n, float* out) const;

  void save(const std::filesystem::path& path) const;
  // Errors name the file and the missing/mis-shaped tensor or metadata field.
  static ProjectorModel load(const std::filesystem::path& path);
  // TinyEmo's checkpoint: pytorch_model.bin (AlignmentMLP state dict) + a
  // safetensors anchors file (`anchors` [L, H], metadata `labels`).
  static ProjectorModel import_tinyemo(const std::filesystem::path& bin, const std::filesystem::path& anchors);

 private:
  ProjectorConfig config_;
  MlpLayout layout_{MlpDims{1, 1}};
  std::vector<MlpWeights> members_;
  std::vector<std::string> labels_;
  std::vector<float> anchors_;
};

// Label anchors, one row per label. From a safetensors file: tensor
// `anchors` [L, H] (or the only tensor in the file) and metadata `labels`;
// `expected_hidden` > 0 checks H. LM-derived anchors (TinyEmo: the mean of
// the LM's input-embedding rows of a grounding text's tokens, BOS included)
// come from lm::label_anchor, filled in by the CLI (`--anchors-lm`).
struct AnchorSet {
  std::vector<std::string> labels;
  std::vector<float> rows;  // [L, H]
  int64_t hidden = 0;
};
AnchorSet load_anchors(const std::filesystem::path& path, int64_t expected_hidden = 0);
void save_anchors(const std::filesystem::path& path, const AnchorSet& anchors);

}  // namespace tinyemo::projector
