// fuzz-link: tinyemo_server
// Whole HTTP requests through the server's routes without a socket: the input
// is what a client sends (request line, headers, body: JSON, multipart,
// chunked), fed to httplib's request processing over an in-memory stream with
// the server's handlers registered and no model loaded (a request that parses
// gets 503 "loading"). Every response must be a status httplib can write with
// a JSON error body for 4xx/5xx; nothing may crash or read out of bounds.
#include <httplib.h>

#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "routes.h"
#include "server_state.h"

using namespace tinyemo::server;

namespace {

class MemoryStream : public httplib::Stream {
 public:
  MemoryStream(const char* data, size_t size) : data_(data), size_(size) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, size_ - at_);
    std::copy(data_ + at_, data_ + at_ + n, ptr);
    at_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8080;
  }
  socket_t socket() const override { return INVALID_SOCKET; }
  std::string out;

 private:
  const char* data_;
  size_t size_, at_ = 0;
};

// process_request is protected: the server's own request loop, minus the socket.
class OfflineServer : public httplib::Server {
 public:
  bool handle(httplib::Stream& stream) {
    bool closed = false;
    return process_request(stream, true, closed, [](httplib::Request&) {});
  }
};

struct Fixture {
  Fixture() : state(options()) {
    http.set_payload_max_length(1 << 20);
    register_routes(http, state);
  }
  static ServerOptions options() {
    ServerOptions o;
    o.max_body_mb = 1;
    o.max_images = 8;
    o.api_key = "";
    return o;
  }
  ServerState state;
  OfflineServer http;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = new Fixture();
  MemoryStream stream(reinterpret_cast<const char*>(data), size);
  f->http.handle(stream);
  // A response, when one was written, has a status line; errors carry JSON.
  if (stream.out.empty()) return 0;
  if (stream.out.rfind("HTTP/1.1 ", 0) != 0) std::abort();
  const int status = std::atoi(stream.out.c_str() + 9);
  if (status < 100 || status > 599) std::abort();
  const size_t body = stream.out.find("\r\n\r\n");
  if (status >= 400 && body != std::string::npos && stream.out.find("Content-Type: application/json") != std::string::npos) {
    const auto j = nlohmann::json::parse(stream.out.substr(body + 4), nullptr, false);
    // /health's 503 while loading is {"status": "loading"}; every other error is {"error": {"code", ...}}.
    const bool health = j.is_object() && j.contains("status") && status == 503;
    if (!j.is_discarded() && !health && !(j.contains("error") && j["error"].contains("code"))) std::abort();
  }
  return 0;
}
