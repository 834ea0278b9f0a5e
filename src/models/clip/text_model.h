// The CLIP text tower (OpenAI's CLIP.encode_text / HF's CLIPTextModel[WithProjection]
// inside CLIPModel): token + learned position embeddings, the pre-LN blocks of
// encoder_block.h with a causal mask, ln_final, the hidden state at the end
// token, text_projection. Loads HF names (text_model.*, text_projection.weight)
// and OpenAI state dicts (token_embedding, positional_embedding,
// transformer.resblocks.N, ln_final, text_projection); also CLIP's logit_scale.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/json.h"
#include "models/clip/checkpoint.h"
#include "models/clip/config.h"
#include "models/clip/encoder_block.h"

namespace tinyemo::clip {

struct TextConfig {
  // Hugging Face CLIPTextConfig defaults (ViT-B/32's text tower).
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t num_layers = 12;
  int64_t num_heads = 8;
  int64_t max_positions = 77;     // context length
  int64_t projection_dim = 512;   // 0: no text projection (CLIPTextModel)
  float layer_norm_eps = 1e-5f;
  Activation activation = Activation::QuickGelu;
  // The token whose hidden state is pooled. When it is the vocabulary's
  // largest id (CLIP's <|endoftext|>) the pooled position is the argmax of
  // the ids, as OpenAI and HF compute it; otherwise the first position
  // holding it (HF's rule for other vocabularies).
  int64_t eos_token_id = 49407;

  int64_t head_dim() const { return hidden_size / num_heads; }
  void validate(const std::string& where) const;
  nlohmann::json to_json() const;
};

// The text tower of a Hugging Face config.json: CLIPModel (text_config, or
// the older text_config_dict, plus a top-level projection_dim) or a
// CLIPTextModel[WithProjection] config; missing fields take HF's defaults.
TextConfig text_config_from_hf(const JsonObject& config);

struct TextWeights {
  Tensor token_embedding;                 // [vocab, hidden] as stored (rows gathered per token)
  std::vector<float> position_embedding;  // [max_positions * hidden]
  std::vector<LayerWeights> layers;
  std::vector<float> final_ln_weight, final_ln_bias;
  Tensor projection;  // [projection_dim, hidden], undefined without a projection
};

// Where a checkpoint's text tower sits: HF names under `prefix` + "text_model.",
// OpenAI names under `prefix`.
struct TextTowerLocation {
  CheckpointLayout layout = CheckpointLayout::HuggingFace;
  std::string prefix;
};
// Throws naming the file when the checkpoint holds no text tower.
TextTowerLocation locate_text_tower(const CheckpointTensors& tensors);
// The configuration the tensor shapes imply, for checkpoints without a
// config.json (heads: OpenAI's rule hidden / 64; QuickGELU; eps 1e-5).
TextConfig infer_text_config(const CheckpointTensors& tensors, const TextTowerLocation& where);

struct TextOutputs {
  Tensor text_embeds;    // [T, projection_dim] (unnormalised; undefined without a projection)
  Tensor pooled_output;  // [T, hidden]: ln_final of the end token's hidden state
  std::vector<int64_t> pooled_positions;  // [T] where each text was pooled
};

class TextModel {
 public:
  // `--model`: a directory or a weights file (see resolve_model_files).
  static TextModel load(const std::filesystem::path& model);
  static TextModel from_checkpoint(const TextConfig& config, const std::string& config_source,
                                   const CheckpointTensors& tensors, const TextTowerLocation& where);

  const TextConfig& config() const { return config_; }
  const TextWeights& weights() const { return weights_; }
  const std::string& description() const { return description_; }
  // exp() of it scales cosines into CLIP's logits; absent in a text-only checkpoint.
  const std::optional<float>& logit_scale() const { return logit_scale_; }

  // input_ids: [T, L] (I64 or I32, L <= max_positions) or [L]. Tokens after
  // the pooled position never reach it (causal mask), so only the prefix up
  // to it is computed.
  TextOutputs forward(const Tensor& input_ids) const;
  TextOutputs forward(const std::vector<std::vector<int64_t>>& input_ids) const;

 private:
  TextConfig config_;
  TextWeights weights_;
  std::string description_;
  std::optional<float> logit_scale_;
};

// The checkpoint's `logit_scale` scalar (HF CLIPModel and OpenAI both name it
// so, under the towers' common prefix); nullopt when it has none.
std::optional<float> read_logit_scale(const CheckpointTensors& tensors, const std::string& prefix);

}  // namespace tinyemo::clip
