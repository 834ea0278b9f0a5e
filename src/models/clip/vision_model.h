// The CLIP ViT vision tower (OpenAI's VisionTransformer / HF's
// CLIPVisionModel[WithProjection]): patch embedding, class token, learned
// positions, pre-LayerNorm, pre-LN transformer blocks (QuickGELU MLP),
// post-LayerNorm on the class token, linear projection. The same code runs
// SigLIP's tower (HF SiglipVisionModel): a biased patch embedding, no class
// token and no pre-LayerNorm around the same blocks (its attention-pooling
// head is not run: TinyLLaVA reads hidden states only). Loads Hugging Face
// and OpenAI checkpoints; weight matrices stay views of the mapped files in
// their stored dtype (F32/F16/BF16), multiplied through core::linear.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/matmul.h"
#include "core/tensor.h"
#include "models/clip/checkpoint.h"
#include "models/clip/config.h"
#include "models/clip/encoder_block.h"

namespace tinyemo::clip {

struct VisionOutputs {
  Tensor image_embeds;              // [B, projection_dim] (undefined without a projection)
  Tensor pooled_output;             // [B, hidden]: post-LN class token (CLIP only)
  Tensor last_hidden_state;         // [B, tokens, hidden]: output of the last block (before post-LN)
  Tensor penultimate_hidden_state;  // [B, tokens, hidden]: output of the second-to-last block
  Tensor feature_hidden_state;      // [B, tokens, hidden]: hidden_states[feature_layer], when asked
};

struct ForwardOptions {
  // Keep last_hidden_state and penultimate_hidden_state (feature extraction
  // only needs image_embeds).
  bool hidden_states = true;
};

// Also return hidden_states[layer] (feature_hidden_state), numbered as Hugging
// Face's output_hidden_states: 0 is the embeddings (after CLIP's
// pre-LayerNorm), i the output of block i, negative counts from the end (-1
// the last block, -2 the second-to-last: LLaVA's choice). With `pooled` off
// (and ForwardOptions::hidden_states off) the forward stops after that block;
// with it on, every block runs and pooled_output / image_embeds come too.
struct FeatureRequest {
  int64_t layer = -2;
  bool pooled = false;
};

// Which tokens of the selected hidden state LLaVA-style models keep
// (vision_feature_select_strategy): "patch" drops token 0 (the class token;
// on SigLIP, which has none, the first patch all the same), "cls_patch" keeps all.
enum class FeatureSelect : uint8_t { Patch, ClsPatch };
FeatureSelect parse_feature_select(const std::string& name, const std::string& where);
std::string_view feature_select_name(FeatureSelect s);
// Image `b` of hidden [B, tokens, hidden] with `select` applied: F32 [rows, hidden].
Tensor select_feature_tokens(const Tensor& hidden, int64_t b, FeatureSelect select);

struct VisionWeights {
  Tensor patch;  // [hidden, channels * patch * patch]: the patch conv as a matrix
  std::vector<float> patch_bias;          // [hidden] (SigLIP), empty for CLIP
  std::vector<float> class_embedding;     // [hidden] (CLIP), empty for SigLIP
  std::vector<float> position_embedding;  // [tokens * hidden]
  std::vector<float> pre_ln_weight, pre_ln_bias;  // empty for SigLIP
  std::vector<float> post_ln_weight, post_ln_bias;
  std::vector<LayerWeights> layers;
  Tensor projection;  // [projection_dim, hidden], undefined when the tower has none
};

// Where a checkpoint's vision tower sits. `prefix` is prepended to the
// layout's own names: "vision_model." lives under it for HF ("" for
// CLIPModel, "vision_tower._vision_tower." in TinyLLaVA), "visual." or "" for OpenAI.
// (CheckpointLayout and LayerWeights: encoder_block.h, shared with the text tower.)
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
  // The dtype the matrices were stored in (also after pack_weights).
  DType weight_dtype() const { return stored_dtype_; }
  // Packs the matrices once for core::linear (pack_linear_weights), so the
  // forward stops re-packing them per call: F32 gives the same numbers, BF16
  // rounds weights and activations to bf16 (vdpbf16ps; embeddings within ~1e-2
  // relative, docs/clip.md). weights() then holds the packed layouts. Costs one
  // pass over the weights and their size in memory (the mapped file is released
  // when nothing else holds it).
  void pack_weights(LinearCompute compute);
  // What pack_weights was given; nullopt while the matrices are as stored.
  std::optional<LinearCompute> compute() const { return compute_; }
  // What was loaded ("HF safetensors (F32) model.safetensors + config.json").
  const std::string& description() const { return description_; }

  // hidden_states index `layer` (negative from the end) as 0 .. num_layers;
  // throws naming `where` when the tower has no such hidden state.
  int64_t hidden_state_index(int64_t layer, const std::string& where) const;

  // pixel_values: [B, channels, image_size, image_size] or [channels, image_size,
  // image_size] (then B = 1), any float dtype.
  VisionOutputs forward(const Tensor& pixel_values, const ForwardOptions& options = {},
                        const std::optional<FeatureRequest>& feature = std::nullopt) const;
  // Raw form: `batch` images of channels * image_size^2 floats each.
  VisionOutputs forward(const float* pixels, int64_t batch, const ForwardOptions& options = {},
                        const std::optional<FeatureRequest>& feature = std::nullopt) const;

 private:
  VisionConfig config_;
  VisionWeights weights_;
  std::string description_;
  DType stored_dtype_ = DType::F32;
  std::optional<LinearCompute> compute_;
};

// How the tower multiplies, by name, as the CLI's --compute and the C API's
// te_clip_params.compute take it: "auto" (the default: matrices stored in f32
// packed as F32, the same numbers and memory; 16-bit ones kept as stored,
// since F32 panels would double their memory), "f32", "bf16" (vdpbf16ps;
// refused on a build whose CPU lacks AVX512-BF16, where it would run on
// scalar code) or "stored" (re-packed per call). Throws naming `where`.
void apply_compute(VisionModel& model, const std::string& name, const std::string& where);

}  // namespace tinyemo::clip
