// tinyemo.hpp: C++ wrappers over the C API in tinyemo.h (header only, C++17).
// Handles become move-only RAII objects; failures become te::Error (with the
// status and te_last_error()'s message); buffers become std::vector and
// std::string. Like llama.cpp's mtmd.h, the raw unique_ptr types are here too
// for code that mixes both.
#ifndef TINYEMO_HPP
#define TINYEMO_HPP

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tinyemo.h"

namespace te {

class Error : public std::runtime_error {
 public:
  Error(te_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  te_status status() const { return status_; }

 private:
  te_status status_;
};

inline void check(te_status status) {
  if (status != TE_OK) throw Error(status, std::string(te_status_name(status)) + ": " + te_last_error());
}

struct ImageDeleter {
  void operator()(te_image* p) const { te_image_free(p); }
};
struct ClipDeleter {
  void operator()(te_clip* p) const { te_clip_free(p); }
};
struct ClipTextDeleter {
  void operator()(te_clip_text* p) const { te_clip_text_free(p); }
};
struct ProjectorDeleter {
  void operator()(te_projector* p) const { te_projector_free(p); }
};
struct LmDeleter {
  void operator()(te_lm* p) const { te_lm_free(p); }
};
struct SessionDeleter {
  void operator()(te_session* p) const { te_session_free(p); }
};
struct MmDeleter {
  void operator()(te_mm* p) const { te_mm_free(p); }
};
struct MmSessionDeleter {
  void operator()(te_mm_session* p) const { te_mm_session_free(p); }
};
struct ReasonerDeleter {
  void operator()(te_reasoner* p) const { te_reasoner_free(p); }
};
using image_ptr = std::unique_ptr<te_image, ImageDeleter>;
using clip_ptr = std::unique_ptr<te_clip, ClipDeleter>;
using clip_text_ptr = std::unique_ptr<te_clip_text, ClipTextDeleter>;
using projector_ptr = std::unique_ptr<te_projector, ProjectorDeleter>;
using lm_ptr = std::unique_ptr<te_lm, LmDeleter>;
using session_ptr = std::unique_ptr<te_session, SessionDeleter>;
using mm_ptr = std::unique_ptr<te_mm, MmDeleter>;
using mm_session_ptr = std::unique_ptr<te_mm_session, MmSessionDeleter>;
using reasoner_ptr = std::unique_ptr<te_reasoner, ReasonerDeleter>;

namespace detail {
// Pointers to the strings' characters, for the C functions that take lists.
inline std::vector<const char*> c_strings(const std::vector<std::string>& v) {
  std::vector<const char*> out;
  for (const auto& s : v) out.push_back(s.c_str());
  return out;
}
}  // namespace detail

class Image {
 public:
  static Image load(const std::string& path, int64_t max_pixels = 0) {
    te_image* p = nullptr;
    check(te_image_load_file(path.c_str(), max_pixels, &p));
    return Image(p);
  }
  static Image decode(const void* data, size_t size, int64_t max_pixels = 0) {
    te_image* p = nullptr;
    check(te_image_load_memory(data, size, max_pixels, &p));
    return Image(p);
  }
  int width() const { return te_image_width(ptr_.get()); }
  int height() const { return te_image_height(ptr_.get()); }
  const te_image* get() const { return ptr_.get(); }

 private:
  explicit Image(te_image* p) : ptr_(p) {}
  image_ptr ptr_;
};

// One image's scores against every label (a copy of te_classification).
struct Classification {
  int predicted = -1;
  std::vector<float> probabilities, cosines, distances;
};

class Projector {
 public:
  static Projector load(const std::string& path) {
    te_projector* p = nullptr;
    check(te_projector_load(path.c_str(), &p));
    return Projector(p);
  }
  int input_dim() const { return te_projector_input_dim(ptr_.get()); }
  int output_dim() const { return te_projector_output_dim(ptr_.get()); }
  std::vector<std::string> labels() const {
    std::vector<std::string> out;
    for (int i = 0; i < te_projector_n_labels(ptr_.get()); ++i) out.emplace_back(te_projector_label(ptr_.get(), i));
    return out;
  }
  void select_labels(const std::vector<std::string>& labels) {
    const std::vector<const char*> c = detail::c_strings(labels);
    check(te_projector_select_labels(ptr_.get(), c.data(), c.size()));
  }
  void set_anchors(const std::vector<std::string>& labels, const std::vector<float>& anchors) {
    const std::vector<const char*> c = detail::c_strings(labels);
    check(te_projector_set_anchors(ptr_.get(), c.data(), c.size(), anchors.data(), anchors.size()));
  }
  // The current label anchors, labels().size() rows of output_dim() floats.
  std::vector<float> anchors() const {
    std::vector<float> out(static_cast<size_t>(te_projector_n_labels(ptr_.get())) * static_cast<size_t>(output_dim()));
    size_t n = 0;
    check(te_projector_anchors(ptr_.get(), out.data(), out.size(), &n));
    return out;
  }
  te_projector* get() const { return ptr_.get(); }

 private:
  explicit Projector(te_projector* p) : ptr_(p) {}
  projector_ptr ptr_;
};

class Clip {
 public:
  static Clip load(const std::string& path, const te_clip_params& params = te_clip_default_params()) {
    te_clip* p = nullptr;
    check(te_clip_load(path.c_str(), &params, &p));
    return Clip(p);
  }
  int embedding_dim() const { return te_clip_embedding_dim(ptr_.get()); }
  int image_size() const { return te_clip_image_size(ptr_.get()); }
  std::string description() const { return te_clip_description(ptr_.get()); }
  // [images.size() * embedding_dim()] floats.
  std::vector<float> embed(const std::vector<const Image*>& images) {
    std::vector<const te_image*> raw;
    for (const Image* i : images) raw.push_back(i->get());
    std::vector<float> out(raw.size() * static_cast<size_t>(embedding_dim()));
    check(te_clip_embed(ptr_.get(), raw.data(), raw.size(), out.data(), out.size()));
    return out;
  }
  // Classifies image files; `on_result(index, result, error)` gets each in
  // order (result null on failure). Returns the number that failed.
  size_t classify_files(const Projector& projector, const std::vector<std::string>& paths,
                        const std::function<void(size_t, const Classification*, const std::string&)>& on_result) {
    std::vector<const char*> c;
    for (const auto& p : paths) c.push_back(p.c_str());
    size_t failed = 0;
    check(te_classify_files(ptr_.get(), projector.get(), c.data(), c.size(), &Clip::forward, (void*)&on_result, &failed));
    return failed;
  }
  te_clip* get() const { return ptr_.get(); }

 private:
  explicit Clip(te_clip* p) : ptr_(p) {}
  static bool forward(size_t index, const te_classification* r, const char* error, void* user_data) {
    auto& fn = *static_cast<const std::function<void(size_t, const Classification*, const std::string&)>*>(user_data);
    if (r == nullptr) {
      fn(index, nullptr, error ? error : "");
      return true;
    }
    Classification c;
    c.predicted = r->predicted;
    c.probabilities.assign(r->probabilities, r->probabilities + r->n_labels);
    c.cosines.assign(r->cosines, r->cosines + r->n_labels);
    c.distances.assign(r->distances, r->distances + r->n_labels);
    fn(index, &c, "");
    return true;
  }
  clip_ptr ptr_;
};

// CLIP's text tower: text embeddings and zero-shot classification.
class ClipText {
 public:
  // `vocab` empty: bpe_simple_vocab_16e6.txt.gz or merges.txt beside the model.
  static ClipText load(const std::string& path, const std::string& vocab = "",
                       const te_clip_params& params = te_clip_default_params()) {
    te_clip_text* p = nullptr;
    check(te_clip_text_load(path.c_str(), vocab.empty() ? nullptr : vocab.c_str(), &params, &p));
    return ClipText(p);
  }
  int embedding_dim() const { return te_clip_text_embedding_dim(ptr_.get()); }
  int context_length() const { return te_clip_text_context_length(ptr_.get()); }
  float logit_scale() const { return te_clip_text_logit_scale(ptr_.get()); }
  std::string description() const { return te_clip_text_description(ptr_.get()); }
  // [texts.size() * embedding_dim()] floats, unnormalised.
  std::vector<float> embed(const std::vector<std::string>& texts) {
    const std::vector<const char*> c = detail::c_strings(texts);
    std::vector<float> out(texts.size() * static_cast<size_t>(embedding_dim()));
    check(te_clip_text_embed(ptr_.get(), c.data(), c.size(), out.data(), out.size()));
    return out;
  }
  // Zero-shot scores of image embeddings (rows of embedding_dim() floats, as Clip::embed gives).
  std::vector<Classification> zero_shot(const std::vector<std::string>& labels, const std::vector<float>& images,
                                        const std::string& prompt_template = TE_ZERO_SHOT_DEFAULT_TEMPLATE) {
    const std::vector<const char*> c = detail::c_strings(labels);
    const size_t dim = static_cast<size_t>(embedding_dim()), L = labels.size();
    if (dim == 0 || images.size() % dim != 0) {
      throw Error(TE_ERROR_INVALID_ARGUMENT, "zero_shot: " + std::to_string(images.size()) +
                                                 " floats are not whole rows of " + std::to_string(dim));
    }
    const size_t n = images.size() / dim;
    std::vector<int32_t> predicted(n);
    std::vector<float> probabilities(n * L), cosines(n * L), distances(n * L);
    check(te_zero_shot_classify(ptr_.get(), c.data(), L, prompt_template.c_str(), images.data(), n, dim,
                                predicted.data(), probabilities.data(), cosines.data(), distances.data()));
    std::vector<Classification> out(n);
    for (size_t i = 0; i < n; ++i) {
      out[i].predicted = predicted[i];
      out[i].probabilities.assign(probabilities.begin() + i * L, probabilities.begin() + (i + 1) * L);
      out[i].cosines.assign(cosines.begin() + i * L, cosines.begin() + (i + 1) * L);
      out[i].distances.assign(distances.begin() + i * L, distances.begin() + (i + 1) * L);
    }
    return out;
  }
  te_clip_text* get() const { return ptr_.get(); }

 private:
  explicit ClipText(te_clip_text* p) : ptr_(p) {}
  clip_text_ptr ptr_;
};

class Lm {
 public:
  static Lm load(const std::string& path, const te_lm_params& params = te_lm_default_params()) {
    te_lm* p = nullptr;
    check(te_lm_load(path.c_str(), &params, &p));
    return Lm(p);
  }
  int n_vocab() const { return te_lm_n_vocab(ptr_.get()); }
  int n_ctx() const { return te_lm_n_ctx(ptr_.get()); }
  int n_embd() const { return te_lm_n_embd(ptr_.get()); }
  std::vector<int32_t> tokenize(std::string_view text, bool add_special = true) const {
    size_t n = 0;
    te_status s = te_lm_tokenize(ptr_.get(), text.data(), text.size(), add_special, nullptr, 0, &n);
    if (s != TE_ERROR_BUFFER_TOO_SMALL) check(s);
    std::vector<int32_t> ids(n);
    check(te_lm_tokenize(ptr_.get(), text.data(), text.size(), add_special, ids.data(), ids.size(), &n));
    return ids;
  }
  std::string detokenize(const std::vector<int32_t>& ids, bool skip_special = true) const {
    size_t n = 0;
    te_status s = te_lm_detokenize(ptr_.get(), ids.data(), ids.size(), skip_special, nullptr, 0, &n);
    if (s != TE_ERROR_BUFFER_TOO_SMALL) check(s);
    std::string text(n + 1, '\0');
    check(te_lm_detokenize(ptr_.get(), ids.data(), ids.size(), skip_special, text.data(), text.size(), &n));
    text.resize(n);
    return text;
  }
  // TinyEmo's label anchors (te_lm_label_anchors): labels.size() rows of n_embd() floats.
  std::vector<float> label_anchors(const std::vector<std::string>& labels, const char* grounding = nullptr) const {
    std::vector<const char*> c;
    for (const auto& l : labels) c.push_back(l.c_str());
    std::vector<float> out(labels.size() * static_cast<size_t>(n_embd()));
    check(te_lm_label_anchors(ptr_.get(), c.data(), c.size(), grounding, out.data(), out.size()));
    return out;
  }
  te_lm* get() const { return ptr_.get(); }

 private:
  explicit Lm(te_lm* p) : ptr_(p) {}
  lm_ptr ptr_;
};

struct Generation {
  std::string text;
  std::vector<int32_t> tokens;
  te_generate_result result{};
};

// A sequence run through an LM; it keeps its KV cache across calls.
class Session {
 public:
  explicit Session(Lm& lm) {
    te_session* p = nullptr;
    check(te_session_new(lm.get(), &p));
    ptr_.reset(p);
  }
  size_t length() const { return te_session_length(ptr_.get()); }
  void truncate(size_t length) { check(te_session_truncate(ptr_.get(), length)); }
  // Appends `prompt` and generates; `on_text` (optional) receives the text as
  // it is generated and returns false to stop.
  Generation generate(const std::vector<int32_t>& prompt, te_generate_params params = te_generate_default_params(),
                      const std::function<bool(std::string_view)>& on_text = {}) {
    struct State {
      Generation* g;
      const std::function<bool(std::string_view)>* on_text;
    };
    Generation g;
    State state{&g, &on_text};
    params.on_token = [](int32_t token, const char* text, size_t len, void* user_data) {
      auto* st = static_cast<State*>(user_data);
      st->g->tokens.push_back(token);
      st->g->text.append(text, len);
      return !*st->on_text || (*st->on_text)(std::string_view(text, len));
    };
    params.user_data = &state;
    check(te_session_generate(ptr_.get(), prompt.data(), prompt.size(), &params, &g.result));
    return g;
  }
  te_session* get() const { return ptr_.get(); }

 private:
  session_ptr ptr_;
};

// Streams text pieces to a std::function and collects a Generation.
namespace detail {
struct Streamer {
  Generation* g;
  const std::function<bool(std::string_view)>* on_text;
  static bool call(int32_t token, const char* text, size_t len, void* user_data) {
    auto* st = static_cast<Streamer*>(user_data);
    st->g->tokens.push_back(token);
    st->g->text.append(text, len);
    return !*st->on_text || (*st->on_text)(std::string_view(text, len));
  }
};
}  // namespace detail

class Mm {
 public:
  static Mm load(const std::string& path, const te_mm_params& params = te_mm_default_params()) {
    te_mm* p = nullptr;
    check(te_mm_load(path.c_str(), &params, &p));
    return Mm(p);
  }
  std::string description() const { return te_mm_description(ptr_.get()); }
  std::string conversation() const { return te_mm_conversation(ptr_.get()); }
  te_mm* get() const { return ptr_.get(); }

 private:
  explicit Mm(te_mm* p) : ptr_(p) {}
  mm_ptr ptr_;
};

struct Turn {
  std::string question;
  std::optional<std::string> answer;  // none for the turn to answer
};

class MmSession {
 public:
  explicit MmSession(Mm& mm) {
    te_mm_session* p = nullptr;
    check(te_mm_session_new(mm.get(), &p));
    ptr_.reset(p);
  }
  // Answers the last turn; images go where the questions' <image> markers are.
  Generation generate(const std::vector<Turn>& turns, const std::vector<const Image*>& images,
                      te_generate_params params = te_mm_default_generate_params(),
                      const std::function<bool(std::string_view)>& on_text = {}) {
    std::vector<te_mm_turn> c;
    for (const Turn& t : turns) c.push_back({t.question.c_str(), t.answer ? t.answer->c_str() : nullptr});
    std::vector<const te_image*> raw;
    for (const Image* i : images) raw.push_back(i->get());
    Generation g;
    detail::Streamer st{&g, &on_text};
    params.on_token = &detail::Streamer::call;
    params.user_data = &st;
    check(te_mm_generate(ptr_.get(), c.data(), c.size(), raw.data(), raw.size(), &params, &g.result));
    return g;
  }
  te_mm_session* get() const { return ptr_.get(); }

 private:
  mm_session_ptr ptr_;
};

struct Reasoning {
  std::string label, reasoning, lm_label, text;
  std::vector<std::pair<std::string, float>> scores;
  bool agreement = false;
  te_reasoning raw{};  // timings; its pointers are valid until the next reason()
};

class Reasoner {
 public:
  Reasoner(Mm& mm, const Projector& projector, const Clip* projector_clip = nullptr) {
    te_reasoner* p = nullptr;
    check(te_reasoner_new(mm.get(), projector.get(), projector_clip ? projector_clip->get() : nullptr, &p));
    ptr_.reset(p);
  }
  void set_labels(const std::vector<std::string>& labels) {
    std::vector<const char*> c;
    for (const auto& l : labels) c.push_back(l.c_str());
    check(te_reasoner_set_labels(ptr_.get(), c.data(), c.size()));
  }
  Reasoning reason(const Image& image, te_generate_params params = te_mm_default_generate_params(),
                   const std::function<bool(std::string_view)>& on_text = {}) {
    Generation g;
    detail::Streamer st{&g, &on_text};
    params.on_token = &detail::Streamer::call;
    params.user_data = &st;
    Reasoning r;
    check(te_reason(ptr_.get(), image.get(), &params, &r.raw));
    r.label = r.raw.label;
    r.reasoning = r.raw.reasoning;
    r.lm_label = r.raw.lm_label;
    r.text = r.raw.text;
    r.agreement = r.raw.agreement;
    for (int32_t i = 0; i < r.raw.n_labels; ++i) r.scores.emplace_back(r.raw.labels[i], r.raw.probabilities[i]);
    return r;
  }

 private:
  reasoner_ptr ptr_;
};

}  // namespace te

#endif  // TINYEMO_HPP
