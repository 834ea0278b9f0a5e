#include "generation_slots.h"

#include <algorithm>

#include "http_error.h"

namespace tinyemo::server {

void TurnGate::acquire() {
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t ticket = next_++;
  cv_.wait(lock, [&] { return serving_ == ticket; });
}

void TurnGate::release() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++serving_;
  }
  cv_.notify_all();
}

// ---- SlotPool

SlotPool::SlotPool(size_t n, size_t max_waiting) : max_waiting_(max_waiting), busy_(std::max<size_t>(1, n), false) {}

size_t SlotPool::busy() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<size_t>(std::count(busy_.begin(), busy_.end(), true));
}

size_t SlotPool::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_;
}

SlotPool::Lease SlotPool::acquire(Clock::time_point deadline, const std::function<size_t(size_t)>& preference) {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto any_free = [&] { return std::find(busy_.begin(), busy_.end(), false) != busy_.end(); };
  if (!any_free()) {
    if (waiting_ >= max_waiting_) {
      throw HttpError(503, "queue_full",
                      "all " + std::to_string(busy_.size()) + " generation slots are busy and " +
                          std::to_string(max_waiting_) + " requests are waiting; retry shortly",
                      1);
    }
    ++waiting_;
    const bool got = freed_.wait_until(lock, deadline, any_free);
    --waiting_;
    if (!got) {
      throw HttpError(503, "timeout", "no generation slot became free within the server's time limit (--timeout-s)",
                      1);
    }
  }
  size_t best = busy_.size(), best_score = 0;
  for (size_t i = 0; i < busy_.size(); ++i) {
    if (busy_[i]) continue;
    const size_t score = preference ? preference(i) : 0;
    if (best == busy_.size() || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  busy_[best] = true;
  return Lease(this, best);
}

void SlotPool::release(size_t slot) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    busy_[slot] = false;
  }
  freed_.notify_one();
}

// ---- generate_in_turns

namespace {

struct TurnState {
  TurnGate* gate;
  const std::function<bool(std::string_view)>* on_text;
  Clock::time_point deadline;
  GenerationOutcome* out;
  bool holding = false;  // this request holds the gate
};

// After each token: let the other slots have their turn while this one
// writes its text out, then queue for the next token.
bool on_token(int32_t token, const char* text, size_t len, void* user_data) {
  auto* st = static_cast<TurnState*>(user_data);
  st->out->tokens.push_back(token);
  st->gate->release();
  st->holding = false;
  st->out->text.append(text, len);
  bool go = true;
  if (len > 0 && *st->on_text) go = (*st->on_text)(std::string_view(text, len));
  if (!go) st->out->cancelled = true;
  if (go && Clock::now() >= st->deadline) {
    go = false;
    st->out->timed_out = true;
  }
  if (go) {
    st->gate->acquire();
    st->holding = true;
  }
  return go;
}

}  // namespace

te_status generate_in_turns(TurnGate& gate, te_generate_params params,
                            const std::function<bool(std::string_view)>& on_text, Clock::time_point deadline,
                            const std::function<te_status(const te_generate_params&, te_generate_result*)>& call,
                            GenerationOutcome* out) {
  TurnState st{&gate, &on_text, deadline, out, false};
  params.on_token = on_token;
  params.user_data = &st;
  te_generate_result result{};
  gate.acquire();
  st.holding = true;
  const te_status s = call(params, &result);
  if (st.holding) gate.release();
  if (s == TE_OK) {
    out->completion_tokens = result.n_generated;
    out->finish_reason =
        result.finish_reason == TE_FINISH_EOS || result.finish_reason == TE_FINISH_STOP ? "stop" : "length";
  }
  return s;
}

namespace {
[[noreturn]] void generation_failed(te_status s, const std::string& error) {
  if (s == TE_ERROR_CONTEXT_FULL) throw HttpError(400, "context_length_exceeded", error);
  if (s == TE_ERROR_INVALID_ARGUMENT) throw HttpError(400, "invalid_request", error);
  throw HttpError(500, "internal_error", "generation failed: " + error);
}
}  // namespace

// ---- TextSlots

TextSlots::TextSlots(te_lm* lm, size_t parallel, size_t max_waiting)
    : lm_(lm), pool_(parallel, max_waiting), cached_(pool_.size()) {
  for (size_t i = 0; i < pool_.size(); ++i) {
    te_session* s = nullptr;
    te::check(te_session_new(lm, &s));
    sessions_.emplace_back(s);
  }
}

SlotPool::Lease TextSlots::acquire(const std::vector<int32_t>& prompt, Clock::time_point deadline) {
  // The slot list is read under the pool's lock; cached_ changes only while
  // its slot is leased, so a free slot's record is stable here.
  return pool_.acquire(deadline, [&](size_t i) {
    const auto& c = cached_[i];
    const size_t n = std::min(c.size(), prompt.size());
    return static_cast<size_t>(std::mismatch(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(n), prompt.begin()).first -
                               c.begin());
  });
}

std::vector<int32_t> TextSlots::tokenize(std::string_view text) {
  gate_.acquire();
  size_t n = 0;
  std::vector<int32_t> ids;
  te_status s = te_lm_tokenize(lm_, text.data(), text.size(), true, nullptr, 0, &n);
  if (s == TE_ERROR_BUFFER_TOO_SMALL || s == TE_OK) {
    ids.resize(n);
    s = te_lm_tokenize(lm_, text.data(), text.size(), true, ids.data(), ids.size(), &n);
  }
  const std::string error = s == TE_OK ? "" : te_last_error();
  gate_.release();
  if (s != TE_OK) throw HttpError(500, "internal_error", "cannot tokenize the prompt: " + error);
  return ids;
}

GenerationOutcome TextSlots::generate(const SlotPool::Lease& lease, const std::vector<int32_t>& prompt,
                                      const te_generate_params& params,
                                      const std::function<bool(std::string_view)>& on_text,
                                      Clock::time_point deadline) {
  te_session* session = sessions_[lease.slot()].get();
  std::vector<int32_t>& cached = cached_[lease.slot()];
  const size_t n_ctx = static_cast<size_t>(te_lm_n_ctx(lm_));
  if (prompt.empty()) throw HttpError(400, "invalid_value", "the prompt is empty");
  if (prompt.size() >= n_ctx) {
    throw HttpError(400, "context_length_exceeded",
                    "the prompt has " + std::to_string(prompt.size()) + " tokens; the model's context holds " +
                        std::to_string(n_ctx));
  }
  GenerationOutcome out;
  size_t kept = 0;
  const te_status s = generate_in_turns(
      gate_, params, on_text, deadline,
      [&](const te_generate_params& p, te_generate_result* result) {
        te_status k = te_session_keep_prefix(session, prompt.data(), prompt.size(), &kept);
        if (k != TE_OK) return k;
        cached.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(kept));
        return te_session_generate(session, prompt.data() + kept, prompt.size() - kept, &p, result);
      },
      &out);
  if (s != TE_OK) {
    const std::string error = te_last_error();
    // The session forgot what the failed call evaluated; so does our record.
    cached.resize(std::min(cached.size(), te_session_length(session)));
    generation_failed(s, error);
  }
  // The session holds the prompt and every generated token but the last.
  cached.assign(prompt.begin(), prompt.end());
  if (!out.tokens.empty()) cached.insert(cached.end(), out.tokens.begin(), out.tokens.end() - 1);
  out.prompt_tokens = static_cast<int64_t>(prompt.size());
  out.cached_tokens = static_cast<int64_t>(kept);
  return out;
}

// ---- MmSlots

MmSlots::MmSlots(te_mm* mm, const te_projector* projector, const te_clip* clip, size_t parallel, size_t max_waiting)
    : mm_(mm), pool_(parallel, max_waiting) {
  for (int32_t i = 0; i < te_projector_n_labels(projector); ++i) projector_labels_.emplace_back(te_projector_label(projector, i));
  reasoner_labels_.assign(pool_.size(), projector_labels_);  // a new reasoner holds the projector's set
  for (size_t i = 0; i < pool_.size(); ++i) {
    te_mm_session* s = nullptr;
    te::check(te_mm_session_new(mm, &s));
    sessions_.emplace_back(s);
    te_reasoner* r = nullptr;
    te::check(te_reasoner_new(mm, projector, clip, &r));
    reasoners_.emplace_back(r);
  }
}

GenerationOutcome MmSlots::chat(const SlotPool::Lease& lease, const std::vector<te_mm_turn>& turns,
                                const std::vector<const te_image*>& images, const te_generate_params& params,
                                const std::function<bool(std::string_view)>& on_text, Clock::time_point deadline) {
  te_mm_session* session = sessions_[lease.slot()].get();
  GenerationOutcome out;
  int64_t evaluated = 0;
  const te_status s = generate_in_turns(
      gate_, params, on_text, deadline,
      [&](const te_generate_params& p, te_generate_result* result) {
        const te_status g =
            te_mm_generate(session, turns.data(), turns.size(), images.data(), images.size(), &p, result);
        evaluated = result->n_prompt;
        return g;
      },
      &out);
  if (s != TE_OK) generation_failed(s, te_last_error());
  // The session holds the prompt and every generated token but the last.
  const int64_t held = static_cast<int64_t>(te_mm_session_length(session));
  out.prompt_tokens = held - std::max<int64_t>(0, out.completion_tokens - 1);
  out.cached_tokens = std::max<int64_t>(0, out.prompt_tokens - evaluated);
  return out;
}

void MmSlots::set_labels(const SlotPool::Lease& lease, const std::vector<std::string>& labels) {
  std::vector<std::string>& held = reasoner_labels_[lease.slot()];
  const std::vector<std::string>& wanted = labels.empty() ? projector_labels_ : labels;
  if (wanted == held) return;
  std::vector<const char*> names;
  for (const auto& l : wanted) names.push_back(l.c_str());
  // The reasoner is the lease holder's alone; new labels read the LM's
  // embedding rows, no forward, so this needs no turn.
  if (te_reasoner_set_labels(reasoners_[lease.slot()].get(), names.data(), names.size()) != TE_OK) {
    held.clear();  // unknown: set again next time
    throw HttpError(400, "unknown_label", std::string("cannot use these labels: ") + te_last_error());
  }
  held = wanted;
}

MmSlots::Reasoning MmSlots::reason(const SlotPool::Lease& lease, const te_image* image,
                                   const std::vector<std::string>& labels, const te_generate_params& params,
                                   const std::function<bool(std::string_view)>& on_text, Clock::time_point deadline) {
  te_reasoner* reasoner = reasoners_[lease.slot()].get();
  set_labels(lease, labels);
  Reasoning r;
  te_reasoning why{};
  const te_status s = generate_in_turns(
      gate_, params, on_text, deadline,
      [&](const te_generate_params& p, te_generate_result* result) {
        const te_status g = te_reason(reasoner, image, &p, &why);
        if (g == TE_OK) {
          result->n_generated = why.generated_tokens;
          // te_reason does not say why generation ended: the template's end unless it ran to the limit.
          result->finish_reason = why.generated_tokens >= p.max_new_tokens ? TE_FINISH_LENGTH : TE_FINISH_STOP;
        }
        return g;
      },
      &r.generation);
  if (s != TE_OK) generation_failed(s, te_last_error());
  r.label = why.label ? why.label : "";
  r.reasoning = why.reasoning ? why.reasoning : "";
  r.lm_label = why.lm_label ? why.lm_label : "";
  r.text = why.text ? why.text : "";
  r.agreement = why.agreement;
  for (int32_t i = 0; i < why.n_labels; ++i) {
    r.labels.emplace_back(why.labels[i]);
    r.probabilities.push_back(why.probabilities[i]);
  }
  r.time_to_first_token_s = why.time_to_first_token_seconds;
  r.total_s = why.total_seconds;
  if (r.generation.cancelled || r.generation.timed_out) r.generation.finish_reason = "length";
  return r;
}

}  // namespace tinyemo::server
