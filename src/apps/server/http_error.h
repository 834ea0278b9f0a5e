// The server's error responses: every failure a request can cause becomes an
// HttpError (status, OpenAI-style type and code, a message naming the field)
// that the routes turn into {"error": {"message", "type", "code"}}.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace tinyemo::server {

struct HttpError : std::runtime_error {
  HttpError(int status, std::string code, const std::string& message, int retry_after_s = 0)
      : std::runtime_error(message), status(status), code(std::move(code)), retry_after_s(retry_after_s) {}
  int status;
  std::string code;       // machine-readable: "invalid_json", "queue_full", ...
  int retry_after_s = 0;  // > 0: sent as Retry-After (503)
};

// The OpenAI "type" of a status: invalid_request_error, authentication_error, ...
inline const char* error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 405: return "method_not_allowed_error";
    case 413: return "request_too_large_error";
    case 415: return "unsupported_media_type_error";
    case 422: return "unprocessable_error";
    case 503: return "unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

inline nlohmann::json error_json(int status, const std::string& code, const std::string& message) {
  return {{"error", {{"message", message}, {"type", error_type(status)}, {"code", code}}}};
}

// Shorthands for the common statuses.
inline HttpError bad_request(const std::string& message, const std::string& code = "invalid_request") {
  return HttpError(400, code, message);
}

}  // namespace tinyemo::server
