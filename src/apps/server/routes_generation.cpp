// POST /v1/chat/completions (OpenAI's schema, streamed as server-sent events
// with "stream": true) and POST /v1/reason (TinyEmo's label + explanation).
#include <ctime>
#include <random>

#include "routes.h"

namespace tinyemo::server {

using httplib::Request;
using httplib::Response;
using nlohmann::json;

namespace {

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

// A generation request ready for a slot: the prompt's tokens and the sampling
// parameters, with the stop strings it points to.
struct PreparedGeneration {
  std::vector<int32_t> prompt;
  std::vector<std::string> stop;
  te_generate_params params{};

  // params.stop points into `stop`: call after the last copy or move.
  te_generate_params finish() {
    te_generate_params p = params;
    stop_ptrs.clear();
    for (const auto& s : stop) stop_ptrs.push_back(s.c_str());
    p.stop = stop_ptrs.empty() ? nullptr : stop_ptrs.data();
    p.n_stop = stop_ptrs.size();
    return p;
  }
  std::vector<const char*> stop_ptrs;
};

PreparedGeneration prepare(ServerState& state, GenerationSlots& slots, const std::string& text,
                           std::vector<std::string> template_stop, const SamplingRequest& s, double default_temperature) {
  PreparedGeneration g;
  g.prompt = slots.tokenize(text);
  const int64_t n_ctx = slots.context_length();
  if (static_cast<int64_t>(g.prompt.size()) >= n_ctx) {
    throw HttpError(400, "context_length_exceeded",
                    "the prompt has " + std::to_string(g.prompt.size()) + " tokens; the model's context holds " +
                        std::to_string(n_ctx));
  }
  g.params = te_generate_default_params();
  g.params.temperature = static_cast<float>(s.temperature.value_or(default_temperature));
  g.params.top_p = static_cast<float>(s.top_p);
  g.params.max_new_tokens = static_cast<int32_t>(s.max_tokens > 0 ? s.max_tokens : state.options.max_tokens);
  g.params.seed = s.seed.value_or(random_seed());
  g.params.ignore_eos = s.ignore_eos;
  g.stop = std::move(template_stop);
  g.stop.insert(g.stop.end(), s.stop.begin(), s.stop.end());
  return g;
}

json usage_json(const GenerationOutcome& o) {
  return {{"prompt_tokens", o.prompt_tokens},
          {"completion_tokens", o.completion_tokens},
          {"total_tokens", o.prompt_tokens + o.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", o.cached_tokens}}}};
}

}  // namespace

void handle_chat(ServerState& state, const Request& req, Response& res, RouteContext& ctx) {
  body_kind(req, /*multipart_ok=*/false);
  const ChatRequest request = parse_chat_json(req.body, state.limits);
  require_ready(state);
  if (request.image_count() > 0) {
    throw HttpError(422, "no_vision_model",
                    "this server has no vision-language model for image_url parts (start it with --mm DIR); "
                    "/v1/classify labels images with the projector");
  }
  if (!state.models.slots) {
    throw HttpError(422, "no_language_model", "this server has no language model for chat: start it with --lm DIR");
  }
  GenerationSlots& slots = *state.models.slots;
  const Clock::time_point deadline = state.deadline();
  ChatPrompt chat = render_chat(request.messages, state.chat_template);
  auto g = std::make_shared<PreparedGeneration>(prepare(state, slots, chat.text, chat.stop, request.sampling, 1.0));
  auto lease = std::make_shared<GenerationSlots::Lease>(slots.acquire(g->prompt, deadline));
  const std::string id = random_id("chatcmpl-");
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  const std::string model = state.models.lm_id;

  if (!request.stream) {
    const GenerationOutcome o = slots.generate(*lease, g->prompt, g->finish(), {}, deadline);
    *lease = GenerationSlots::Lease();
    state.metrics.add_tokens(static_cast<uint64_t>(o.prompt_tokens - o.cached_tokens),
                             static_cast<uint64_t>(o.completion_tokens));
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

  // Streamed: chat.completion.chunk events, then "data: [DONE]". The slot is
  // given back as soon as generation ends, also when the client has gone.
  ctx.streaming = true;
  const bool include_usage = request.include_usage;
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [&state, &slots, g, lease, id, created, model, include_usage, deadline](size_t, httplib::DataSink& sink) mutable {
        const auto chunk = [&](const json& delta, const json& finish) {
          return json{{"id", id},
                      {"object", "chat.completion.chunk"},
                      {"created", created},
                      {"model", model},
                      {"choices", {{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}}}};
        };
        const auto send = [&](const json& event) {
          const std::string s = "data: " + dump_json(event) + "\n\n";
          return sink.write(s.data(), s.size());
        };
        bool alive = send(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
        GenerationOutcome o;
        if (alive) {
          try {
            o = slots.generate(
                *lease, g->prompt, g->finish(),
                [&](std::string_view text) { return alive = send(chunk({{"content", text}}, nullptr)); }, deadline);
          } catch (const HttpError& e) {
            alive = send(error_json(e.status, e.code, e.what()));
          }
        }
        *lease = GenerationSlots::Lease();  // every copy of this provider shares the lease
        state.metrics.add_tokens(static_cast<uint64_t>(o.prompt_tokens - o.cached_tokens),
                                 static_cast<uint64_t>(o.completion_tokens));
        if (alive && !o.finish_reason.empty()) alive = send(chunk(json::object(), o.finish_reason));
        if (alive && include_usage) {
          alive = send({{"id", id},
                        {"object", "chat.completion.chunk"},
                        {"created", created},
                        {"model", model},
                        {"choices", json::array()},
                        {"usage", usage_json(o)}});
        }
        if (alive) {
          static const std::string done = "data: [DONE]\n\n";
          alive = sink.write(done.data(), done.size());
        }
        if (alive) sink.done();
        return alive;
      },
      [&state, ctx](bool) { record_request(state, ctx, 200); });
}

void handle_reason(ServerState& state, const Request& req, Response& res, RouteContext& ctx) {
  body_kind(req, /*multipart_ok=*/false);
  const ReasonRequest request = parse_reason_json(req.body, state.limits);
  require_ready(state);
  // TinyEmo's reasoning model (TinyLLaVA + the projector) comes with the C
  // API's multimodal entry points (issue 17); until then there is none to load.
  throw HttpError(422, "no_reasoning_model",
                  "this server has no reasoning model: /v1/reason needs TinyEmo's multimodal model "
                  "(--mm DIR, not yet available in this build); /v1/classify gives the projector's label");
}

}  // namespace tinyemo::server
