// The CLIP ViT vision tower (OpenAI's VisionTransformer / HF's
// CLIPVisionModel[WithProjection]): patch embedding, class token, learned
// positions, pre-LayerNorm, pre-LN transformer blocks (QuickGELU MLP),
// post-LayerNorm on the class token, linear projection. Loads Hugging Face
// and OpenAI checkpoints; weight matrices stay views of the mapped files in
// their stored dtype (F32/F16/BF16), multiplied through core::linear.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/clip/checkpoint.h"
#include "models/clip/config.h"
#include "models/clip/encoder_block.h"

namespace tinyemo::clip {

struct VisionOutputs {
  Tensor image_embeds;              // [B, projection_dim] (undefined without a projection)
  Tensor pooled_output;             // [B, hidden]: post-LN class token
  Tensor last_hidden_state;         // [B, tokens, hidden]: output of the last block (before post-LN)
  Tensor penultimate_hidden_state;  // [B, tokens, hidden]: output of the second-to-last block
};

struct ForwardOptions {
  // Keep last_hidden_state and penultimate_hidden_state (feature extraction
  // only needs image_embeds).
  bool hidden_states = true;
};

struct VisionWeights {
  Tensor patch;  // [hidden, channels * patch * patch]: the patch conv as a matrix (no bias)
  std::vector<float> class_embedding;     // [hidden]
  std::vector<float> position_embedding;  // [tokens * hidden]
  std::vector<float> pre_ln_weight, pre_ln_bias, post_ln_weight, post_ln_bias;
  std::vector<LayerWeights> layers;
  Tensor projection;  // [projection_dim, hidden], undefined when the tower has none
};

// Where a checkpoint's vision tower sits. `prefix` is prepended to the
// layout's own names: "vision_model." lives under it for HF ("" for
// CLIPModel, "vision_tower._vision_tower." in TinyLLaVA), "visual." or "" for OpenAI.
// (CheckpointLayout and LayerWeights: encoder_block.h.)
struct TowerLocation {
  CheckpointLayout layout = CheckpointLayout::HuggingFace;
  std::string prefix;
};
// Finds the tower in a checkpoint's names; throws naming the file when there is none.
TowerLocation locate_vision_tower(const CheckpointTensors& tensors);
// The configuration the tensor shapes imply (heads: OpenAI's rule hidden / 64;
// QuickGELU; eps 1e-5), for checkpoints without a config.json.
VisionConfig infer_vision_config(const CheckpointTensors& tensors, const TowerLocation& where);

class VisionModel {
 public:
  // `--model`: a directory or a weights file (see resolve_model_files).
  static VisionModel load(const std::filesystem::path& model);
  // The tower at `where` in `tensors`, checked against `config` (`config_source`
  // names where the config came from, for errors). Every tensor must exist
  // with the shape the config implies.
  static VisionModel from_checkpoint(const VisionConfig& config, const std::string& config_source,
                                     const CheckpointTensors& tensors, const TowerLocation& where);
  // Random weights (for benchmarks), matrices stored in `dtype` (F32/F16/BF16).
  static VisionModel random(const VisionConfig& config, DType dtype, uint64_t seed = 0);

  const VisionConfig& config() const { return config_; }
  const VisionWeights& weights() const { return weights_; }
  DType weight_dtype() const { return weights_.patch.dtype(); }
  // What was loaded ("HF safetensors (F32) model.safetensors + config.json").
  const std::string& description() const { return description_; }

  // pixel_values: [B, channels, image_size, image_size] or [channels, image_size,
  // image_size] (then B = 1), any float dtype.
  VisionOutputs forward(const Tensor& pixel_values, const ForwardOptions& options = {}) const;
  // Raw form: `batch` images of channels * image_size^2 floats each.
  VisionOutputs forward(const float* pixels, int64_t batch, const ForwardOptions& options = {}) const;

 private:
  VisionConfig config_;
  VisionWeights weights_;
  std::string description_;
};

}  // namespace tinyemo::clip
