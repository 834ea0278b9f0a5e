// TinyEmo's reasoning pipeline ("classification detachment"): the Metric
// Projector labels the image from CLIP's image_embeds, and the multimodal LM
// explains it with the projector's label in its prompt (the EmoReason
// fine-tuning prompt). When the projector's CLIP is the TinyLLaVA model's
// tower (same shapes and weights, TinyEmo-700M's case), one tower forward
// serves both heads: the pooled image_embeds go to the projector, the selected
// hidden state to the connector. The answer "Reasoning: ...\n\nPredicted
// Label: Y" is parsed into the reasoning and the LM's own label. Any label
// set works: a subset of the projector's labels, or new ones anchored in the
// LM's input embeddings (when the projector's space is the LM's).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/image.h"
#include "models/clip/vision_model.h"
#include "models/mm/model.h"
#include "models/mm/session.h"
#include "models/projector/model.h"

namespace tinyemo::mm {

// The EmoReason question for `labels` with the projector's `label`:
// "Provide emotional reasoning about the image, on what you feel and how is
// the depicted emotion. Also choose the emotion that best corresponds to the
// image from the following options:\n\nLabels: [...]\n\nImportant: note that
// the correct label is X." The label list is written as Python prints a list
// of strings (['anger', 'joy']), as the fine-tuning data was generated.
std::string emoreason_question(const std::vector<std::string>& labels, const std::string& label);

struct EmoReasonAnswer {
  std::string reasoning;  // the text after "Reasoning:" up to "Predicted Label:" (stripped)
  std::string lm_label;   // the LM's label: one of `labels` when it names one (case-insensitive), else as written; "" when absent
};
EmoReasonAnswer parse_emoreason_answer(const std::string& text, const std::vector<std::string>& labels);

struct EmoReasonResult {
  std::string label;  // the projector's
  std::vector<std::pair<std::string, float>> scores;  // probability per label, the projector's order
  std::string reasoning;
  std::string lm_label;
  bool agreement = false;  // lm_label == label
  std::string text;        // the whole answer
  bool shared_forward = false;
  nlohmann::json timings;  // image_encode_s, projector_s, prefill_s, decode_s, total_s, generated_tokens, reused_positions
  nlohmann::json to_json() const;
};

class EmoReasoner {
 public:
  // `projector_clip`: the CLIP the projector was trained on (with its visual
  // projection). Null when the TinyLLaVA tower carries the projection itself.
  EmoReasoner(const TinyLlavaModel& model, projector::ProjectorModel projector,
              std::unique_ptr<clip::VisionModel> projector_clip);

  // Restricts the labels to a subset of the projector's, or (when a label is
  // not among them) replaces the anchors by the LM's label anchors (mean input
  // embedding of each label's tokens, BOS included), which needs the
  // projector's output width to be the LM's hidden size.
  void set_labels(const std::vector<std::string>& labels);
  const std::vector<std::string>& labels() const { return projector_.labels(); }
  bool shared_forward() const { return shared_; }

  // One image. `options` as for generation (defaults: default_generate_options());
  // its on_token streams the reasoning.
  EmoReasonResult reason(const Image& image, const lm::GenerateOptions& options);

 private:
  const TinyLlavaModel& model_;
  projector::ProjectorModel projector_;
  std::unique_ptr<clip::VisionModel> clip_;
  bool shared_ = false;  // one forward of clip_ serves both heads
  MmSession session_;
};

// True when two towers compute the same function: equal configs and
// bit-identical weights (the check that lets one forward serve both heads).
bool same_vision_tower(const clip::VisionModel& a, const clip::VisionModel& b);

}  // namespace tinyemo::mm
