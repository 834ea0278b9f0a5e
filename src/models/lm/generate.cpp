#include "models/lm/generate.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "models/lm/embeddings.h"
#include "models/lm/session.h"

namespace tinyemo::lm {

namespace {

// Length of the prefix of `text` that later tokens cannot change: a trailing
// UTF-8 sequence still missing bytes is held back, and so are trailing U+FFFD
// (SentencePiece writes them for byte-fallback pieces of an unfinished character).
size_t complete_utf8_prefix(std::string_view text) {
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  while (text.ends_with(kReplacement)) text.remove_suffix(kReplacement.size());
  const size_t n = text.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const unsigned char c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

// Tracks the generated text for stop strings and streaming.
class TextTracker {
 public:
  TextTracker(const GenerateOptions& o) : o_(o) {}

  // After appending `id`: true when a stop string appeared (text cut before it).
  bool update(const std::vector<int32_t>& ids) {
    if (o_.tokenizer == nullptr) return false;
    text_ = o_.tokenizer->decode(ids);
    size_t cut = std::string::npos;
    for (const auto& s : o_.stop_strings) {
      if (s.empty()) continue;
      const size_t at = text_.find(s);
      if (at != std::string::npos) cut = std::min(cut, at);
    }
    if (cut != std::string::npos) text_.resize(cut);
    return cut != std::string::npos;
  }

  // Text that can be released now: complete characters, less a tail that may
  // be the start of a stop string.
  std::string_view releasable(bool final) const {
    size_t end = final ? text_.size() : complete_utf8_prefix(text_);
    if (!final) {
      const std::string_view done = std::string_view(text_).substr(0, end);
      size_t hold = 0;
      for (const auto& s : o_.stop_strings) {
        for (size_t k = std::min(s.size(), done.size() + 1); k-- > 1;) {
          if (done.ends_with(std::string_view(s).substr(0, k))) {
            hold = std::max(hold, k);
            break;
          }
        }
      }
      end -= hold;
    }
    return std::string_view(text_).substr(0, std::max(end, emitted_));
  }

  std::string_view take(bool final) {
    const std::string_view r = releasable(final);
    const std::string_view piece = r.substr(std::min(emitted_, r.size()));
    emitted_ = std::max(emitted_, r.size());
    return piece;
  }

  const std::string& text() const { return text_; }

 private:
  const GenerateOptions& o_;
  std::string text_;
  size_t emitted_ = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The generation loop over `session`, whose last forward gave `logits`.
// `advance(id)` evaluates a sampled id and returns the next logits.
template <class Advance>
void sample_until_done(const LmConfig& c, const GenerateOptions& options, int64_t max_new, Tensor logits,
                       std::vector<int32_t> seen, Advance&& advance, GenerateResult& result) {
  const std::vector<int32_t> eos = options.eos_ids.empty() ? c.eos_ids : options.eos_ids;
  Sampler sampler(options.sampling);
  TextTracker text(options);
  result.finish_reason = "length";
  for (int64_t step = 0; step < max_new; ++step) {
    float* row = logits.mutable_data<float>();
    const int32_t id = sampler.next(std::span<float>(row, static_cast<size_t>(c.vocab)), seen);
    result.ids.push_back(id);
    seen.push_back(id);
    const bool stopped = text.update(result.ids);
    const bool is_eos = options.stop_at_eos && std::find(eos.begin(), eos.end(), id) != eos.end();
    const bool done = stopped || is_eos || step + 1 == max_new;
    if (options.on_token && !options.on_token(id, text.take(done))) {
      result.finish_reason = "callback";
      break;
    }
    if (stopped || is_eos) {
      result.finish_reason = stopped ? "stop" : "eos";
      break;
    }
    if (step + 1 == max_new) break;
    logits = advance(id);
  }
  result.text = text.text();
}

void check_options(const GenerateOptions& options) {
  TE_CHECK(options.max_new_tokens >= 0, "max new tokens must be >= 0, got {}", options.max_new_tokens);
  TE_CHECK(options.stop_strings.empty() || options.tokenizer != nullptr, "stop strings need a tokenizer");
  validate(options.sampling);
}

}  // namespace

GenerateResult generate(const LmModel& model, std::span<const int32_t> prompt_ids, const GenerateOptions& options) {
  return generate(model, embed_tokens(model, prompt_ids), prompt_ids, options);
}

GenerateResult generate(LmSession& session, const Tensor& prompt_embeddings, std::span<const int32_t> seen_ids,
                        const GenerateOptions& options) {
  const LmModel& model = session.model();
  const LmConfig& c = model.config();
  check_options(options);
  TE_CHECK(prompt_embeddings.ndim() == 2 && prompt_embeddings.dim(0) > 0, "generation needs a non-empty prompt");
  const auto t0 = std::chrono::steady_clock::now();
  GenerateResult result;
  result.prompt_positions = prompt_embeddings.dim(0);
  const Tensor prompt =
      prompt_embeddings.dtype() == DType::F32 ? prompt_embeddings : prompt_embeddings.to(DType::F32);
  Tensor logits = session.forward(prompt);
  result.prompt_seconds = seconds_since(t0);
  // Every generated id but the last is evaluated: the sequence stays within the context.
  const int64_t max_new = std::min(options.max_new_tokens, c.max_context - session.length());
  const auto t1 = std::chrono::steady_clock::now();
  sample_until_done(c, options, max_new, std::move(logits), {seen_ids.begin(), seen_ids.end()},
                    [&](int32_t id) { return session.forward(embed_tokens(model, std::span<const int32_t>(&id, 1))); },
                    result);
  result.generate_seconds = seconds_since(t1);
  return result;
}

GenerateResult generate(const LmModel& model, const Tensor& prompt_embeddings, std::span<const int32_t> seen_ids,
                        const GenerateOptions& options) {
  LmSession session(model);
  if (options.use_kv_cache) return generate(session, prompt_embeddings, seen_ids, options);

  // Reference path: the whole sequence again from an empty cache for every token.
  check_options(options);
  TE_CHECK(prompt_embeddings.ndim() == 2 && prompt_embeddings.dim(0) > 0, "generation needs a non-empty prompt");
  const LmConfig& c = model.config();
  const auto t0 = std::chrono::steady_clock::now();
  GenerateResult result;
  result.prompt_positions = prompt_embeddings.dim(0);
  Tensor sequence = prompt_embeddings.dtype() == DType::F32 ? prompt_embeddings : prompt_embeddings.to(DType::F32);
  Tensor logits = session.forward(sequence);
  result.prompt_seconds = seconds_since(t0);
  const int64_t max_new = std::min(options.max_new_tokens, c.max_context - session.length());
  const auto t1 = std::chrono::steady_clock::now();
  sample_until_done(c, options, max_new, std::move(logits), {seen_ids.begin(), seen_ids.end()},
                    [&](int32_t id) {
                      const Tensor next = embed_tokens(model, std::span<const int32_t>(&id, 1));
                      Tensor grown = Tensor::empty(DType::F32, {sequence.dim(0) + 1, c.hidden});
                      std::memcpy(grown.mutable_data<float>(), sequence.data<float>(), sequence.nbytes());
                      std::memcpy(grown.mutable_data<float>() + sequence.numel(), next.data<float>(), next.nbytes());
                      sequence = grown;
                      session.reset();
                      return session.forward(sequence);
                    },
                    result);
  result.generate_seconds = seconds_since(t1);
  return result;
}

}  // namespace tinyemo::lm
