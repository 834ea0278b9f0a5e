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

GenerationSlots::GenerationSlots(te_lm* lm, size_t parallel, size_t max_waiting)
    : lm_(lm), max_waiting_(max_waiting), slots_(std::max<size_t>(1, parallel)) {
  for (Slot& slot : slots_) {
    te_session* s = nullptr;
    te::check(te_session_new(lm, &s));
    slot.session.reset(s);
  }
}

size_t GenerationSlots::busy() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.busy; }));
}

size_t GenerationSlots::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_;
}

GenerationSlots::Lease GenerationSlots::acquire(const std::vector<int32_t>& prompt, Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto any_free = [&] { return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.busy; }); };
  if (!any_free()) {
    if (waiting_ >= max_waiting_) {
      throw HttpError(503, "queue_full",
                      "all " + std::to_string(slots_.size()) + " generation slots are busy and " +
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
  // The free slot whose cache shares the longest prefix with this prompt.
  size_t best = slots_.size(), best_shared = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].busy) continue;
    const auto& c = slots_[i].cached;
    const size_t shared = static_cast<size_t>(
        std::mismatch(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(std::min(c.size(), prompt.size())),
                      prompt.begin())
            .first -
        c.begin());
    if (best == slots_.size() || shared > best_shared) {
      best = i;
      best_shared = shared;
    }
  }
  slots_[best].busy = true;
  return Lease(this, best);
}

void GenerationSlots::release(size_t slot) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    slots_[slot].busy = false;
  }
  freed_.notify_one();
}

std::vector<int32_t> GenerationSlots::tokenize(std::string_view text) {
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

namespace {

struct GenerationState {
  TurnGate* gate;
  const std::function<bool(std::string_view)>* on_text;
  Clock::time_point deadline;
  GenerationOutcome* out;
  std::vector<int32_t> generated;
  bool holding = false;  // this request holds the gate
  bool timed_out = false;
};

// After each token: let the other slots have their turn while this one
// writes its text out, then queue for the next token.
bool on_token(int32_t token, const char* text, size_t len, void* user_data) {
  auto* st = static_cast<GenerationState*>(user_data);
  st->generated.push_back(token);
  st->gate->release();
  st->holding = false;
  st->out->text.append(text, len);
  bool go = true;
  if (len > 0 && *st->on_text) go = (*st->on_text)(std::string_view(text, len));
  if (!go) st->out->cancelled = true;
  if (go && Clock::now() >= st->deadline) {
    go = false;
    st->timed_out = true;
  }
  if (go) {
    st->gate->acquire();
    st->holding = true;
  }
  return go;
}

}  // namespace

GenerationOutcome GenerationSlots::generate(Lease& lease, const std::vector<int32_t>& prompt, te_generate_params params,
                                            const std::function<bool(std::string_view)>& on_text,
                                            Clock::time_point deadline) {
  Slot& slot = slots_[lease.slot()];
  const size_t n_ctx = static_cast<size_t>(te_lm_n_ctx(lm_));
  if (prompt.empty()) throw HttpError(400, "invalid_value", "the prompt is empty");
  if (prompt.size() >= n_ctx) {
    throw HttpError(400, "context_length_exceeded",
                    "the prompt has " + std::to_string(prompt.size()) + " tokens; the model's context holds " +
                        std::to_string(n_ctx));
  }
  GenerationOutcome out;
  GenerationState st{&gate_, &on_text, deadline, &out, {}, false, false};
  params.on_token = on_token;
  params.user_data = &st;
  te_generate_result result{};

  gate_.acquire();
  st.holding = true;
  size_t kept = 0;
  te_status s = te_session_keep_prefix(slot.session.get(), prompt.data(), prompt.size(), &kept);
  if (s == TE_OK) {
    slot.cached.assign(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(kept));
    s = te_session_generate(slot.session.get(), prompt.data() + kept, prompt.size() - kept, &params, &result);
  }
  const std::string error = s == TE_OK ? "" : te_last_error();
  if (st.holding) gate_.release();

  if (s != TE_OK) {
    // The session forgot what the failed call evaluated; so does our record.
    slot.cached.resize(std::min(slot.cached.size(), te_session_length(slot.session.get())));
    if (s == TE_ERROR_CONTEXT_FULL) throw HttpError(400, "context_length_exceeded", error);
    throw HttpError(500, "internal_error", "generation failed: " + error);
  }
  // The session holds the prompt and every generated token but the last.
  slot.cached.assign(prompt.begin(), prompt.end());
  if (!st.generated.empty()) slot.cached.insert(slot.cached.end(), st.generated.begin(), st.generated.end() - 1);
  out.prompt_tokens = static_cast<int64_t>(prompt.size());
  out.completion_tokens = result.n_generated;
  out.cached_tokens = static_cast<int64_t>(kept);
  out.finish_reason = result.finish_reason == TE_FINISH_EOS || result.finish_reason == TE_FINISH_STOP ? "stop"
                                                                                                     : "length";
  return out;
}

}  // namespace tinyemo::server
