// Text generation: prefill the prompt (token ids or embedding rows), then decode
// one token at a time from the KV cache until max_new_tokens, an EOS id, a stop
// string or the callback says stop.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "models/lm/model.h"
#include "models/lm/sampling.h"
#include "models/lm/session.h"
#include "models/lm/tokenizer.h"

namespace tinyemo::lm {

struct GenerateOptions {
  // At most this many; generation also ends at the model's context (finish_reason "length").
  int64_t max_new_tokens = 32;
  SamplingOptions sampling;
  // Ids that end generation (kept as the last generated id). Empty: the config's eos_token_id.
  std::vector<int32_t> eos_ids;
  bool stop_at_eos = true;
  // Generation ends once the decoded text contains one of these; the text is cut
  // before it (the ids keep the token that completed it). Needs `tokenizer`.
  std::vector<std::string> stop_strings;
  // Decodes the generated ids for `text`, streaming and stop strings (optional).
  const Tokenizer* tokenizer = nullptr;
  // false: recompute the whole sequence for every token (the reference path the
  // KV cache is tested against).
  bool use_kv_cache = true;
  // Called after each generated token with the text it completes (empty while a
  // multi-byte character or a possible stop string is still open; the pieces
  // concatenate to the final text). Return false to stop.
  std::function<bool(int32_t id, std::string_view text)> on_token;
};

struct GenerateResult {
  std::vector<int32_t> ids;   // generated ids, prompt excluded
  std::string text;           // their text (empty without a tokenizer)
  std::string finish_reason;  // "length" (max_new_tokens or the context's end), "eos", "stop" or "callback"
  int64_t prompt_positions = 0;
  double prompt_seconds = 0.0;    // evaluating the prompt (to the first token's logits)
  double generate_seconds = 0.0;  // the rest
};

// Generation ends at max_new_tokens or where the next token would no longer
// fit in the context (finish_reason "length"); a prompt that does not fit is
// refused (ContextFullError).
GenerateResult generate(const LmModel& model, std::span<const int32_t> prompt_ids, const GenerateOptions& options);
// Prompt as input embedding rows (F32 [T, hidden], e.g. from embed_with_inserted);
// `seen_ids` are the prompt's token ids the repetition penalty counts.
GenerateResult generate(const LmModel& model, const Tensor& prompt_embeddings, std::span<const int32_t> seen_ids,
                        const GenerateOptions& options);
// Continues a caller-owned session (a chat, a server slot): appends the prompt
// rows (at least one) and generates. Afterwards the session holds the prompt
// and every generated id but the last (sampled, not evaluated yet).
// `seen_ids`: what the repetition penalty counts (the conversation's ids).
// Always uses the KV cache (use_kv_cache is ignored).
GenerateResult generate(LmSession& session, const Tensor& prompt_embeddings, std::span<const int32_t> seen_ids,
                        const GenerateOptions& options);

}  // namespace tinyemo::lm
