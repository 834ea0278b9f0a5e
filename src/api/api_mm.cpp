// The multimodal reasoning model (TinyLLaVA / TinyEmo), its sessions and
// TinyEmo's reasoning pipeline.
#include <cstring>

#include "api/api_internal.h"
#include "core/log.h"
#include "models/mm/conversation.h"
#include "models/mm/emoreason.h"
#include "models/mm/model.h"
#include "models/mm/session.h"

using namespace tinyemo;
using tinyemo::api::guard;
using tinyemo::api::invalid;
using tinyemo::api::require;

struct te_mm {
  explicit te_mm(int threads) : pool(threads) {}
  ThreadPool pool;
  std::unique_ptr<mm::TinyLlavaModel> model;
};

struct te_mm_session {
  explicit te_mm_session(te_mm* owner) : mm(owner), session(*owner->model) {}
  te_mm* mm;
  mm::MmSession session;
};

struct te_reasoner {
  te_mm* mm = nullptr;
  std::unique_ptr<mm::EmoReasoner> reasoner;
  // What the last te_reason's te_reasoning points into.
  mm::EmoReasonResult last;
  std::vector<std::string> labels;
  std::vector<const char*> label_pointers;
  std::vector<float> probabilities;
};

namespace {

te_generate_params from_options(const lm::GenerateOptions& o) {
  te_generate_params p = te_generate_default_params();
  p.max_new_tokens = static_cast<int32_t>(o.max_new_tokens);
  p.temperature = o.sampling.greedy ? 0.0f : o.sampling.temperature;
  p.top_p = o.sampling.top_p;
  p.top_k = static_cast<int32_t>(o.sampling.top_k);
  p.repetition_penalty = o.sampling.repetition_penalty;
  p.seed = o.sampling.seed;
  return p;
}

double seconds_in(const nlohmann::json& timings, const char* key) {
  return timings.contains(key) && timings[key].is_number() ? timings[key].get<double>() : 0.0;
}

}  // namespace

extern "C" {

te_mm_params te_mm_default_params(void) {
  te_mm_params p;
  p.n_threads = 0;
  p.weight_type = nullptr;
  p.language_model = nullptr;
  p.conversation = nullptr;
  p.mmproj = nullptr;
  p.compute = nullptr;
  return p;
}

te_generate_params te_mm_default_generate_params(void) { return from_options(mm::default_generate_options()); }

te_status te_mm_load(const char* path, const te_mm_params* params, te_mm** out) {
  return guard([&] {
    require(out != nullptr, "te_mm_load: out is NULL");
    *out = nullptr;
    require(path != nullptr, "te_mm_load: path is NULL");
    const te_mm_params p = params != nullptr ? *params : te_mm_default_params();
    auto handle = std::make_unique<te_mm>(api::threads_of(p.n_threads));
    mm::MmLoadOptions o;
    if (p.weight_type != nullptr) {
      DType d;
      if (!parse_dtype(p.weight_type, &d) ||
          !(d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::Q8_0 || d == DType::Q4_0)) {
        invalid(std::string("te_mm_load: weight_type \"") + p.weight_type + "\" is not f32, f16, bf16, q8_0 or q4_0");
      }
      o.lm.weight_dtype = d;
    }
    if (p.language_model != nullptr) o.language_model = p.language_model;
    if (p.conversation != nullptr) o.conversation = p.conversation;
    if (p.mmproj != nullptr) o.mmproj = p.mmproj;
    o.lm.prefill_compute = lm::parse_prefill_compute(p.compute ? p.compute : "", "te_mm_params.compute");
    ScopedThreadPool use(&handle->pool);
    handle->model = std::make_unique<mm::TinyLlavaModel>(mm::TinyLlavaModel::load(path, o));
    log(LogLevel::Info, "loaded {} ({} threads)", handle->model->description(), handle->pool.size());
    *out = handle.release();
  });
}

void te_mm_free(te_mm* mm) { delete mm; }
const char* te_mm_description(const te_mm* mm) { return mm ? mm->model->description().c_str() : ""; }
const char* te_mm_conversation(const te_mm* mm) { return mm ? mm->model->conversation().name.c_str() : ""; }

te_status te_mm_session_new(te_mm* mm, te_mm_session** out) {
  return guard([&] {
    require(out != nullptr, "te_mm_session_new: out is NULL");
    *out = nullptr;
    require(mm != nullptr, "te_mm_session_new: mm is NULL");
    *out = new te_mm_session(mm);
  });
}

void te_mm_session_free(te_mm_session* session) { delete session; }
size_t te_mm_session_length(const te_mm_session* session) {
  return session ? static_cast<size_t>(session->session.length()) : 0;
}

te_status te_mm_generate(te_mm_session* s, const te_mm_turn* turns, size_t n_turns, const te_image* const* images,
                         size_t n_images, const te_generate_params* params, te_generate_result* result) {
  return guard([&] {
    if (result) std::memset(result, 0, sizeof(*result));
    require(s != nullptr, "te_mm_generate: session is NULL");
    require(turns != nullptr && n_turns > 0, "te_mm_generate: no turns");
    require(images != nullptr || n_images == 0, "te_mm_generate: images is NULL");
    std::vector<mm::Turn> conversation;
    size_t markers = 0;
    for (size_t i = 0; i < n_turns; ++i) {
      require(turns[i].question != nullptr, "te_mm_generate: a question is NULL");
      if (i + 1 < n_turns && turns[i].answer == nullptr) invalid("te_mm_generate: only the last turn may lack an answer");
      if (i + 1 == n_turns && turns[i].answer != nullptr) invalid("te_mm_generate: the last turn must have no answer");
      const std::string q = turns[i].question;
      for (size_t at = q.find(mm::kImageMarker); at != std::string::npos; at = q.find(mm::kImageMarker, at + 1)) {
        ++markers;
      }
      conversation.push_back({q, turns[i].answer ? std::optional<std::string>(turns[i].answer) : std::nullopt});
    }
    if (markers != n_images) {
      invalid("te_mm_generate: the questions hold " + std::to_string(markers) + " <image> markers but " +
              std::to_string(n_images) + " images were given");
    }
    for (size_t i = 0; i < n_images; ++i) require(images[i] != nullptr, "te_mm_generate: an image is NULL");
    const lm::GenerateOptions g =
        api::generate_options(params != nullptr ? *params : te_mm_default_generate_params());
    const mm::TinyLlavaModel& model = *s->mm->model;
    ScopedThreadPool use(&s->mm->pool);
    std::vector<Tensor> features;
    for (size_t i = 0; i < n_images; ++i) {
      std::vector<Tensor> f = model.encode_images(model.preprocess(images[i]->image));
      features.push_back(std::move(f.at(0)));
    }
    const std::vector<int32_t> ids = model.prompt_ids(conversation);
    const mm::MmGenerateResult r = s->session.generate(ids, features, g);
    if (result) {
      result->finish_reason = api::finish_reason_of(r.generated.finish_reason);
      result->n_prompt = static_cast<int32_t>(r.prompt_positions - r.reused_positions);
      result->n_generated = static_cast<int32_t>(r.generated.ids.size());
      result->prompt_seconds = r.prefill_s;
      result->generate_seconds = r.decode_s;
    }
  });
}

te_status te_reasoner_new(te_mm* mm, const te_projector* projector, const te_clip* projector_clip, te_reasoner** out) {
  return guard([&] {
    require(out != nullptr, "te_reasoner_new: out is NULL");
    *out = nullptr;
    require(mm != nullptr, "te_reasoner_new: mm is NULL");
    require(projector != nullptr, "te_reasoner_new: projector is NULL");
    auto r = std::make_unique<te_reasoner>();
    r->mm = mm;
    std::unique_ptr<clip::VisionModel> tower;
    if (projector_clip != nullptr) tower = std::make_unique<clip::VisionModel>(projector_clip->model);
    ScopedThreadPool use(&mm->pool);
    r->reasoner = std::make_unique<mm::EmoReasoner>(*mm->model, projector->model, std::move(tower));
    *out = r.release();
  });
}

void te_reasoner_free(te_reasoner* reasoner) { delete reasoner; }

te_status te_reasoner_set_labels(te_reasoner* r, const char* const* labels, size_t n_labels) {
  return guard([&] {
    require(r != nullptr, "te_reasoner_set_labels: reasoner is NULL");
    require(labels != nullptr && n_labels > 0, "te_reasoner_set_labels: no labels given");
    std::vector<std::string> names;
    for (size_t i = 0; i < n_labels; ++i) {
      require(labels[i] != nullptr, "te_reasoner_set_labels: a label is NULL");
      names.emplace_back(labels[i]);
    }
    ScopedThreadPool use(&r->mm->pool);
    r->reasoner->set_labels(names);
  });
}

te_status te_reason(te_reasoner* r, const te_image* image, const te_generate_params* params, te_reasoning* out) {
  return guard([&] {
    require(r != nullptr, "te_reason: reasoner is NULL");
    require(image != nullptr, "te_reason: image is NULL");
    require(out != nullptr, "te_reason: out is NULL");
    std::memset(out, 0, sizeof(*out));
    const lm::GenerateOptions g = api::generate_options(params != nullptr ? *params : te_mm_default_generate_params());
    ScopedThreadPool use(&r->mm->pool);
    r->last = r->reasoner->reason(image->image, g);
    r->labels.clear();
    r->label_pointers.clear();
    r->probabilities.clear();
    for (const auto& [label, p] : r->last.scores) {
      r->labels.push_back(label);
      r->probabilities.push_back(p);
    }
    for (const auto& l : r->labels) r->label_pointers.push_back(l.c_str());
    out->label = r->last.label.c_str();
    out->n_labels = static_cast<int32_t>(r->labels.size());
    out->labels = r->label_pointers.data();
    out->probabilities = r->probabilities.data();
    out->reasoning = r->last.reasoning.c_str();
    out->lm_label = r->last.lm_label.c_str();
    out->agreement = r->last.agreement;
    out->text = r->last.text.c_str();
    const nlohmann::json& t = r->last.timings;
    out->generated_tokens = t.contains("generated_tokens") ? t["generated_tokens"].get<int32_t>() : 0;
    out->image_encode_seconds = seconds_in(t, "image_encode_s");
    out->prefill_seconds = seconds_in(t, "prefill_s");
    out->decode_seconds = seconds_in(t, "decode_s");
    out->time_to_first_token_seconds = seconds_in(t, "time_to_first_token_s");
    out->total_seconds = seconds_in(t, "total_s");
  });
}

}  // extern "C"
