// POST /v1/chat/completions (OpenAI's schema, streamed as server-sent events
// with "stream": true) on the text LM (--lm) or the multimodal model (--mm,
// which also takes image_url parts), and POST /v1/reason (TinyEmo's label
// and explanation of one image, streamed the same way).
#include <ctime>
#include <random>

#include "routes.h"

namespace tinyemo::server {

using httplib::Request;
using httplib::Response;
using nlohmann::json;

namespace {

using TextSink = std::function<bool(std::string_view)>;

std::string random_id(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(prefix) + buf;
}

uint64_t random_seed() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

// A request's sampling fields over a model's defaults. The stop strings live
// here for as long as the parameters point at them.
struct Sampling {
  te_generate_params params{};
  std::vector<std::string> stop;
  std::vector<const char*> stop_ptrs;

  Sampling(te_generate_params base, const SamplingRequest& s, std::vector<std::string> template_stop,
           int default_max_tokens) {
    params = base;
    if (s.temperature) params.temperature = static_cast<float>(*s.temperature);
    if (s.top_p < 1.0) params.top_p = static_cast<float>(s.top_p);
    params.max_new_tokens = static_cast<int32_t>(s.max_tokens > 0 ? s.max_tokens : default_max_tokens);
    params.seed = s.seed.value_or(random_seed());
    params.ignore_eos = s.ignore_eos;
    stop = std::move(template_stop);
    stop.insert(stop.end(), s.stop.begin(), s.stop.end());
    for (const auto& x : stop) stop_ptrs.push_back(x.c_str());
    params.stop = stop_ptrs.empty() ? nullptr : stop_ptrs.data();
    params.n_stop = stop_ptrs.size();
  }
  Sampling(const Sampling&) = delete;
  Sampling& operator=(const Sampling&) = delete;
};

json usage_json(const GenerationOutcome& o) {
  return {{"prompt_tokens", o.prompt_tokens},
          {"completion_tokens", o.completion_tokens},
          {"total_tokens", o.prompt_tokens + o.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", o.cached_tokens}}}};
}

void count_tokens(ServerState& state, const GenerationOutcome& o) {
  state.metrics.add_tokens(static_cast<uint64_t>(std::max<int64_t>(0, o.prompt_tokens - o.cached_tokens)),
                           static_cast<uint64_t>(std::max<int64_t>(0, o.completion_tokens)));
}

// Streams server-sent events: `run(send)` produces them ("data: JSON" each,
// `send` returning false once the client is gone), then "data: [DONE]". The
// request is counted when the stream ends.
void stream_events(ServerState& state, Response& res, RouteContext& ctx,
                   std::function<bool(const std::function<bool(const json&)>&)> run) {
  ctx.streaming = true;
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [run = std::move(run)](size_t, httplib::DataSink& sink) {
        const auto send = [&](const json& event) {
          const std::string s = "data: " + dump_json(event) + "\n\n";
          return sink.write(s.data(), s.size());
        };
        bool alive = run(send);
        if (alive) {
          static const std::string done = "data: [DONE]\n\n";
          alive = sink.write(done.data(), done.size());
        }
        if (alive) sink.done();
        return alive;
      },
      [&state, ctx](bool) { record_request(state, ctx, 200); });
}

// An OpenAI chat completion, whole or streamed. `generate(on_text)` runs the
// generation on a leased slot and gives the slot back when it returns.
void respond_chat(ServerState& state, Response& res, RouteContext& ctx, const ChatRequest& request,
                  const std::string& model, std::function<GenerationOutcome(const TextSink&)> generate) {
  const std::string id = random_id("chatcmpl-");
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  if (!request.stream) {
    const GenerationOutcome o = generate({});
    count_tokens(state, o);
    send_json(res, 200,
              {{"id", id},
               {"object", "chat.completion"},
               {"created", created},
               {"model", model},
               {"choices",
                {{{"index", 0},
                  {"message", {{"role", "assistant"}, {"content", o.text}}},
                  {"finish_reason", o.finish_reason}}}},
               {"usage", usage_json(o)}});
    return;
  }
  const bool include_usage = request.include_usage;
  stream_events(state, res, ctx, [&state, generate, id, created, model, include_usage](const auto& send) {
    const auto chunk = [&](const json& delta, const json& finish) {
      return json{{"id", id},
                  {"object", "chat.completion.chunk"},
                  {"created", created},
                  {"model", model},
                  {"choices", {{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}}}};
    };
    bool alive = send(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
    if (!alive) return false;
    GenerationOutcome o;
    try {
      o = generate([&](std::string_view text) { return alive = send(chunk({{"content", text}}, nullptr)); });
    } catch (const HttpError& e) {
      return alive && send(error_json(e.status, e.code, e.what()));
    }
    count_tokens(state, o);
    if (alive) alive = send(chunk(json::object(), o.finish_reason));
    if (alive && include_usage) {
      alive = send({{"id", id},
                    {"object", "chat.completion.chunk"},
                    {"created", created},
                    {"model", model},
                    {"choices", json::array()},
                    {"usage", usage_json(o)}});
    }
    return alive;
  });
}

// Decodes a request's images (413 / 415 / 400 for the first that fails) and
// keeps them, with their pixels counted in the budget, for the generation.
struct RequestImages {
  explicit RequestImages(PixelBudget* budget) : decoded(budget) {}
  DecodedImages decoded;
  std::vector<const te_image*> pointers;
};
std::shared_ptr<RequestImages> decode_all(ServerState& state, std::vector<ImageInput> inputs,
                                          Clock::time_point deadline) {
  auto images = std::make_shared<RequestImages>(&state.pixels);
  images->decoded.decode(inputs, state.options.max_pixels, deadline);
  for (auto& d : images->decoded.images) {
    if (!d.error.empty()) {
      throw HttpError(d.error_status, d.error_status == 415 ? "unsupported_media_type" : "invalid_image", d.error);
    }
    images->pointers.push_back(d.image.get());
  }
  return images;
}

void chat_on_text_lm(ServerState& state, Response& res, RouteContext& ctx, const ChatRequest& request,
                     Clock::time_point deadline) {
  TextSlots& slots = *state.models.text;
  const ChatPrompt chat = render_chat(request.messages, state.chat_template);
  const std::vector<int32_t> prompt = slots.tokenize(chat.text);
  if (static_cast<int64_t>(prompt.size()) >= slots.context_length()) {
    throw HttpError(400, "context_length_exceeded",
                    "the prompt has " + std::to_string(prompt.size()) + " tokens; the model's context holds " +
                        std::to_string(slots.context_length()));
  }
  auto sampling = std::make_shared<Sampling>(te_generate_default_params(), request.sampling, chat.stop,
                                             state.options.max_tokens);
  auto lease = std::make_shared<SlotPool::Lease>(slots.acquire(prompt, deadline));
  respond_chat(state, res, ctx, request, state.models.lm_id,
               [&slots, sampling, lease, prompt, deadline](const TextSink& on_text) {
                 GenerationOutcome o = slots.generate(*lease, prompt, sampling->params, on_text, deadline);
                 *lease = SlotPool::Lease();  // every copy of this closure shares the lease
                 return o;
               });
}

void chat_on_mm(ServerState& state, Response& res, RouteContext& ctx, ChatRequest& request,
                Clock::time_point deadline) {
  MmSlots& slots = *state.models.mm_slots;
  auto turns = std::make_shared<std::vector<MmTurnText>>(mm_turns(request.messages));
  std::vector<ImageInput> inputs;
  for (auto& m : request.messages) {
    for (auto& p : m.parts) {
      if (p.is_image) inputs.push_back(std::move(p.image));
    }
  }
  auto images = decode_all(state, std::move(inputs), deadline);
  auto sampling = std::make_shared<Sampling>(te_mm_default_generate_params(), request.sampling,
                                             std::vector<std::string>{}, state.options.max_tokens);
  auto lease = std::make_shared<SlotPool::Lease>(slots.acquire(deadline));
  respond_chat(state, res, ctx, request, state.models.mm_id,
               [&slots, turns, images, sampling, lease, deadline](const TextSink& on_text) {
                 std::vector<te_mm_turn> c;
                 for (const auto& t : *turns) c.push_back({t.question.c_str(), t.answer ? t.answer->c_str() : nullptr});
                 GenerationOutcome o = slots.chat(*lease, c, images->pointers, sampling->params, on_text, deadline);
                 *lease = SlotPool::Lease();
                 return o;
               });
}

json reasoning_json(const MmSlots::Reasoning& r, const std::string& model) {
  json scores = json::object();
  for (size_t i = 0; i < r.labels.size(); ++i) scores[r.labels[i]] = r.probabilities[i];
  return {{"object", "reason.result"},
          {"model", model},
          {"label", r.label},
          {"labels", r.labels},
          {"scores", scores},
          {"reasoning", r.reasoning},
          {"lm_label", r.lm_label},
          {"agreement", r.agreement},
          {"text", r.text},
          {"finish_reason", r.generation.finish_reason},
          {"usage", {{"completion_tokens", r.generation.completion_tokens}}},
          {"timings", {{"time_to_first_token_s", r.time_to_first_token_s}, {"total_s", r.total_s}}}};
}

}  // namespace

void handle_chat(ServerState& state, const Request& req, Response& res, RouteContext& ctx) {
  body_kind(req, /*multipart_ok=*/false);
  ChatRequest request = parse_chat_json(req.body, state.limits);
  require_ready(state);
  const LoadedModels& m = state.models;
  const bool images = request.image_count() > 0;
  if (images && !m.mm_slots) {
    throw HttpError(422, "no_vision_model",
                    "this server has no vision-language model for image_url parts (start it with --mm DIR); "
                    "/v1/classify labels images with the projector");
  }
  if (!m.text && !m.mm_slots) {
    throw HttpError(422, "no_language_model",
                    "this server has no language model for chat: start it with --lm DIR or --mm DIR");
  }
  const Clock::time_point deadline = state.deadline();
  // Images need the multimodal model; text goes to the text LM when there is one.
  if (images || !m.text) {
    chat_on_mm(state, res, ctx, request, deadline);
  } else {
    chat_on_text_lm(state, res, ctx, request, deadline);
  }
}

void handle_reason(ServerState& state, const Request& req, Response& res, RouteContext& ctx) {
  body_kind(req, /*multipart_ok=*/false);
  ReasonRequest request = parse_reason_json(req.body, state.limits);
  require_ready(state);
  if (!state.models.mm_slots) {
    throw HttpError(422, "no_reasoning_model",
                    "this server has no reasoning model: /v1/reason needs TinyEmo's multimodal model (start it with "
                    "--mm DIR); /v1/classify gives the projector's label");
  }
  MmSlots& slots = *state.models.mm_slots;
  const Clock::time_point deadline = state.deadline();
  std::vector<ImageInput> inputs;
  inputs.push_back(std::move(request.image));
  auto images = decode_all(state, std::move(inputs), deadline);
  auto sampling = std::make_shared<Sampling>(te_mm_default_generate_params(), request.sampling,
                                             std::vector<std::string>{}, state.options.max_tokens);
  auto lease = std::make_shared<SlotPool::Lease>(slots.acquire(deadline));
  const std::vector<std::string> labels = request.labels.value_or(std::vector<std::string>{});
  slots.set_labels(*lease, labels);  // a label set it cannot use is a 400 before any event
  const std::string model = state.models.mm_id;
  auto run = [&slots, images, sampling, lease, labels, deadline](const TextSink& on_text) {
    MmSlots::Reasoning r = slots.reason(*lease, images->pointers[0], labels, sampling->params, on_text, deadline);
    *lease = SlotPool::Lease();
    return r;
  };
  if (!request.stream) {
    const MmSlots::Reasoning r = run({});
    state.metrics.add_tokens(0, static_cast<uint64_t>(r.generation.completion_tokens));
    send_json(res, 200, reasoning_json(r, model));
    return;
  }
  // The explanation as it comes ({"object": "reason.delta", "delta": text}),
  // then the whole result: the projector's label and scores with it.
  stream_events(state, res, ctx, [&state, run, model](const auto& send) {
    bool alive = true;
    MmSlots::Reasoning r;
    try {
      r = run([&](std::string_view text) {
        return alive = send(json{{"object", "reason.delta"}, {"delta", text}});
      });
    } catch (const HttpError& e) {
      return alive && send(error_json(e.status, e.code, e.what()));
    }
    state.metrics.add_tokens(0, static_cast<uint64_t>(r.generation.completion_tokens));
    return alive && send(reasoning_json(r, model));
  });
}

}  // namespace tinyemo::server
