#include "data/teacher.h"

#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/file.h"

namespace tinyemo::data {

namespace {

std::string mime_of(std::string_view b) {
  if (b.size() >= 3 && static_cast<uint8_t>(b[0]) == 0xFF && static_cast<uint8_t>(b[1]) == 0xD8 &&
      static_cast<uint8_t>(b[2]) == 0xFF) {
    return "image/jpeg";
  }
  if (b.size() >= 8 && b.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8)) return "image/png";
  if (b.size() >= 12 && b.substr(0, 4) == "RIFF" && b.substr(8, 4) == "WEBP") return "image/webp";
  return "";
}

std::string truncated(std::string s, size_t n = 200) {
  if (s.size() > n) s = s.substr(0, n) + "...";
  return s;
}

}  // namespace

const char* teacher_status_name(TeacherStatus s) {
  switch (s) {
    case TeacherStatus::Ok: return "ok";
    case TeacherStatus::Timeout: return "timeout";
    case TeacherStatus::Connection: return "connection error";
    case TeacherStatus::RateLimited: return "HTTP 429";
    case TeacherStatus::ServerError: return "HTTP 5xx";
    case TeacherStatus::Malformed: return "malformed reply";
    case TeacherStatus::ClientError: return "HTTP 4xx";
    case TeacherStatus::Fatal: return "fatal";
  }
  return "?";
}

std::string base64_encode(std::string_view bytes) {
  static const char* const kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(bytes[i]) << 16) | (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string image_data_uri(const std::filesystem::path& image, int64_t max_bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(image, ec);
  TE_CHECK(!ec, "{}: cannot read: {}", image.string(), ec.message());
  TE_CHECK(static_cast<int64_t>(size) <= max_bytes, "{}: {} bytes, over the {}-byte limit for a request",
           image.string(), size, max_bytes);
  const std::string bytes = read_file(image);
  const std::string mime = mime_of(bytes);
  TE_CHECK(!mime.empty(), "{}: not a JPEG, PNG or WebP file", image.string());
  return "data:" + mime + ";base64," + base64_encode(bytes);
}

std::optional<double> parse_retry_after(const std::string& raw, double now) {
  const size_t first = raw.find_first_not_of(" \t");
  if (first == std::string::npos) return std::nullopt;
  const std::string v = raw.substr(first, raw.find_last_not_of(" \t") + 1 - first);
  if (std::all_of(v.begin(), v.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; })) {
    try {
      const double s = std::stod(v);
      return std::isfinite(s) && s >= 0.0 ? std::optional<double>(s) : std::nullopt;
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
  std::tm tm{};
  const char* end = strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const double when = static_cast<double>(timegm(&tm));
  return std::max(0.0, when - now);
}

TeacherClient::TeacherClient(TeacherConfig config) : config_(std::move(config)) {
  const std::string& url = config_.base_url;
  const size_t scheme_end = url.find("://");
  TE_CHECK(scheme_end != std::string::npos && (url.substr(0, scheme_end) == "http" || url.substr(0, scheme_end) == "https"),
           "--teacher \"{}\": expected an http:// or https:// base URL such as http://127.0.0.1:8080/v1", url);
  const size_t path_start = url.find('/', scheme_end + 3);
  scheme_host_port_ = url.substr(0, path_start);
  TE_CHECK(scheme_host_port_.size() > scheme_end + 3, "--teacher \"{}\": no host", url);
  std::string base = path_start == std::string::npos ? "" : url.substr(path_start);
  while (!base.empty() && base.back() == '/') base.pop_back();
  path_ = base + "/chat/completions";
  TE_CHECK(!config_.model.empty(), "--teacher-model: empty");
  TE_CHECK(config_.timeout_s > 0.0, "--timeout-s must be positive");
}

TeacherReply TeacherClient::chat(const std::string& prompt, const std::string& data_uri) const {
  TeacherReply reply;
  httplib::Client client(scheme_host_port_);
  const auto seconds = static_cast<time_t>(config_.timeout_s);
  const auto micros = static_cast<time_t>((config_.timeout_s - static_cast<double>(seconds)) * 1e6);
  client.set_connection_timeout(seconds, micros);
  client.set_read_timeout(seconds, micros);
  client.set_write_timeout(seconds, micros);
  httplib::Headers headers;
  if (!config_.api_key.empty()) headers.emplace("Authorization", "Bearer " + config_.api_key);
  const nlohmann::json body = {
      {"model", config_.model},
      {"max_tokens", config_.max_tokens},
      {"temperature", config_.temperature},
      {"messages",
       {{{"role", "user"},
         {"content",
          {{{"type", "text"}, {"text", prompt}}, {{"type", "image_url"}, {"image_url", {{"url", data_uri}}}}}}}}}};
  const httplib::Result res = client.Post(path_, headers, body.dump(), "application/json");
  if (!res) {
    const httplib::Error e = res.error();
    reply.status = e == httplib::Error::Read || e == httplib::Error::ConnectionTimeout ? TeacherStatus::Timeout
                                                                                         : TeacherStatus::Connection;
    reply.detail = httplib::to_string(e);
    return reply;
  }
  reply.http_status = res->status;
  if (res->has_header("Retry-After")) {
    reply.retry_after_s = parse_retry_after(res->get_header_value("Retry-After"), static_cast<double>(std::time(nullptr)));
  }
  if (res->status == 429) {
    reply.status = TeacherStatus::RateLimited;
  } else if (res->status >= 500) {
    reply.status = TeacherStatus::ServerError;
  } else if (res->status == 401 || res->status == 403 || res->status == 404) {
    reply.status = TeacherStatus::Fatal;
  } else if (res->status >= 400) {
    reply.status = TeacherStatus::ClientError;
  } else if (res->status < 200 || res->status >= 300) {
    reply.status = TeacherStatus::Malformed;
  }
  if (reply.status != TeacherStatus::Ok) {
    reply.detail = fmt::format("HTTP {}: {}", res->status, truncated(res->body));
    return reply;
  }
  // choices[0].message.content: a string, or a list of {type: text, text} parts.
  try {
    const nlohmann::json j = nlohmann::json::parse(res->body);
    const nlohmann::json& content = j.at("choices").at(0).at("message").at("content");
    if (content.is_string()) {
      reply.content = content.get<std::string>();
    } else {
      for (const auto& part : content) {
        if (part.value("type", "") == "text") reply.content += part.at("text").get<std::string>();
      }
    }
  } catch (const std::exception& e) {
    reply.status = TeacherStatus::Malformed;
    reply.detail = fmt::format("no choices[0].message.content in the reply ({}): {}", e.what(), truncated(res->body));
    return reply;
  }
  if (reply.content.empty()) {
    reply.status = TeacherStatus::Malformed;
    reply.detail = "empty reply text";
  }
  return reply;
}

}  // namespace tinyemo::data
