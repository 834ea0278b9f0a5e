// CLIP's text side put to work: label prompts to text embeddings, zero-shot
// classification of image embeddings (cosine to each prompt's embedding,
// scaled by exp(logit_scale), softmax), and label anchors for the projector.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/clip/text_model.h"
#include "models/lm/clip_tokenizer.h"
#include "models/projector/classify.h"
#include "models/projector/model.h"

namespace tinyemo::data {

// The default prompt of `classify --zero-shot` and `projector anchors --clip-text`.
inline constexpr const char* kDefaultPromptTemplate = "a photo evoking {}";

// A text tower with its tokenizer.
struct ClipTextEncoder {
  clip::TextModel model;
  std::unique_ptr<lm::ClipTokenizer> tokenizer;

  // `vocab`: the BPE merges file; without it, bpe_simple_vocab_16e6.txt.gz
  // in the model's folder (or beside its weights file). Throws naming both
  // places when there is none.
  static ClipTextEncoder load(const std::filesystem::path& model, const std::optional<std::filesystem::path>& vocab);
};

struct EncodedTexts {
  Tensor input_ids;    // I64 [T, context]: clip.tokenize (zero-padded, truncated with the end token last)
  Tensor text_embeds;  // F32 [T, D], unnormalised
};
EncodedTexts encode_texts(const ClipTextEncoder& encoder, const std::vector<std::string>& texts);

// `prompt_template` with every "{}" replaced by `label`; a template without
// "{}" is an error naming it.
std::string fill_prompt(const std::string& prompt_template, const std::string& label);

// Zero-shot classification over `labels` with the prompts fill_prompt(template, label).
class ZeroShotClassifier {
 public:
  ZeroShotClassifier(const ClipTextEncoder& encoder, std::vector<std::string> labels,
                     const std::string& prompt_template);

  const std::vector<std::string>& labels() const { return labels_; }
  const std::vector<std::string>& prompts() const { return prompts_; }
  int64_t dim() const { return dim_; }
  float logit_scale() const { return scale_; }  // exp(logit_scale), the cosine multiplier
  // Image embeddings x [n, dim]: cosines, L2 distances between normalised
  // vectors, probabilities = softmax(exp(logit_scale) * cosine) (CLIP's
  // logits_per_image), predicted = the highest cosine (first on ties).
  projector::Scores classify(const float* image_embeds, int64_t n) const;

 private:
  std::vector<std::string> labels_, prompts_;
  std::vector<float> text_unit_;  // [L, dim] normalised text embeddings
  int64_t dim_ = 0;
  float scale_ = 1.0f;
};

// Label anchors for the projector: each label's prompt embedding (rows as
// CLIP gives them; the projector normalises anchors when it uses them).
projector::AnchorSet clip_text_anchors(const ClipTextEncoder& encoder, const std::vector<std::string>& labels,
                                       const std::string& prompt_template);

}  // namespace tinyemo::data
