// Running a TinyLLaVA model over prompts with images: an LM session that
// remembers what it holds (token ids and image rows), so each new prompt
// feeds only what differs from the cached prefix — a conversation's earlier
// turns, or the system prompt every image shares (computed once per session,
// then rewound to). Results equal recomputing the whole prompt.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "models/lm/generate.h"
#include "models/lm/session.h"
#include "models/mm/model.h"

namespace tinyemo::mm {

// run_tiny_llava.py's defaults: sampling at temperature 0.2 (Hugging Face's
// generate then also keeps the top 50 tokens, its top_k default), top_p off,
// up to 512 new tokens; generation stops at the template's stop text or EOS.
lm::GenerateOptions default_generate_options();

struct MmGenerateResult {
  lm::GenerateResult generated;   // ids (prompt excluded), decoded text, finish_reason
  std::string answer;         // run_tiny_llava's output: text stripped, a trailing stop text removed, stripped
  int64_t prompt_positions = 0;  // after the splice (and truncation)
  int64_t truncated = 0;         // positions cut by tokenizer_model_max_length
  int64_t reused_positions = 0;  // prompt positions served from the cache
  double prefill_s = 0;          // from the call to the first generated token
  double decode_s = 0;           // the rest
  double total_s = 0;
};

class MmSession {
 public:
  explicit MmSession(const TinyLlavaModel& model);

  const TinyLlavaModel& model() const { return model_; }
  lm::LmSession& lm_session() { return lm_; }
  int64_t length() const { return lm_.length(); }
  void reset();

  // Logits of `ids` with image_features at the placeholders (the spliced,
  // truncated sequence): F32 [T, vocab] when all_positions, else the last row.
  // all_positions recomputes from the start; otherwise the cached prefix is reused.
  Tensor logits(std::span<const int32_t> ids, const std::vector<Tensor>& image_features, bool all_positions);

  // Generates after `ids` / image_features. Without a tokenizer or stop
  // strings in `options`, the model's tokenizer and (unless stop_at_eos is
  // off) its template's stop text are filled in. The session then holds the
  // prompt and the answer.
  MmGenerateResult generate(std::span<const int32_t> ids, const std::vector<Tensor>& image_features,
                            lm::GenerateOptions options);

 private:
  // One position: a token id, or row `row` of image `image` (an index into images_).
  struct Entry {
    int32_t id = 0;
    int32_t image = -1;
    int64_t row = 0;
  };
  // Rewinds the LM session to the longest prefix of `entries` it holds and
  // returns that length (at most entries.size() - 1, so a row is left to feed).
  int64_t rewind_to_common_prefix(const std::vector<Entry>& entries, const std::vector<Tensor>& images);
  std::vector<Entry> entries_of(std::span<const int32_t> ids, const std::vector<Tensor>& images, int64_t limit) const;

  const TinyLlavaModel& model_;
  lm::LmSession lm_;
  std::vector<Entry> entries_;  // what lm_ holds, position by position
  std::vector<Tensor> images_;  // image rows entries_ refer to
};

// A multi-turn conversation in the model's template: images attach to the next
// question (as "<image>\n" before it), answers are kept for the next turn's prompt.
class Chat {
 public:
  explicit Chat(const TinyLlavaModel& model);
  // Image features (from TinyLlavaModel::encode_images) for the next question.
  void add_image(Tensor image_features);
  MmGenerateResult ask(const std::string& question, const lm::GenerateOptions& options);
  void clear();
  const std::vector<Turn>& turns() const { return turns_; }
  int64_t pending_images() const { return static_cast<int64_t>(pending_.size()); }

 private:
  MmSession session_;
  std::vector<Turn> turns_;
  std::vector<Tensor> images_;   // in prompt order
  std::vector<Tensor> pending_;  // for the next question
};

}  // namespace tinyemo::mm
