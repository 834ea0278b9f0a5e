// The HTTP routes. routes.cpp registers them all on an httplib::Server with
// the pieces every route shares (authentication, JSON errors, 404/405,
// metrics); routes_vision.cpp holds /v1/classify and /v1/embeddings,
// routes_generation.cpp /v1/chat/completions and /v1/reason.
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "http_error.h"
#include "server_state.h"

namespace tinyemo::server {

void register_routes(httplib::Server& server, ServerState& state);

// ---- shared by the route files

// JSON out, with invalid UTF-8 (from a label, say) replaced rather than thrown on.
std::string dump_json(const nlohmann::json& j);
void send_json(httplib::Response& res, int status, const nlohmann::json& body);
void send_error(httplib::Response& res, const HttpError& e);

// A route's body as the server accepts it: JSON (application/json or none
// given), or multipart/form-data where `multipart_ok`. Else HttpError 415.
enum class BodyKind { Json, Multipart };
BodyKind body_kind(const httplib::Request& req, bool multipart_ok);

// 503 "loading" (with Retry-After) until the models are in.
void require_ready(const ServerState& state);

// Per request: when it started (for its latency) and whether its response
// streams (then the stream's end records it, not the handler's return).
struct RouteContext {
  std::chrono::steady_clock::time_point start;
  bool streaming = false;
  std::string route;
};
// Records a finished request in the metrics.
void record_request(ServerState& state, const RouteContext& ctx, int status);

void handle_classify(ServerState& state, const httplib::Request& req, httplib::Response& res,
                     const httplib::ContentReader& reader);
void handle_embeddings(ServerState& state, const httplib::Request& req, httplib::Response& res);
void handle_chat(ServerState& state, const httplib::Request& req, httplib::Response& res, RouteContext& ctx);
void handle_reason(ServerState& state, const httplib::Request& req, httplib::Response& res, RouteContext& ctx);

}  // namespace tinyemo::server
