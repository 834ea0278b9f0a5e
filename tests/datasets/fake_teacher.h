// A teacher the tests control: an OpenAI-compatible chat-completions endpoint
// on loopback (cpp-httplib's server in a thread). Each request is recorded
// with its arrival time and the id of the image it carries (the image bytes
// after the JPEG magic, see write_fake_image); the handler decides the reply.
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "data/teacher.h"
#include "io/file.h"

namespace tinyemo::testing {

// A file the generator accepts as a JPEG (magic bytes) whose content names `id`.
inline void write_fake_image(const std::filesystem::path& path, const std::string& id) {
  write_file_atomic(path, std::string("\xFF\xD8\xFF", 3) + id);
}

inline std::string base64_decode(const std::string& s) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : s) {
    if (c == '=') break;
    const size_t v = alphabet.find(c);
    if (v == std::string::npos) continue;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

inline std::string chat_reply(const std::string& text) {
  return nlohmann::json{{"id", "x"}, {"object", "chat.completion"},
                        {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}}}}}}
      .dump();
}

struct TeacherRequest {
  nlohmann::json body;
  std::string image_id;  // from the data URI
  std::string authorization;
  double at = 0.0;       // seconds since the server started
};

class FakeTeacher {
 public:
  // handler(request, n): n = how many requests carried this image before (0 first).
  using Handler = std::function<void(const TeacherRequest&, int n, httplib::Response&)>;

  explicit FakeTeacher(Handler handler) : handler_(std::move(handler)), start_(std::chrono::steady_clock::now()) {
    server_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      TeacherRequest r;
      r.at = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      r.authorization = req.get_header_value("Authorization");
      int n = 0;
      try {
        r.body = nlohmann::json::parse(req.body);
        const std::string url = r.body.at("messages").at(0).at("content").at(1).at("image_url").at("url");
        r.image_id = base64_decode(url.substr(url.find(',') + 1)).substr(3);
      } catch (const std::exception&) {
        res.status = 400;
        return;
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const auto& old : requests_) n += old.image_id == r.image_id;
        requests_.push_back(r);
        ++in_flight_;
        max_in_flight_ = std::max(max_in_flight_, in_flight_);
      }
      handler_(r, n, res);
      std::lock_guard<std::mutex> lock(mutex_);
      --in_flight_;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeTeacher() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::vector<TeacherRequest> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  int max_in_flight() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return max_in_flight_;
  }

 private:
  Handler handler_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mutex_;
  std::vector<TeacherRequest> requests_;
  int in_flight_ = 0, max_in_flight_ = 0;
};

}  // namespace tinyemo::testing
