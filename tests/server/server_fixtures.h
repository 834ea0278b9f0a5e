// What the server tests and bench/server_load_bench.cpp share: the fixtures a
// server needs (CLIP, projectors written here, llama-tiny with a SentencePiece
// tokenizer trained here, the images), and a `tinyemo serve` process on a
// loopback port of its own choosing, stopped by SIGTERM when done. Failures
// throw std::runtime_error (no test framework needed).
#pragma once

#include <httplib.h>
#include <sentencepiece_trainer.h>
#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "io/file.h"
#include "models/projector/model.h"
#include "testing/testing.h"
#include "tinyemo.hpp"

extern char** environ;

namespace tinyemo::server_test {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::fixture;

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A projector for clip-vision-small (48-d, or `input_dim`) with output width `hidden` and
// these labels; `anchors` (labels x hidden) or deterministic ones.
inline void write_projector(const fs::path& path, int64_t hidden, const std::vector<std::string>& labels,
                            std::vector<float> anchors = {}, int64_t input_dim = 48) {
  projector::ProjectorConfig config;
  config.dims = {input_dim, hidden};
  projector::ProjectorModel model(config, labels);
  projector::MlpWeights w(model.layout());
  for (size_t i = 0; i < w.params.size(); ++i) w.params[i] = 0.3f * std::sin(0.7f * static_cast<float>(i) + 0.1f);
  model.set_members({w});
  if (anchors.empty()) {
    anchors.resize(labels.size() * static_cast<size_t>(hidden));
    for (size_t i = 0; i < anchors.size(); ++i) anchors[i] = std::cos(1.3f * static_cast<float>(i));
  }
  model.set_anchors(labels, anchors);
  model.save(path);
}

// Built once per test binary: the fixtures every server test uses.
struct Workspace {
  testing::TempDir dir;
  fs::path clip = fixture("clip-vision-small");
  fs::path projector;     // 48 -> 16, anger / joy / fear
  fs::path lm;            // llama-tiny with tokenizer.model beside its weights
  fs::path projector_lm;  // 48 -> 64 with llama-tiny's label anchors (open vocabulary)
  fs::path images;        // rocket.jpg, chelsea.png, camera.png, coffee.png

  static const Workspace& get() {
    static const Workspace w;
    return w;
  }

 private:
  Workspace() {
    projector = dir / "projector.safetensors";
    write_projector(projector, 16, {"anger", "joy", "fear"});
    images = dir / "images";
    fs::create_directories(images);
    for (const char* f : {"rocket.jpg", "chelsea.png", "camera.png", "coffee.png"}) {
      fs::copy_file(fixture(std::string("clip-preprocess/") + f), images / f);
    }
    // llama-tiny has 320 tokens: a byte-fallback BPE of as many, beside the weights.
    lm = dir / "llama-tiny";
    fs::create_directories(lm);
    for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(fixture(std::string("llama-tiny/") + f), lm / f);
    const auto corpus = testing::source_dir() / "tests/data/tokenizers/spm_corpus.txt";
    std::string serialized;
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + corpus.string() +
            " --model_type=bpe --vocab_size=320 --byte_fallback=true --character_coverage=0.98 --num_threads=1"
            " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --minloglevel=2",
        nullptr, &serialized);
    if (!status.ok()) throw std::runtime_error("spm_train: " + status.ToString());
    write_file_atomic(lm / "tokenizer.model", serialized);
    // The open-vocabulary projector: its anchors are the LM's, so new labels
    // anchored by the same LM live in its space.
    te::Lm model = te::Lm::load(lm.string());
    const std::vector<std::string> labels = {"anger", "joy", "fear"};
    projector_lm = dir / "projector-lm.safetensors";
    write_projector(projector_lm, model.n_embd(), labels, model.label_anchors(labels));
  }
};

// tinyllava-tiny with the LM tokenizer trained by Workspace beside it (the
// multimodal model of --mm).
inline const fs::path& tinyllava_dir() {
  static const fs::path dir = [] {
    const fs::path d = Workspace::get().dir / "tinyllava";
    fs::create_directories(d);
    for (const char* f : {"config.json", "model.safetensors"}) {
      fs::copy_file(fixture(std::string("tinyllava-tiny/") + f), d / f, fs::copy_options::overwrite_existing);
    }
    fs::copy_file(Workspace::get().lm / "tokenizer.model", d / "tokenizer.model", fs::copy_options::overwrite_existing);
    return d;
  }();
  return dir;
}

inline int64_t rss_kb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// `tinyemo serve --host 127.0.0.1 --port 0 ARGS...`, its standard error in a
// file; the port is read from its "listening on" line.
class ServerProcess {
 public:
  explicit ServerProcess(const std::vector<std::string>& args) {
    log_ = dir_ / "server.log";
    std::vector<std::string> argv = {TINYEMO_CLI_PATH, "serve", "--host", "127.0.0.1", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> c;
    for (auto& a : argv) c.push_back(a.data());
    c.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int rc = posix_spawn(&pid_, c[0], &actions, nullptr, c.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error(std::string("cannot start ") + TINYEMO_CLI_PATH);
    }
    // The port, from "listening on http://127.0.0.1:PORT" (within 30 s).
    const std::string marker = "listening on http://127.0.0.1:";
    for (int i = 0; i < 300 && port_ == 0; ++i) {
      const std::string text = log();
      const size_t at = text.find(marker);
      if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
        port_ = std::stoi(text.substr(at + marker.size()));
        break;
      }
      if (exited()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (port_ == 0) {
      const std::string text = log();
      stop(SIGKILL, 10);
      throw std::runtime_error("the server did not start listening:\n" + text);
    }
  }
  ~ServerProcess() {
    if (pid_ > 0 && exit_status_ < 0) stop(SIGKILL, 10);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const { return read_file(log_); }

  httplib::Client client(int timeout_s = 60) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(timeout_s, 0);
    c.set_write_timeout(timeout_s, 0);
    c.set_connection_timeout(5, 0);
    c.set_tcp_nodelay(true);  // as curl and Python's http clients do
    return c;
  }

  // Polls /health until 200 (false after `seconds` or when the process ended).
  bool wait_ready(int seconds = 60) {
    auto c = client(5);
    for (int i = 0; i < seconds * 20; ++i) {
      if (auto r = c.Get("/health"); r && r->status == 200) return true;
      if (exited()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  bool exited() {
    if (exit_status_ >= 0) return true;
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return true;
    }
    return false;
  }

  // Sends `signal` and waits up to `seconds` for the exit; returns its status
  // (-1 if it did not end, after which it is killed).
  int stop(int signal = SIGTERM, int seconds = 30) {
    if (pid_ <= 0) return -1;
    if (!exited()) kill(pid_, signal);
    for (int i = 0; i < seconds * 20 && !exited(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!exited()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      exit_status_ = 999;
      return -1;
    }
    return exit_status_;
  }

  int64_t rss_kb() const { return server_test::rss_kb(pid_); }

 private:
  testing::TempDir dir_;
  fs::path log_;
  pid_t pid_ = -1;
  int port_ = 0;
  int exit_status_ = -1;
};

// The server over the usual fixtures, ready, with `extra` options.
inline std::vector<std::string> base_args(const std::vector<std::string>& extra = {}) {
  const Workspace& w = Workspace::get();
  std::vector<std::string> args = {"--clip", w.clip.string(), "--projector", w.projector.string(), "--threads", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

inline std::string data_uri(const fs::path& image) {
  const std::string bytes = read_file(image);
  const std::string ext = image.extension().string();
  const std::string type = ext == ".jpg" ? "image/jpeg" : "image/png";
  // The test's own base64 encoder (the server's is under test).
  static const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = static_cast<uint8_t>(bytes[i]) << 16 | static_cast<uint8_t>(bytes[i + 1]) << 8 |
                       static_cast<uint8_t>(bytes[i + 2]);
    for (int k = 3; k >= 0; --k) out += digits[(v >> (6 * k)) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out += digits[(v >> 18) & 63];
    out += digits[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? digits[(v >> 6) & 63] : '=';
    out += '=';
  }
  return "data:" + type + ";base64," + out;
}

inline json parse(const httplib::Result& r) {
  if (!r) return json();
  return json::parse(r->body, nullptr, false);
}

}  // namespace tinyemo::server_test
