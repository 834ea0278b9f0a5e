// CLIP's text tower: text embeddings and zero-shot classification.
#include <algorithm>
#include <cmath>
#include <optional>
#include <string_view>

#include "api/api_internal.h"
#include "core/log.h"
#include "data/zero_shot.h"

using namespace tinyemo;
using tinyemo::api::guard;
using tinyemo::api::invalid;
using tinyemo::api::require;
using tinyemo::api::threads_of;

struct te_clip_text {
  explicit te_clip_text(int threads) : pool(threads) {}
  ThreadPool pool;
  data::ClipTextEncoder encoder;
};

namespace {

std::vector<std::string> strings_of(const char* const* items, size_t n, const char* what) {
  require(items != nullptr || n == 0, what);
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (items[i] == nullptr) invalid(std::string(what) + " (entry " + std::to_string(i) + ")");
    out.emplace_back(items[i]);
  }
  return out;
}

static_assert(std::string_view(TE_ZERO_SHOT_DEFAULT_TEMPLATE) == data::kDefaultPromptTemplate);

size_t dim_of(const te_clip_text& t) { return static_cast<size_t>(t.encoder.model.config().projection_dim); }

}  // namespace

extern "C" {

te_status te_clip_text_load(const char* path, const char* vocab, const te_clip_params* params, te_clip_text** out) {
  return guard([&] {
    require(out != nullptr, "te_clip_text_load: out is NULL");
    *out = nullptr;
    require(path != nullptr, "te_clip_text_load: path is NULL");
    const te_clip_params p = params != nullptr ? *params : te_clip_default_params();
    auto text = std::make_unique<te_clip_text>(threads_of(p.n_threads));
    ScopedThreadPool use(&text->pool);
    text->encoder = data::ClipTextEncoder::load(path, vocab != nullptr ? std::optional<std::filesystem::path>(vocab)
                                                                       : std::nullopt);
    TE_CHECK(text->encoder.model.config().projection_dim > 0,
             "{}: the text tower has no text_projection, so its outputs are not in the image embeddings' space",
             text->encoder.model.description());
    log(LogLevel::Info, "loaded CLIP text tower {} ({} threads)", text->encoder.model.description(),
        text->pool.size());
    *out = text.release();
  });
}

void te_clip_text_free(te_clip_text* text) { delete text; }

int32_t te_clip_text_embedding_dim(const te_clip_text* text) {
  return text ? static_cast<int32_t>(dim_of(*text)) : 0;
}

int32_t te_clip_text_context_length(const te_clip_text* text) {
  return text ? static_cast<int32_t>(text->encoder.model.config().max_positions) : 0;
}

float te_clip_text_logit_scale(const te_clip_text* text) {
  if (text == nullptr || !text->encoder.model.logit_scale()) return 0.0f;
  return std::exp(*text->encoder.model.logit_scale());
}

const char* te_clip_text_description(const te_clip_text* text) {
  return text ? text->encoder.model.description().c_str() : "";
}

te_status te_clip_text_embed(te_clip_text* text, const char* const* texts, size_t n_texts, float* embeddings,
                             size_t n_floats) {
  return guard([&] {
    require(text != nullptr, "te_clip_text_embed: text is NULL");
    const std::vector<std::string> list = strings_of(texts, n_texts, "te_clip_text_embed: texts is NULL");
    const size_t dim = dim_of(*text);
    if (n_floats < n_texts * dim) {
      invalid("te_clip_text_embed: embeddings holds " + std::to_string(n_floats) + " floats, " +
              std::to_string(n_texts * dim) + " needed");
    }
    if (n_texts == 0) return;
    require(embeddings != nullptr, "te_clip_text_embed: embeddings is NULL");
    ScopedThreadPool use(&text->pool);
    const data::EncodedTexts encoded = data::encode_texts(text->encoder, list);
    const std::vector<float> rows = encoded.text_embeds.to_f32_vector();
    std::copy(rows.begin(), rows.end(), embeddings);
  });
}

te_status te_zero_shot_classify(te_clip_text* text, const char* const* labels, size_t n_labels,
                                const char* prompt_template, const float* image_embeddings, size_t n_rows, size_t dim,
                                int32_t* predicted, float* probabilities, float* cosines, float* distances) {
  return guard([&] {
    require(text != nullptr, "te_zero_shot_classify: text is NULL");
    std::vector<std::string> names = strings_of(labels, n_labels, "te_zero_shot_classify: labels is NULL");
    require(image_embeddings != nullptr || n_rows == 0, "te_zero_shot_classify: image_embeddings is NULL");
    if (dim != dim_of(*text)) {
      invalid("te_zero_shot_classify: image embeddings have " + std::to_string(dim) +
              " values per row, the text tower gives " + std::to_string(dim_of(*text)));
    }
    ScopedThreadPool use(&text->pool);
    // Built before the n_rows == 0 return, so labels and template are checked on every call.
    const data::ZeroShotClassifier classifier(
        text->encoder, std::move(names), prompt_template != nullptr ? prompt_template : TE_ZERO_SHOT_DEFAULT_TEMPLATE);
    if (n_rows == 0) return;
    const projector::Scores s = classifier.classify(image_embeddings, static_cast<int64_t>(n_rows));
    if (predicted) std::transform(s.predicted.begin(), s.predicted.end(), predicted, [](int64_t v) {
      return static_cast<int32_t>(v);
    });
    if (probabilities) std::copy(s.probabilities.begin(), s.probabilities.end(), probabilities);
    if (cosines) std::copy(s.cosines.begin(), s.cosines.end(), cosines);
    if (distances) std::copy(s.distances.begin(), s.distances.end(), distances);
  });
}

}  // extern "C"
