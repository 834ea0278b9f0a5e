// A teacher model behind any OpenAI-compatible chat-completions endpoint
// (a local vision LLM server, `tinyemo serve`, a hosted API): one user turn
// with the prompt and the image as a data URI, the reply's text back, and
// every way it can fail classified for the retry policy.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace tinyemo::data {

struct TeacherConfig {
  std::string base_url;   // e.g. http://127.0.0.1:8080/v1; "/chat/completions" is appended
  std::string model;      // the request's "model"
  std::string api_key;    // sent as "Authorization: Bearer <key>" when not empty
  double timeout_s = 120.0;  // connect, and each read/write of the request
  int64_t max_tokens = 512;
  double temperature = 0.7;
};

enum class TeacherStatus {
  Ok,
  Timeout,      // connect or read timed out
  Connection,   // refused, reset, DNS... (retried)
  RateLimited,  // HTTP 429 (retried; Retry-After honoured)
  ServerError,  // HTTP 5xx (retried; Retry-After honoured)
  Malformed,    // 200 without a usable JSON body (retried)
  ClientError,  // other HTTP 4xx: the request itself is refused (not retried)
  Fatal,        // HTTP 401/403/404: key, model or URL wrong (the run stops)
};
const char* teacher_status_name(TeacherStatus s);

struct TeacherReply {
  TeacherStatus status = TeacherStatus::Ok;
  int http_status = 0;
  std::string content;                 // the reply's text (Ok)
  std::optional<double> retry_after_s;  // a Retry-After header (delta-seconds or HTTP date)
  std::string detail;                   // what went wrong, for the summary and logs
};

// Retry-After's value in seconds from `now` (seconds since the epoch): a
// non-negative number of seconds, or an IMF-fixdate; nullopt otherwise.
std::optional<double> parse_retry_after(const std::string& value, double now);

// The image file as a data URI ("data:image/jpeg;base64,..."), its type
// sniffed from the bytes (JPEG, PNG, WebP); other files and files over
// `max_bytes` are refused naming the path.
std::string image_data_uri(const std::filesystem::path& image, int64_t max_bytes);

std::string base64_encode(std::string_view bytes);

class TeacherClient {
 public:
  // Checks the URL (http:// or https://, a host) and nothing else.
  explicit TeacherClient(TeacherConfig config);
  const TeacherConfig& config() const { return config_; }
  // One chat-completions request; never throws for network or server trouble.
  TeacherReply chat(const std::string& prompt, const std::string& image_data_uri) const;

 private:
  TeacherConfig config_;
  std::string scheme_host_port_, path_;
};

}  // namespace tinyemo::data
