// Generation slots: --parallel N sequences of one model, each holding its own
// KV cache (so a slot's answer never sees another's positions), handed to
// requests from a bounded wait queue. Slots that generate at the same time
// take turns token by token through a FIFO gate, so N streams advance evenly
// (the model's threads serve one forward at a time anyway) and a long answer
// cannot starve a short one. Network writes happen outside the gate.
//
// SlotPool and generate_in_turns are the shared machinery; TextSlots (a text
// LM's te_session per slot) and MmSlots (a multimodal model's te_mm_session
// and te_reasoner per slot) use it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "tinyemo.hpp"

namespace tinyemo::server {

using Clock = std::chrono::steady_clock;

// A FIFO lock: whoever asked first goes first.
class TurnGate {
 public:
  void acquire();
  void release();

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t next_ = 0, serving_ = 0;
};

// N slots and the requests waiting for one.
class SlotPool {
 public:
  // `max_waiting` requests may wait (more: HttpError 503 "queue_full").
  SlotPool(size_t n, size_t max_waiting);
  SlotPool(const SlotPool&) = delete;
  SlotPool& operator=(const SlotPool&) = delete;

  class Lease {
   public:
    Lease() = default;
    Lease(SlotPool* owner, size_t slot) : owner_(owner), slot_(slot) {}
    Lease(Lease&& other) noexcept : owner_(other.owner_), slot_(other.slot_) { other.owner_ = nullptr; }
    // Taking another lease gives this one's slot back (through `other`).
    Lease& operator=(Lease&& other) noexcept {
      std::swap(owner_, other.owner_);
      std::swap(slot_, other.slot_);
      return *this;
    }
    ~Lease() {
      if (owner_ != nullptr) owner_->release(slot_);
    }
    size_t slot() const { return slot_; }

   private:
    SlotPool* owner_ = nullptr;
    size_t slot_ = 0;
  };

  // Waits for a free slot until `deadline` (HttpError 503 "timeout"); among
  // free slots the one `preference` scores highest (default: the first).
  Lease acquire(Clock::time_point deadline, const std::function<size_t(size_t)>& preference = {});
  size_t busy() const;
  size_t waiting() const;
  size_t size() const { return busy_.size(); }

 private:
  void release(size_t slot);
  size_t max_waiting_;
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<bool> busy_;
  size_t waiting_ = 0;
};

struct GenerationOutcome {
  std::string text;
  std::string finish_reason;  // "stop" (EOS or a stop string), "length" (max_tokens, context, or time limit)
  int64_t prompt_tokens = 0, completion_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens the slot's cache already held (not evaluated again)
  bool cancelled = false;     // on_text asked to stop (the client went away)
  bool timed_out = false;     // the deadline ended it
  std::vector<int32_t> tokens;
};

// Runs one library generation call holding `gate` while it computes and
// letting go of it at each token: `call(params, result)` is te_session_generate,
// te_mm_generate or te_reason with params.on_token installed here. `on_text`
// receives the text and returns false to stop; generation also stops at
// `deadline`. Returns the call's status (the outcome is filled on TE_OK).
te_status generate_in_turns(TurnGate& gate, te_generate_params params,
                            const std::function<bool(std::string_view)>& on_text, Clock::time_point deadline,
                            const std::function<te_status(const te_generate_params&, te_generate_result*)>& call,
                            GenerationOutcome* out);

// A text LM's slots: one te_session each.
class TextSlots {
 public:
  // `lm` must outlive the slots.
  TextSlots(te_lm* lm, size_t parallel, size_t max_waiting);

  SlotPool& pool() { return pool_; }
  // Waits for a slot, preferring the one whose cache shares the longest prefix with `prompt`.
  SlotPool::Lease acquire(const std::vector<int32_t>& prompt, Clock::time_point deadline);
  // Tokenizes under the gate (the LM's tokenizer is shared by the slots).
  std::vector<int32_t> tokenize(std::string_view text);
  // The prompt's cached prefix is kept, the rest evaluated, then tokens
  // sampled with `params` (its callback fields are ignored). HttpError 400
  // when the prompt does not fit the context.
  GenerationOutcome generate(const SlotPool::Lease& lease, const std::vector<int32_t>& prompt,
                             const te_generate_params& params, const std::function<bool(std::string_view)>& on_text,
                             Clock::time_point deadline);
  int32_t context_length() const { return te_lm_n_ctx(lm_); }

 private:
  te_lm* lm_;
  TurnGate gate_;
  SlotPool pool_;
  std::vector<te::session_ptr> sessions_;
  std::vector<std::vector<int32_t>> cached_;  // the tokens each session holds (the server's own record)
};

// A multimodal model's slots: a te_mm_session (chat with images) and a
// te_reasoner (TinyEmo's label + explanation) each, sharing one gate (one
// model's threads).
class MmSlots {
 public:
  // `mm`, `projector` and `clip` must outlive the slots (the reasoners copy
  // the projector and CLIP; `clip` may be null: the model's own tower).
  MmSlots(te_mm* mm, const te_projector* projector, const te_clip* clip, size_t parallel, size_t max_waiting);

  SlotPool& pool() { return pool_; }
  SlotPool::Lease acquire(Clock::time_point deadline) { return pool_.acquire(deadline); }

  // Answers the last turn (te_mm_generate); `images` go where the questions' <image> markers are.
  GenerationOutcome chat(const SlotPool::Lease& lease, const std::vector<te_mm_turn>& turns,
                         const std::vector<const te_image*>& images, const te_generate_params& params,
                         const std::function<bool(std::string_view)>& on_text, Clock::time_point deadline);

  struct Reasoning {
    GenerationOutcome generation;
    std::string label, reasoning, lm_label, text;
    std::vector<std::string> labels;
    std::vector<float> probabilities;
    bool agreement = false;
    double time_to_first_token_s = 0, total_s = 0;
  };
  // Makes the leased slot's reasoner use `labels` (empty: the projector's
  // own): a subset, or new labels anchored in the LM's input embeddings.
  // HttpError 400 "unknown_label" when the set cannot be used.
  void set_labels(const SlotPool::Lease& lease, const std::vector<std::string>& labels);
  // TinyEmo's reasoning on one image over `labels` (empty: the projector's
  // own); HttpError 400 "unknown_label" when a label set cannot be used.
  Reasoning reason(const SlotPool::Lease& lease, const te_image* image, const std::vector<std::string>& labels,
                   const te_generate_params& params, const std::function<bool(std::string_view)>& on_text,
                   Clock::time_point deadline);

 private:
  te_mm* mm_;
  TurnGate gate_;
  SlotPool pool_;
  std::vector<te::mm_session_ptr> sessions_;
  std::vector<te::reasoner_ptr> reasoners_;
  std::vector<std::string> projector_labels_;
  std::vector<std::vector<std::string>> reasoner_labels_;  // the set each reasoner holds ({}: unknown)
};

}  // namespace tinyemo::server
