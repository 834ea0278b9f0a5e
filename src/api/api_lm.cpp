// Language models, tokenizers, sessions and generation.
#include <algorithm>
#include <cstring>

#include "api/api_internal.h"
#include "core/log.h"
#include "models/lm/embeddings.h"
#include "models/lm/generate.h"
#include "models/lm/gguf_model.h"
#include "pipeline/projector_jobs.h"

using namespace tinyemo;
using tinyemo::api::ApiError;
using tinyemo::api::copy_out;
using tinyemo::api::guard;
using tinyemo::api::invalid;
using tinyemo::api::require;
using tinyemo::api::threads_of;

namespace tinyemo::api {

int threads_of(int32_t n) {
  if (n < 0) invalid("n_threads must be >= 0 (0: one per core)");
  return n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

lm::GenerateOptions generate_options(const te_generate_params& p) {
  require(p.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  require(p.stop != nullptr || p.n_stop == 0, "stop is NULL");
  lm::GenerateOptions g;
  g.max_new_tokens = p.max_new_tokens;
  g.sampling.greedy = p.temperature <= 0.0f;
  g.sampling.temperature = p.temperature > 0.0f ? p.temperature : 1.0f;
  g.sampling.top_p = p.top_p;
  g.sampling.top_k = p.top_k;
  g.sampling.repetition_penalty = p.repetition_penalty;
  g.sampling.seed = p.seed;
  g.stop_at_eos = !p.ignore_eos;
  for (size_t i = 0; i < p.n_stop; ++i) {
    require(p.stop[i] != nullptr, "a stop string is NULL");
    g.stop_strings.emplace_back(p.stop[i]);
  }
  if (p.on_token != nullptr) {
    const te_token_callback fn = p.on_token;
    void* user_data = p.user_data;
    g.on_token = [fn, user_data](int32_t id, std::string_view text) { return fn(id, text.data(), text.size(), user_data); };
  }
  return g;
}

te_finish_reason finish_reason_of(const std::string& reason) {
  return reason == "eos"        ? TE_FINISH_EOS
         : reason == "stop"     ? TE_FINISH_STOP
         : reason == "callback" ? TE_FINISH_CALLBACK
                                : TE_FINISH_LENGTH;
}

}  // namespace tinyemo::api

namespace {

const lm::Tokenizer& tokenizer_of(const te_lm* lm) {
  if (!lm->tokenizer) fail("{}: the model has no tokenizer (give te_lm_params.tokenizer)", lm->path);
  return *lm->tokenizer;
}

void check_tokens(const te_lm* lm, const int32_t* tokens, size_t n) {
  require(tokens != nullptr || n == 0, "tokens is NULL");
  const int64_t vocab = lm->model.config().vocab;
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab) {
      invalid("token " + std::to_string(i) + " = " + std::to_string(tokens[i]) + " is outside the vocabulary [0, " +
              std::to_string(vocab) + ")");
    }
  }
}

void copy_logits(const Tensor& logits, float* out, size_t n_floats, int64_t vocab) {
  if (out == nullptr) return;
  if (n_floats < static_cast<size_t>(vocab)) {
    invalid("logits holds " + std::to_string(n_floats) + " floats, the vocabulary has " + std::to_string(vocab));
  }
  const float* last = logits.data<float>() + (logits.dim(0) - 1) * vocab;
  std::copy(last, last + vocab, out);
}

}  // namespace

extern "C" {

te_lm_params te_lm_default_params(void) {
  te_lm_params p;
  p.n_threads = 0;
  p.weight_type = nullptr;
  p.tokenizer = nullptr;
  p.compute = nullptr;
  return p;
}

te_status te_lm_load(const char* path, const te_lm_params* params, te_lm** out) {
  return guard([&] {
    require(out != nullptr, "te_lm_load: out is NULL");
    *out = nullptr;
    require(path != nullptr, "te_lm_load: path is NULL");
    const te_lm_params p = params != nullptr ? *params : te_lm_default_params();
    auto lm = std::make_unique<te_lm>(threads_of(p.n_threads));
    lm->path = path;
    lm::LoadOptions o;
    if (p.weight_type != nullptr) {
      DType d;
      if (!parse_dtype(p.weight_type, &d) ||
          !(d == DType::F32 || d == DType::F16 || d == DType::BF16 || d == DType::Q8_0 || d == DType::Q4_0)) {
        invalid(std::string("te_lm_load: weight_type \"") + p.weight_type + "\" is not f32, f16, bf16, q8_0 or q4_0");
      }
      o.weight_dtype = d;
    }
    o.prefill_compute = lm::parse_prefill_compute(p.compute ? p.compute : "", "te_lm_params.compute");
    ScopedThreadPool use(&lm->pool);
    lm->model = lm::LmModel::load(path, o);
    if (p.tokenizer != nullptr) {
      lm->tokenizer = lm::load_lm_tokenizer(path, p.tokenizer);  // a tokenizer file, folder or .gguf
    } else if (!lm::lm_tokenizer_files(path).empty()) {
      lm->tokenizer = lm::load_lm_tokenizer(path);
    }
    if (lm->tokenizer && lm->tokenizer->vocab_size() > lm->model.config().vocab) {
      fail("{}: the tokenizer has {} tokens, more than the model's vocabulary of {}", path,
           lm->tokenizer->vocab_size(), lm->model.config().vocab);
    }
    lm->architecture = std::string(lm::lm_arch_name(lm->model.config().arch));
    log(LogLevel::Info, "loaded {} LM {} ({} threads{})", lm->architecture, path, lm->pool.size(),
        lm->tokenizer ? "" : ", no tokenizer");
    *out = lm.release();
  });
}

void te_lm_free(te_lm* lm) { delete lm; }
int32_t te_lm_n_vocab(const te_lm* lm) { return lm ? static_cast<int32_t>(lm->model.config().vocab) : 0; }
int32_t te_lm_n_ctx(const te_lm* lm) { return lm ? static_cast<int32_t>(lm->model.config().max_context) : 0; }
int32_t te_lm_n_embd(const te_lm* lm) { return lm ? static_cast<int32_t>(lm->model.config().hidden) : 0; }
int32_t te_lm_token_bos(const te_lm* lm) {
  if (lm == nullptr) return -1;
  return lm->tokenizer ? lm->tokenizer->bos_id() : lm->model.config().bos_id;
}
int32_t te_lm_token_eos(const te_lm* lm) {
  if (lm == nullptr) return -1;
  if (lm->tokenizer && lm->tokenizer->eos_id() >= 0) return lm->tokenizer->eos_id();
  return lm->model.config().eos_ids.empty() ? -1 : lm->model.config().eos_ids.front();
}
bool te_lm_has_tokenizer(const te_lm* lm) { return lm != nullptr && lm->tokenizer != nullptr; }
const char* te_lm_architecture(const te_lm* lm) { return lm ? lm->architecture.c_str() : ""; }

te_status te_lm_tokenize(const te_lm* lm, const char* text, size_t text_len, bool add_special, int32_t* tokens,
                         size_t capacity, size_t* n_tokens) {
  return guard([&] {
    if (n_tokens) *n_tokens = 0;
    require(lm != nullptr, "te_lm_tokenize: lm is NULL");
    require(text != nullptr || text_len == 0, "te_lm_tokenize: text is NULL");
    const std::vector<int32_t> ids = tokenizer_of(lm).encode(std::string_view(text ? text : "", text_len), add_special);
    copy_out(ids.data(), ids.size(), tokens, capacity, n_tokens, "te_lm_tokenize");
  });
}

te_status te_lm_detokenize(const te_lm* lm, const int32_t* tokens, size_t n_tokens, bool skip_special, char* text,
                           size_t capacity, size_t* length) {
  return guard([&] {
    if (length) *length = 0;
    require(lm != nullptr, "te_lm_detokenize: lm is NULL");
    check_tokens(lm, tokens, n_tokens);
    const std::string s = tokenizer_of(lm).decode(std::vector<int32_t>(tokens, tokens + n_tokens), skip_special);
    copy_out(s.data(), s.size(), text, capacity, length, "te_lm_detokenize");
    if (s.size() < capacity) text[s.size()] = '\0';
  });
}

te_status te_lm_label_anchors(const te_lm* lm, const char* const* labels, size_t n_labels, const char* grounding,
                              float* anchors, size_t n_floats) {
  return guard([&] {
    require(lm != nullptr, "te_lm_label_anchors: lm is NULL");
    require(n_labels > 0, "te_lm_label_anchors: no labels given");
    require(labels != nullptr, "te_lm_label_anchors: labels is NULL");
    const auto hidden = static_cast<size_t>(lm->model.config().hidden);
    if (n_floats != n_labels * hidden) {
      invalid("te_lm_label_anchors: " + std::to_string(n_labels) + " labels need " + std::to_string(n_labels * hidden) +
              " floats (rows of " + std::to_string(hidden) + "), got " + std::to_string(n_floats));
    }
    require(anchors != nullptr, "te_lm_label_anchors: anchors is NULL");
    std::vector<std::string> names;
    for (size_t i = 0; i < n_labels; ++i) {
      require(labels[i] != nullptr, "te_lm_label_anchors: a label is NULL");
      names.emplace_back(labels[i]);
    }
    const projector::AnchorSet a =
        pipeline::lm_label_anchors(lm->model, tokenizer_of(lm), grounding ? grounding : "{label}", names);
    std::copy(a.rows.begin(), a.rows.end(), anchors);
  });
}

te_status te_session_new(te_lm* lm, te_session** out) {
  return guard([&] {
    require(out != nullptr, "te_session_new: out is NULL");
    *out = nullptr;
    require(lm != nullptr, "te_session_new: lm is NULL");
    *out = new te_session(lm);
  });
}

void te_session_free(te_session* session) { delete session; }
size_t te_session_length(const te_session* session) {
  return session ? static_cast<size_t>(session->session.length()) : 0;
}

te_status te_session_truncate(te_session* s, size_t length) {
  return guard([&] {
    require(s != nullptr, "te_session_truncate: session is NULL");
    if (length > static_cast<size_t>(s->session.length())) {
      invalid("te_session_truncate: the session holds " + std::to_string(s->session.length()) + " positions, not " +
              std::to_string(length));
    }
    s->session.truncate(static_cast<int64_t>(length));
    s->history.resize(length);
  });
}

te_status te_session_keep_prefix(te_session* s, const int32_t* tokens, size_t n_tokens, size_t* kept) {
  return guard([&] {
    if (kept) *kept = 0;
    require(s != nullptr, "te_session_keep_prefix: session is NULL");
    require(tokens != nullptr || n_tokens == 0, "te_session_keep_prefix: tokens is NULL");
    size_t k = 0;
    const size_t limit = std::min(s->history.size(), n_tokens > 0 ? n_tokens - 1 : 0);
    while (k < limit && s->history[k] == tokens[k]) ++k;
    s->session.truncate(static_cast<int64_t>(k));
    s->history.resize(k);
    if (kept) *kept = k;
  });
}

te_status te_session_eval(te_session* s, const int32_t* tokens, size_t n_tokens, float* logits, size_t n_floats) {
  return guard([&] {
    require(s != nullptr, "te_session_eval: session is NULL");
    require(n_tokens > 0, "te_session_eval: no tokens");
    check_tokens(s->lm, tokens, n_tokens);
    ScopedThreadPool use(&s->lm->pool);
    const Tensor out = s->session.forward(std::span<const int32_t>(tokens, n_tokens));
    s->history.insert(s->history.end(), tokens, tokens + n_tokens);
    copy_logits(out, logits, n_floats, s->lm->model.config().vocab);
  });
}

te_status te_session_eval_embeddings(te_session* s, const float* rows, size_t n_rows, size_t dim, float* logits,
                                     size_t n_floats) {
  return guard([&] {
    require(s != nullptr, "te_session_eval_embeddings: session is NULL");
    require(n_rows > 0, "te_session_eval_embeddings: no rows");
    require(rows != nullptr, "te_session_eval_embeddings: rows is NULL");
    const int64_t hidden = s->lm->model.config().hidden;
    if (dim != static_cast<size_t>(hidden)) {
      invalid("te_session_eval_embeddings: rows of " + std::to_string(dim) + " floats, the LM's hidden size is " +
              std::to_string(hidden));
    }
    const Tensor input = Tensor::from_vector<float>({static_cast<int64_t>(n_rows), hidden},
                                                    std::vector<float>(rows, rows + n_rows * dim));
    ScopedThreadPool use(&s->lm->pool);
    const Tensor out = s->session.forward(input);
    // Embedding rows match no token: -1 never equals a token id in keep_prefix.
    s->history.insert(s->history.end(), n_rows, -1);
    copy_logits(out, logits, n_floats, s->lm->model.config().vocab);
  });
}

te_generate_params te_generate_default_params(void) {
  te_generate_params p;
  std::memset(&p, 0, sizeof(p));
  p.max_new_tokens = 256;
  p.temperature = 0.0f;
  p.top_p = 1.0f;
  p.top_k = 0;
  p.repetition_penalty = 1.0f;
  p.seed = 0;
  return p;
}

te_status te_session_generate(te_session* s, const int32_t* prompt, size_t n_prompt, const te_generate_params* params,
                              te_generate_result* result) {
  return guard([&] {
    if (result) std::memset(result, 0, sizeof(*result));
    require(s != nullptr, "te_session_generate: session is NULL");
    require(n_prompt > 0, "te_session_generate: the prompt is empty (give at least the last token)");
    check_tokens(s->lm, prompt, n_prompt);
    const te_generate_params p = params != nullptr ? *params : te_generate_default_params();
    lm::GenerateOptions g = api::generate_options(p);
    if (s->lm->tokenizer) {
      g.tokenizer = s->lm->tokenizer.get();
      if (s->lm->tokenizer->eos_id() >= 0) {
        g.eos_ids = s->lm->model.config().eos_ids;
        if (std::find(g.eos_ids.begin(), g.eos_ids.end(), s->lm->tokenizer->eos_id()) == g.eos_ids.end()) {
          g.eos_ids.push_back(s->lm->tokenizer->eos_id());
        }
      }
    } else {
      require(p.n_stop == 0, "te_session_generate: stop strings need a tokenizer");
    }
    std::vector<int32_t> seen(s->history.begin(), s->history.end());
    seen.erase(std::remove(seen.begin(), seen.end(), -1), seen.end());
    seen.insert(seen.end(), prompt, prompt + n_prompt);
    ScopedThreadPool use(&s->lm->pool);
    const Tensor rows = embed_tokens(s->lm->model, std::span<const int32_t>(prompt, n_prompt));
    const size_t before = static_cast<size_t>(s->session.length());
    lm::GenerateResult r;
    try {
      r = generate(s->session, rows, seen, g);
    } catch (...) {
      // Forget what the failed call evaluated, so that history and cache agree.
      s->session.truncate(static_cast<int64_t>(before));
      throw;
    }
    // The session holds the prompt and the generated ids but the last.
    s->history.insert(s->history.end(), prompt, prompt + n_prompt);
    if (!r.ids.empty()) s->history.insert(s->history.end(), r.ids.begin(), r.ids.end() - 1);
    if (result) {
      result->finish_reason = api::finish_reason_of(r.finish_reason);
      result->n_prompt = static_cast<int32_t>(n_prompt);
      result->n_generated = static_cast<int32_t>(r.ids.size());
      result->prompt_seconds = r.prompt_seconds;
      result->generate_seconds = r.generate_seconds;
    }
  });
}

}  // extern "C"
