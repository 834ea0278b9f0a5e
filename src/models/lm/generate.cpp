#include "models/lm/generate.h"

#include <algorithm>
#include <cstring>

#include "models/lm/embeddings.h"
#include "models/lm/session.h"

namespace tinyemo {

namespace {

// Positions reserved for generated tokens before the first one exists; the
// cache grows geometrically past that (LmSession::reserve).
constexpr int64_t kInitialReserve = 256;

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

}  // namespace

GenerateResult generate(const LmModel& model, std::span<const int32_t> prompt_ids, const GenerateOptions& options) {
  return generate(model, embed_tokens(model, prompt_ids), prompt_ids, options);
}

GenerateResult generate(const LmModel& model, const Tensor& prompt_embeddings, std::span<const int32_t> seen_ids,
                        const GenerateOptions& options) {
  const LmConfig& c = model.config();
  TE_CHECK(options.max_new_tokens >= 0, "max new tokens must be >= 0, got {}", options.max_new_tokens);
  TE_CHECK(options.stop_strings.empty() || options.tokenizer != nullptr, "stop strings need a tokenizer");
  TE_CHECK(prompt_embeddings.ndim() == 2 && prompt_embeddings.dim(0) > 0, "generation needs a non-empty prompt");
  const int64_t prompt_len = prompt_embeddings.dim(0);
  const char* context_key = c.arch == LmArch::OpenElm ? "max_context_length" : "max_position_embeddings";
  TE_CHECK(prompt_len <= c.max_context, "the prompt ({} positions) is longer than the model's context of {} ({}: {})",
           prompt_len, c.max_context, c.where, context_key);
  // Generation stops at the end of the context (finish_reason "length"); the
  // KV cache grows with the tokens really generated, never with the request
  // (--max-new-tokens 1e9 on a 2^30 context reserves nothing up front).
  const int64_t max_new_tokens = std::min<int64_t>(options.max_new_tokens, c.max_context - prompt_len);
  const std::vector<int32_t> eos = options.eos_ids.empty() ? c.eos_ids : options.eos_ids;

  Sampler sampler(options.sampling);
  LmSession session(model);
  session.reserve(prompt_len + std::min<int64_t>(max_new_tokens, kInitialReserve));
  std::vector<int32_t> seen(seen_ids.begin(), seen_ids.end());
  GenerateResult result;
  result.finish_reason = "length";
  TextTracker text(options);
  Tensor sequence = prompt_embeddings.dtype() == DType::F32 ? prompt_embeddings : prompt_embeddings.to(DType::F32);
  Tensor logits = max_new_tokens > 0 ? session.forward(sequence) : Tensor();

  for (int64_t step = 0; step < max_new_tokens; ++step) {
    float* row = logits.mutable_data<float>();
    const int32_t id = sampler.next(std::span<float>(row, static_cast<size_t>(c.vocab)), seen);
    result.ids.push_back(id);
    seen.push_back(id);
    const bool stopped = text.update(result.ids);
    const bool is_eos = options.stop_at_eos && std::find(eos.begin(), eos.end(), id) != eos.end();
    const bool done = stopped || is_eos || step + 1 == max_new_tokens;
    if (options.on_token && !options.on_token(id, text.take(done))) {
      result.finish_reason = "callback";
      break;
    }
    if (stopped || is_eos) {
      result.finish_reason = stopped ? "stop" : "eos";
      break;
    }
    if (step + 1 == max_new_tokens) break;
    const Tensor next = embed_tokens(model, std::span<const int32_t>(&id, 1));
    if (options.use_kv_cache) {
      logits = session.forward(next);
    } else {
      // Reference path: the whole sequence again from an empty cache.
      Tensor grown = Tensor::empty(DType::F32, {sequence.dim(0) + 1, c.hidden});
      std::memcpy(grown.mutable_data<float>(), sequence.data<float>(), sequence.nbytes());
      std::memcpy(grown.mutable_data<float>() + sequence.numel(), next.data<float>(), next.nbytes());
      sequence = grown;
      session.reset();
      logits = session.forward(sequence);
    }
  }
  result.text = text.text();
  return result;
}

}  // namespace tinyemo
