#include "data/zero_shot.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tinyemo::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kVocabName = "bpe_simple_vocab_16e6.txt.gz";
constexpr const char* kHfMergesName = "merges.txt";

void normalize_row(float* v, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(v[i]) * v[i];
  const double norm = std::sqrt(s);
  TE_CHECK(norm > 0.0 && std::isfinite(norm), "an embedding has norm {} and cannot be normalised", norm);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(v[i] / norm);
}

}  // namespace

ClipTextEncoder ClipTextEncoder::load(const fs::path& model, const std::optional<fs::path>& vocab) {
  ClipTextEncoder e{clip::TextModel::load(model), nullptr};
  fs::path path;
  if (vocab) {
    path = *vocab;
  } else {
    std::error_code ec;
    const fs::path folder = fs::is_directory(model, ec) ? model : model.parent_path();
    // OpenAI's file first, then Hugging Face's merges.txt: the same merges
    // after a one-line header, which both readers skip.
    path = folder / kVocabName;
    if (!fs::is_regular_file(path, ec)) path = folder / kHfMergesName;
    TE_CHECK(fs::is_regular_file(path, ec),
             "{}: no CLIP tokenizer vocabulary ({} or {}) beside the model; pass --vocab FILE", model.string(),
             kVocabName, kHfMergesName);
  }
  e.tokenizer = lm::ClipTokenizer::load(path, static_cast<int32_t>(e.model.config().vocab_size));
  return e;
}

EncodedTexts encode_texts(const ClipTextEncoder& encoder, const std::vector<std::string>& texts) {
  TE_CHECK(!texts.empty(), "no texts to encode");
  const int64_t context = encoder.model.config().max_positions;
  std::vector<std::vector<int64_t>> ids;
  ids.reserve(texts.size());
  for (const std::string& t : texts) ids.push_back(encoder.tokenizer->tokenize(t, context, /*truncate=*/true));
  EncodedTexts out;
  out.input_ids = Tensor::empty(DType::I64, {static_cast<int64_t>(texts.size()), context});
  int64_t* dst = out.input_ids.mutable_data<int64_t>();
  for (const auto& row : ids) dst = std::copy(row.begin(), row.end(), dst);
  clip::TextOutputs o = encoder.model.forward(ids);
  TE_CHECK(o.text_embeds.defined(), "{}: the text tower has no text_projection, so it gives no text_embeds",
           encoder.model.description());
  out.text_embeds = std::move(o.text_embeds);
  return out;
}

std::string fill_prompt(const std::string& prompt_template, const std::string& label) {
  TE_CHECK(prompt_template.find("{}") != std::string::npos, "prompt template \"{}\" has no {{}} for the label",
           prompt_template);
  std::string out;
  for (size_t pos = 0;;) {
    const size_t at = prompt_template.find("{}", pos);
    if (at == std::string::npos) {
      out.append(prompt_template, pos);
      break;
    }
    out.append(prompt_template, pos, at - pos);
    out += label;
    pos = at + 2;
  }
  return out;
}

ZeroShotClassifier::ZeroShotClassifier(const ClipTextEncoder& encoder, std::vector<std::string> labels,
                                       const std::string& prompt_template)
    : labels_(std::move(labels)) {
  TE_CHECK(!labels_.empty(), "zero-shot classification needs at least one label");
  for (size_t i = 0; i < labels_.size(); ++i) {
    TE_CHECK(std::find(labels_.begin(), labels_.begin() + static_cast<std::ptrdiff_t>(i), labels_[i]) ==
                 labels_.begin() + static_cast<std::ptrdiff_t>(i),
             "label \"{}\" is given twice", labels_[i]);
    prompts_.push_back(fill_prompt(prompt_template, labels_[i]));
  }
  const auto& scale = encoder.model.logit_scale();
  TE_CHECK(scale.has_value(), "{}: no logit_scale tensor (a text-only checkpoint); zero-shot needs a whole CLIP model",
           encoder.model.description());
  scale_ = std::exp(*scale);
  const EncodedTexts t = encode_texts(encoder, prompts_);
  dim_ = t.text_embeds.dim(1);
  text_unit_ = t.text_embeds.to_f32_vector();
  for (size_t l = 0; l < labels_.size(); ++l) normalize_row(text_unit_.data() + l * dim_, dim_);
}

projector::Scores ZeroShotClassifier::classify(const float* x, int64_t n) const {
  projector::Scores s;
  const auto L = static_cast<int64_t>(labels_.size());
  s.n = n;
  s.labels = L;
  s.cosines.resize(static_cast<size_t>(n * L));
  s.distances.resize(s.cosines.size());
  s.probabilities.resize(s.cosines.size());
  s.predicted.resize(static_cast<size_t>(n));
  std::vector<float> u(static_cast<size_t>(dim_));
  for (int64_t i = 0; i < n; ++i) {
    std::copy_n(x + i * dim_, dim_, u.data());
    normalize_row(u.data(), dim_);
    double max_logit = -INFINITY;
    for (int64_t l = 0; l < L; ++l) {
      double c = 0.0;
      const float* a = text_unit_.data() + l * dim_;
      for (int64_t k = 0; k < dim_; ++k) c += static_cast<double>(u[k]) * a[k];
      s.cosines[i * L + l] = static_cast<float>(c);
      s.distances[i * L + l] = static_cast<float>(std::sqrt(std::max(0.0, 2.0 - 2.0 * c)));
      max_logit = std::max(max_logit, scale_ * c);
    }
    double z = 0.0;
    for (int64_t l = 0; l < L; ++l) z += std::exp(scale_ * s.cosines[i * L + l] - max_logit);
    int64_t best = 0;
    for (int64_t l = 0; l < L; ++l) {
      s.probabilities[i * L + l] = static_cast<float>(std::exp(scale_ * s.cosines[i * L + l] - max_logit) / z);
      if (s.cosines[i * L + l] > s.cosines[i * L + best]) best = l;
    }
    s.predicted[i] = best;
  }
  return s;
}

projector::AnchorSet clip_text_anchors(const ClipTextEncoder& encoder, const std::vector<std::string>& labels,
                                       const std::string& prompt_template) {
  TE_CHECK(!labels.empty(), "no labels for the anchors");
  std::vector<std::string> prompts;
  for (const auto& l : labels) prompts.push_back(fill_prompt(prompt_template, l));
  const EncodedTexts t = encode_texts(encoder, prompts);
  projector::AnchorSet a;
  a.labels = labels;
  a.hidden = t.text_embeds.dim(1);
  a.rows = t.text_embeds.to_f32_vector();
  return a;
}

}  // namespace tinyemo::data
