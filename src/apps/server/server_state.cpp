#include "server_state.h"

#include <stdexcept>

namespace tinyemo::server {

namespace {

// Each image may reserve --max-pixels; four may decode at once.
constexpr int64_t kImagesDecodingAtOnce = 4;

// te::check with the option and path in front of the library's message.
void check(te_status status, const std::string& option, const std::string& path) {
  if (status != TE_OK) throw std::runtime_error(option + " " + path + ": " + te_last_error());
}

// An LM given by `option`, with its tokenizer (both LM options need one).
te::lm_ptr load_lm_with_tokenizer(const std::string& path, const std::string& option, const te_lm_params& params,
                                  const std::string& why) {
  te_lm* lm = nullptr;
  check(te_lm_load(path.c_str(), &params, &lm), option, path);
  te::lm_ptr owned(lm);
  if (!te_lm_has_tokenizer(lm)) throw std::runtime_error(option + " " + path + ": the model has no tokenizer files" + why);
  return owned;
}

RequestLimits limits_of(const ServerOptions& o) {
  RequestLimits l;
  l.max_images = static_cast<size_t>(o.max_images);
  return l;
}

}  // namespace

ServerState::ServerState(const ServerOptions& o)
    : options(o), limits(limits_of(o)), pixels(kImagesDecodingAtOnce * o.max_pixels) {
  if (!parse_chat_template(o.chat_template, &chat_template)) {
    throw std::runtime_error("--chat-template: \"" + o.chat_template + "\" is not plain, zephyr or chatml");
  }
}

MetricsGauges ServerState::gauges() const {
  MetricsGauges g;
  g.ready = ready.load();
  if (!g.ready) return g;
  g.vision_queue = static_cast<int64_t>(models.vision->queued());
  for (SlotPool* pool : {models.text ? &models.text->pool() : nullptr, models.mm_slots ? &models.mm_slots->pool() : nullptr}) {
    if (pool == nullptr) continue;
    g.generation_queue += static_cast<int64_t>(pool->waiting());
    g.slots_busy += static_cast<int64_t>(pool->busy());
    g.slots_total += static_cast<int64_t>(pool->size());
  }
  return g;
}

std::string model_id(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

void load_models(ServerState& state) {
  const ServerOptions& o = state.options;
  LoadedModels& m = state.models;

  te_clip_params clip_params = te_clip_default_params();
  clip_params.n_threads = o.threads;
  clip_params.batch = o.batch;
  clip_params.max_pixels = o.max_pixels;
  if (!o.clip_compute.empty()) clip_params.compute = o.clip_compute.c_str();
  te_clip* clip = nullptr;
  check(te_clip_load(o.clip.c_str(), &clip_params, &clip), "--clip", o.clip);
  m.clip.reset(clip);
  m.clip_id = model_id(o.clip);

  te_projector* projector = nullptr;
  check(te_projector_load(o.projector.c_str(), &projector), "--projector", o.projector);
  m.projector.reset(projector);
  m.projector_id = model_id(o.projector);
  const int32_t dim = te_clip_embedding_dim(clip);
  if (te_projector_input_dim(projector) != dim) {
    throw std::runtime_error("--projector " + o.projector + ": it takes features of " +
                             std::to_string(te_projector_input_dim(projector)) + " values, --clip " + o.clip +
                             " gives embeddings of " + std::to_string(dim));
  }
  // The projector's own label set, kept aside: requests may switch sets.
  std::vector<std::string> labels;
  for (int32_t i = 0; i < te_projector_n_labels(projector); ++i) labels.emplace_back(te_projector_label(projector, i));
  const size_t out_dim = static_cast<size_t>(te_projector_output_dim(projector));
  std::vector<float> anchors(labels.size() * out_dim);
  size_t n_floats = 0;
  check(te_projector_anchors(projector, anchors.data(), anchors.size(), &n_floats), "--projector", o.projector);

  if (!o.anchors_lm.empty()) {
    te_lm_params p = te_lm_default_params();
    p.n_threads = o.threads;
    m.anchors_lm = load_lm_with_tokenizer(o.anchors_lm, "--anchors-lm", p, "");
    m.anchors_lm_id = model_id(o.anchors_lm);
    const te_lm* lm = m.anchors_lm.get();
    if (static_cast<size_t>(te_lm_n_embd(lm)) != out_dim) {
      throw std::runtime_error("--anchors-lm " + o.anchors_lm + ": its hidden size is " +
                               std::to_string(te_lm_n_embd(lm)) + ", the projector's output has " +
                               std::to_string(out_dim) + " values (anchors must live in the projector's space)");
    }
  }
  m.label_sets = std::make_unique<LabelSets>(std::move(labels), std::move(anchors), out_dim, m.anchors_lm.get(),
                                             o.grounding);

  if (o.mm.empty() && (!o.mmproj.empty() || !o.mm_template.empty())) {
    throw std::runtime_error(std::string(o.mmproj.empty() ? "--mm-template" : "--mmproj") +
                             " needs --mm (the reasoning model, or the LM .gguf of an mmproj pair)");
  }
  if (!o.mm.empty()) {
    te_mm_params p = te_mm_default_params();
    p.n_threads = o.threads;
    if (!o.lm_compute.empty()) p.compute = o.lm_compute.c_str();
    if (!o.mmproj.empty()) p.mmproj = o.mmproj.c_str();
    if (!o.mm_template.empty()) p.conversation = o.mm_template.c_str();
    te_mm* mm = nullptr;
    check(te_mm_load(o.mm.c_str(), &p, &mm), "--mm", o.mm);
    m.mm.reset(mm);
    m.mm_id = model_id(o.mm);
    // Each slot's reasoner copies the projector and the CLIP it was trained
    // on (one forward serves both heads when that is the model's own tower).
    try {
      m.mm_slots = std::make_unique<MmSlots>(mm, projector, clip, static_cast<size_t>(o.parallel),
                                             static_cast<size_t>(o.queue));
    } catch (const te::Error& e) {
      throw std::runtime_error("--mm " + o.mm + " with --projector " + o.projector + ": " + e.what());
    }
  }
  if (!o.clip_text.empty()) {
    te_clip_params text_params = te_clip_default_params();
    text_params.n_threads = o.threads;
    te_clip_text* text = nullptr;
    check(te_clip_text_load(o.clip_text.c_str(), o.clip_vocab.empty() ? nullptr : o.clip_vocab.c_str(), &text_params,
                            &text),
          "--clip-text", o.clip_text);
    m.clip_text.reset(text);
    if (te_clip_text_embedding_dim(text) != dim) {
      throw std::runtime_error("--clip-text " + o.clip_text + " gives text embeddings of " +
                               std::to_string(te_clip_text_embedding_dim(text)) + " values, --clip " + o.clip +
                               " image embeddings of " + std::to_string(dim) +
                               ": they are not one CLIP model's towers");
    }
    m.clip_text_id = model_id(o.clip_text) + ":text";
    m.clip_text_turn = std::make_unique<std::timed_mutex>();
  }
  // Last: from here on the CLIP worker owns the te_clip and te_projector.
  m.vision = std::make_unique<VisionService>(clip, projector, static_cast<size_t>(o.queue),
                                             static_cast<size_t>(o.batch), &state.metrics);

  if (!o.lm.empty()) {
    te_lm_params p = te_lm_default_params();
    p.n_threads = o.threads;
    if (!o.lm_compute.empty()) p.compute = o.lm_compute.c_str();
    m.lm = load_lm_with_tokenizer(o.lm, "--lm", p, " (chat needs one)");
    m.lm_id = model_id(o.lm);
    m.text = std::make_unique<TextSlots>(m.lm.get(), static_cast<size_t>(o.parallel), static_cast<size_t>(o.queue));
  }
}

}  // namespace tinyemo::server
