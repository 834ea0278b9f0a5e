#include "routes.h"

#include <algorithm>
#include <map>
#include <vector>

#include "static_assets.h"

namespace tinyemo::server {

using httplib::Request;
using httplib::Response;
using nlohmann::json;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Constant-time comparison: the time taken does not tell how much of a key matched.
bool same_key(const std::string& given, const std::string& key) {
  unsigned char diff = given.size() == key.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i % key.size()]);
  return diff == 0;
}

// The routes and the method each answers; other methods get 405.
const std::map<std::string, std::string>& api_routes() {
  static const std::map<std::string, std::string> routes = {
      {"/health", "GET"},          {"/v1/models", "GET"},       {"/metrics", "GET"},
      {"/v1/classify", "POST"},    {"/v1/embeddings", "POST"},  {"/v1/chat/completions", "POST"},
      {"/v1/reason", "POST"},
  };
  return routes;
}

// Routes that never need the key: the health check and the page itself (its
// API calls carry the key the user types in).
bool is_public(const Request& req) {
  if (req.path == "/health") return true;
  return (req.method == "GET" || req.method == "HEAD") && find_static_asset(req.path) != nullptr;
}

// What the metrics call a request: its route, or "other" (bounded label values).
std::string route_name(const std::string& path) {
  if (api_routes().count(path) > 0) return path;
  return find_static_asset(path) != nullptr ? "/" : "other";
}

std::string escape_regex(const std::string& path) {
  std::string out;
  for (const char c : path) {
    if (std::string_view(".^$|()[]{}*+?\\").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// Runs a route's body: exceptions become JSON errors, and the request is
// counted when it is answered (a streamed answer counts itself when it ends).
template <class Body>
void run_route(ServerState& state, const std::string& route, Response& res, Body&& body) {
  RouteContext ctx{Clock::now(), false, route};
  try {
    body(ctx);
  } catch (const HttpError& e) {
    ctx.streaming = false;
    send_error(res, e);
  } catch (const te::Error& e) {
    ctx.streaming = false;
    send_error(res, HttpError(e.status() == TE_ERROR_OUT_OF_MEMORY ? 503 : 500, "internal_error", e.what()));
  } catch (const std::bad_alloc&) {
    ctx.streaming = false;
    send_error(res, HttpError(503, "out_of_memory", "the server ran out of memory for this request", 1));
  } catch (const std::exception& e) {
    ctx.streaming = false;
    send_error(res, HttpError(500, "internal_error", e.what()));
  }
  if (!ctx.streaming) record_request(state, ctx, res.status);
}

json models_json(const ServerState& state) {
  const LoadedModels& m = state.models;
  json data = json::array();
  data.push_back({{"id", m.clip_id},
                  {"object", "model"},
                  {"created", 0},
                  {"owned_by", "tinyemo"},
                  {"kind", "clip"},
                  {"description", te_clip_description(m.clip.get())},
                  {"embedding_dim", te_clip_embedding_dim(m.clip.get())},
                  {"image_size", te_clip_image_size(m.clip.get())},
                  {"modalities", {{"input", {"image"}}, {"output", {"embedding"}}}}});
  data.push_back({{"id", m.projector_id},
                  {"object", "model"},
                  {"created", 0},
                  {"owned_by", "tinyemo"},
                  {"kind", "projector"},
                  {"labels", m.label_sets->model_set()->labels},
                  {"open_vocabulary", m.label_sets->open_vocabulary()},
                  {"modalities", {{"input", {"image"}}, {"output", {"label"}}}}});
  if (m.lm) {
    data.push_back({{"id", m.lm_id},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "tinyemo"},
                    {"kind", "lm"},
                    {"architecture", te_lm_architecture(m.lm.get())},
                    {"context_length", te_lm_n_ctx(m.lm.get())},
                    {"chat_template", chat_template_name(state.chat_template)},
                    {"parallel", m.text->pool().size()},
                    {"modalities", {{"input", {"text"}}, {"output", {"text"}}}}});
  }
  if (m.mm) {
    data.push_back({{"id", m.mm_id},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "tinyemo"},
                    {"kind", "mm"},
                    {"description", te_mm_description(m.mm.get())},
                    {"conversation", te_mm_conversation(m.mm.get())},
                    {"parallel", m.mm_slots->pool().size()},
                    {"modalities", {{"input", {"text", "image"}}, {"output", {"text", "label"}}}}});
  }
  if (m.clip_text) {
    data.push_back({{"id", m.clip_text_id},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "tinyemo"},
                    {"kind", "clip_text"},
                    {"description", te_clip_text_description(m.clip_text.get())},
                    {"embedding_dim", te_clip_text_embedding_dim(m.clip_text.get())},
                    {"context_length", te_clip_text_context_length(m.clip_text.get())},
                    {"modalities", {{"input", {"text"}}, {"output", {"embedding"}}}}});
  }
  if (m.anchors_lm) {
    data.push_back({{"id", m.anchors_lm_id},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", "tinyemo"},
                    {"kind", "anchors_lm"},
                    {"modalities", {{"input", {"text"}}, {"output", {"label anchor"}}}}});
  }
  return {{"object", "list"},
          {"data", data},
          {"capabilities",
           {{"classify", true},
            {"embeddings", true},
            {"text_embeddings", m.clip_text != nullptr},
            {"chat", m.text != nullptr || m.mm_slots != nullptr},
            {"vision_chat", m.mm_slots != nullptr},
            {"reason", m.mm_slots != nullptr},
            {"open_vocabulary", m.label_sets->open_vocabulary()}}}};
}

}  // namespace

std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void send_error(Response& res, const HttpError& e) {
  send_json(res, e.status, error_json(e.status, e.code, e.what()));
  if (e.retry_after_s > 0) res.set_header("Retry-After", std::to_string(e.retry_after_s));
  if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
}

BodyKind body_kind(const Request& req, bool multipart_ok) {
  const std::string type = lower(req.get_header_value("Content-Type"));
  std::string base = type.substr(0, type.find(';'));
  base.erase(std::remove_if(base.begin(), base.end(), [](unsigned char c) { return std::isspace(c); }), base.end());
  const bool json_type = base.empty() || base == "application/json" ||
                         (base.rfind("application/", 0) == 0 && base.size() > 5 &&
                          base.compare(base.size() - 5, 5, "+json") == 0);
  if (json_type) return BodyKind::Json;
  if (multipart_ok && base == "multipart/form-data") return BodyKind::Multipart;
  throw HttpError(415, "unsupported_media_type",
                  "Content-Type \"" + base + "\" is not accepted here: send application/json" +
                      (multipart_ok ? " or multipart/form-data" : "") +
                      (base == "application/x-www-form-urlencoded" ? " (curl -d needs -H 'Content-Type: application/json')"
                                                                   : ""));
}

void require_ready(const ServerState& state) {
  if (!state.ready.load()) throw HttpError(503, "loading", "the models are still loading; retry shortly", 2);
}

void record_request(ServerState& state, const RouteContext& ctx, int status) {
  state.metrics.observe_request(ctx.route, status, seconds_since(ctx.start));
}

void register_routes(httplib::Server& server, ServerState& state) {
  std::vector<std::string> known;
  for (const auto& [path, method] : api_routes()) known.push_back(path);
  known.push_back("/");
  state.metrics.set_known_routes(known);

  // Authentication comes before the body is read.
  server.set_pre_routing_handler([&state](const Request& req, Response& res) {
    if (state.options.api_key.empty() || is_public(req)) return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.size() > prefix.size() && lower(auth.substr(0, prefix.size())) == "bearer " &&
        same_key(auth.substr(prefix.size()), state.options.api_key)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    send_error(res, HttpError(401, auth.empty() ? "missing_api_key" : "invalid_api_key",
                              auth.empty() ? "this server needs an API key: send \"Authorization: Bearer KEY\""
                                           : "the API key is not valid"));
    record_request(state, {Clock::now(), false, route_name(req.path)}, 401);
    return httplib::Server::HandlerResponse::Handled;
  });

  // What httplib answers by itself (no route, a body over --max-body-mb, a
  // malformed request line) gets the same JSON errors as the routes.
  server.set_error_handler(httplib::Server::HandlerWithResponse([&state](const Request& req, Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // a route's own error
    const int status = res.status;
    if (status == 404) {
      send_error(res, HttpError(404, "not_found", "no route " + req.method + " " + req.path));
    } else if (status == 413) {
      // httplib caps url-encoded forms far below --max-body-mb: that is curl -d without a JSON type.
      const bool form = lower(req.get_header_value("Content-Type")).rfind("application/x-www-form-urlencoded", 0) == 0;
      if (form) {
        send_error(res, HttpError(415, "unsupported_media_type",
                                  "application/x-www-form-urlencoded is not accepted: send application/json "
                                  "(curl -d needs -H 'Content-Type: application/json')"));
      } else {
        send_error(res, HttpError(413, "body_too_large",
                                  "the request body is larger than " + std::to_string(state.options.max_body_mb) +
                                      " MB (--max-body-mb)"));
      }
    } else {
      send_error(res, HttpError(status, "http_error", "the request could not be read (HTTP " + std::to_string(status) + ")"));
    }
    record_request(state, {Clock::now(), false, route_name(req.path)}, res.status);
    return httplib::Server::HandlerResponse::Handled;
  }));

  server.set_exception_handler([&state](const Request& req, Response& res, std::exception_ptr) {
    send_error(res, HttpError(500, "internal_error", "the request failed inside the server"));
    record_request(state, {Clock::now(), false, route_name(req.path)}, 500);
  });

  // Other methods on a known route: 405 with the one it answers.
  for (const auto& [path, method] : api_routes()) {
    const std::string allowed = method;
    const auto not_allowed = [&state, path = path, allowed](const Request& req, Response& res) {
      run_route(state, path, res, [&](RouteContext&) {
        res.set_header("Allow", allowed);
        throw HttpError(405, "method_not_allowed", req.method + " " + path + ": this route answers " + allowed);
      });
    };
    const std::string pattern = escape_regex(path);
    if (method != "GET") server.Get(pattern, not_allowed);
    if (method != "POST") server.Post(pattern, not_allowed);
    server.Put(pattern, not_allowed);
    server.Patch(pattern, not_allowed);
    server.Delete(pattern, not_allowed);
    server.Options(pattern, not_allowed);
  }

  server.Get("/health", [&state](const Request&, Response& res) {
    run_route(state, "/health", res, [&](RouteContext&) {
      if (state.ready.load()) {
        send_json(res, 200, {{"status", "ok"}});
      } else {
        send_json(res, 503, {{"status", "loading"}});
        res.set_header("Retry-After", "2");
      }
    });
  });

  server.Get("/v1/models", [&state](const Request&, Response& res) {
    run_route(state, "/v1/models", res, [&](RouteContext&) {
      require_ready(state);
      send_json(res, 200, models_json(state));
    });
  });

  server.Get("/metrics", [&state](const Request&, Response& res) {
    run_route(state, "/metrics", res, [&](RouteContext&) {
      if (!state.options.metrics) throw HttpError(404, "not_found", "metrics are off: start the server with --metrics");
      res.status = 200;
      res.set_content(state.metrics.render(state.gauges()), "text/plain; version=0.0.4; charset=utf-8");
    });
  });

  server.Post("/v1/classify", [&state](const Request& req, Response& res, const httplib::ContentReader& reader) {
    run_route(state, "/v1/classify", res, [&](RouteContext&) { handle_classify(state, req, res, reader); });
  });
  server.Post("/v1/embeddings", [&state](const Request& req, Response& res) {
    run_route(state, "/v1/embeddings", res, [&](RouteContext&) { handle_embeddings(state, req, res); });
  });
  server.Post("/v1/chat/completions", [&state](const Request& req, Response& res) {
    run_route(state, "/v1/chat/completions", res, [&](RouteContext& ctx) { handle_chat(state, req, res, ctx); });
  });
  server.Post("/v1/reason", [&state](const Request& req, Response& res) {
    run_route(state, "/v1/reason", res, [&](RouteContext& ctx) { handle_reason(state, req, res, ctx); });
  });

  // The web page: files compiled into the binary.
  for (size_t i = 0; i < kStaticAssetCount; ++i) {
    const StaticAsset& asset = kStaticAssets[i];
    const auto serve = [&state, &asset](const Request&, Response& res) {
      run_route(state, "/", res, [&](RouteContext&) {
        res.status = 200;
        res.set_content(asset.body.data(), asset.body.size(), asset.content_type);
        res.set_header("Cache-Control", "no-cache");
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_header("Content-Security-Policy",
                       "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'");
      });
    };
    server.Get(escape_regex(asset.path), serve);
    if (std::string_view(asset.path) == "/index.html") server.Get("/", serve);
  }
}

}  // namespace tinyemo::server
