// A TinyLLaVA (TinyLLaVA Factory) / TinyEmo reasoning model: vision tower
// (CLIP or SigLIP) -> hidden_states[vision_feature_layer] -> patch /
// cls_patch selection -> connector -> rows spliced into the language model's
// input where the prompt's image placeholders (-200) are. Loaded from a
// TinyLLaVA Factory folder: config.json, model.safetensors (or a sharded
// index) with vision_tower._vision_tower.*, connector._connector.* and
// language_model.*, the LM's tokenizer files, optionally a
// preprocessor_config.json.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/image.h"
#include "models/clip/image_processor.h"
#include "models/clip/vision_model.h"
#include "models/lm/model.h"
#include "models/lm/tokenizer.h"
#include "models/mm/config.h"
#include "models/mm/connector.h"
#include "models/mm/conversation.h"

namespace tinyemo::mm {

struct MmLoadOptions {
  // The language model's weights (dtype conversion, e.g. q8_0, as `tinyemo lm`).
  lm::LoadOptions lm;
  // Replace the checkpoint's language_model.* with this LM (a .gguf written by
  // `tinyemo convert`, or a model folder); its width and vocabulary must match.
  std::filesystem::path language_model;
  // The conversation template; empty: config.json's conv_version, else the
  // one TinyLLaVA Factory uses for the LM's model_type.
  std::string conversation;
  // A llama.cpp pair: load()'s path is then the LM .gguf (llama.cpp's layout)
  // and this its mmproj .gguf (mmproj.h); language_model must be empty.
  std::filesystem::path mmproj;
};

// What one prompt + images became before the LM: the spliced input rows and
// how the reference's truncation changed them.
struct SplicedInput {
  Tensor embeddings;              // F32 [T, hidden], T <= tokenizer_model_max_length
  int64_t spliced_length = 0;     // positions before truncation
  int64_t truncated = 0;          // positions cut off the end (0: none)
};

class TinyLlavaModel {
 public:
  static TinyLlavaModel load(const std::filesystem::path& dir, const MmLoadOptions& options = {});
  // llama.cpp's pair of files (mmproj.cpp): an LM .gguf and an mmproj .gguf
  // with a LLaVA-1.5 projector. The template: options.conversation, else the
  // LM model_type's default (an mmproj names none).
  static TinyLlavaModel load_llamacpp_pair(const std::filesystem::path& lm_gguf, const std::filesystem::path& mmproj,
                                           const MmLoadOptions& options = {});
  // A model from parts (random-weight benchmarks, tests); checks that the
  // parts fit (tower width -> connector -> LM width).
  static TinyLlavaModel from_parts(TinyLlavaConfig config, clip::VisionModel vision, Connector connector,
                                   lm::LmModel lm, std::unique_ptr<lm::Tokenizer> tokenizer = nullptr,
                                   const std::string& conversation = "");

  TinyLlavaModel(TinyLlavaModel&&) noexcept = default;
  TinyLlavaModel& operator=(TinyLlavaModel&&) noexcept = default;
  ~TinyLlavaModel();

  const TinyLlavaConfig& config() const { return config_; }
  const clip::VisionModel& vision() const { return vision_; }
  const Connector& connector() const { return connector_; }
  const lm::LmModel& lm() const { return *lm_; }
  // lm::LoadOptions::prefill_compute, for a model built from parts.
  void set_lm_prefill_compute(LinearCompute compute) { lm_->set_prefill_compute(compute); }
  const clip::ImageProcessorConfig& image_processor() const { return processor_; }
  const ConversationTemplate& conversation() const { return *conversation_; }
  // Where the template choice came from ("--template", "config.json conv_version", "LM model_type").
  const std::string& conversation_source() const { return conversation_source_; }
  // The LM's tokenizer; null when the folder carries none.
  const lm::Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const lm::Tokenizer& require_tokenizer() const;
  const std::string& description() const { return description_; }

  // An image as TinyLLaVA's ImagePreprocess gives it to the tower: RGB, then
  // expand2square with the processor's mean colour for image_aspect_ratio
  // "pad", then the image processor. F32 [3, H, W].
  Tensor preprocess(const Image& image) const;

  // The tower's selected hidden state of every image: F32 [B, tokens, vision width].
  // The forward stops after vision_feature_layer's block unless `vision_outputs`
  // asks for more (the pooled image_embeds of TinyEmo's projector).
  Tensor vision_hidden_state(const Tensor& pixel_values, clip::VisionOutputs* vision_outputs = nullptr) const;
  // Selection and connector on a hidden state [B, tokens, width]: one F32
  // [rows, hidden] per image.
  std::vector<Tensor> image_features_from_hidden(const Tensor& hidden) const;
  // Both: pixel_values [B, 3, N, N] (or [3, N, N]) -> image features per image.
  std::vector<Tensor> encode_images(const Tensor& pixel_values) const;

  // Token rows with the k-th placeholder replaced by image_features[k], cut
  // to tokenizer_model_max_length as prepare_inputs_labels_for_multimodal does.
  SplicedInput splice(std::span<const int32_t> ids, const std::vector<Tensor>& image_features) const;

  // The prompt of a conversation in this model's template, tokenised as
  // tokenizer_image_token does.
  std::vector<int32_t> prompt_ids(const std::vector<Turn>& turns) const;

 private:
  TinyLlavaModel() = default;
  void check_parts() const;

  TinyLlavaConfig config_;
  clip::VisionModel vision_;
  Connector connector_;
  std::unique_ptr<lm::LmModel> lm_;  // heap: LmSession keeps a reference, so it must not move
  clip::ImageProcessorConfig processor_;
  const ConversationTemplate* conversation_ = nullptr;
  std::string conversation_source_;
  std::unique_ptr<lm::Tokenizer> tokenizer_;
  std::string description_;
  // False for a tower read from an mmproj, which has no post-LayerNorm: the
  // pooled output (TinyEmo's projector input) is refused.
  bool pooled_head_ = true;
};

// Picks the template: `requested`, else config.json's conv_version, else the
// LM model_type's; `source` says which.
const ConversationTemplate& choose_conversation(const TinyLlavaConfig& config, const std::string& requested,
                                                std::string* source);

}  // namespace tinyemo::mm
