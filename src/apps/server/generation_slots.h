// Generation slots: --parallel N sessions of one LM, each holding its own KV
// cache (so a slot's answer never sees another's positions), handed to
// requests from a bounded wait queue. Slots that generate at the same time
// take turns token by token through a FIFO gate, so N streams advance evenly
// (the LM's threads serve one forward at a time anyway) and a long answer
// cannot starve a short one. Network writes happen outside the gate.
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

struct GenerationOutcome {
  std::string text;
  std::string finish_reason;  // "stop" (EOS or a stop string), "length" (max_tokens, context, or time limit)
  int64_t prompt_tokens = 0, completion_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens the slot's cache already held (not evaluated again)
  bool cancelled = false;  // on_text asked to stop (the client went away)
};

class GenerationSlots {
 public:
  // `lm` must outlive the slots; `max_waiting` requests may wait for a slot
  // (more: HttpError 503 "queue_full").
  GenerationSlots(te_lm* lm, size_t parallel, size_t max_waiting);
  GenerationSlots(const GenerationSlots&) = delete;
  GenerationSlots& operator=(const GenerationSlots&) = delete;

  class Lease;
  // Waits for a free slot until `deadline` (HttpError 503 "timeout"), choosing
  // the one whose cached tokens share the longest prefix with `prompt`.
  Lease acquire(const std::vector<int32_t>& prompt, Clock::time_point deadline);

  // Tokenizes under the gate (the LM's tokenizer is shared by the slots).
  std::vector<int32_t> tokenize(std::string_view text);

  // Generates on a leased slot: the prompt's cached prefix is kept, the rest
  // evaluated, then tokens sampled with `params` (its callback fields are
  // ignored). `on_text` receives the text as it comes and returns false to
  // stop; generation also stops at `deadline`. HttpError 400 when the prompt
  // does not fit the context.
  GenerationOutcome generate(Lease& lease, const std::vector<int32_t>& prompt, te_generate_params params,
                             const std::function<bool(std::string_view)>& on_text, Clock::time_point deadline);

  size_t busy() const;
  size_t waiting() const;
  size_t size() const { return slots_.size(); }
  int32_t context_length() const { return te_lm_n_ctx(lm_); }

 private:
  struct Slot {
    te::session_ptr session;
    std::vector<int32_t> cached;  // the tokens the session holds (the server's own record)
    bool busy = false;
  };
  void release(size_t slot);

  te_lm* lm_;
  size_t max_waiting_;
  std::vector<Slot> slots_;
  TurnGate gate_;
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  size_t waiting_ = 0;

 public:
  class Lease {
   public:
    Lease() = default;
    Lease(GenerationSlots* owner, size_t slot) : owner_(owner), slot_(slot) {}
    Lease(Lease&& other) noexcept : owner_(other.owner_), slot_(other.slot_) { other.owner_ = nullptr; }
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
    GenerationSlots* owner_ = nullptr;
    size_t slot_ = 0;
  };
};

}  // namespace tinyemo::server
