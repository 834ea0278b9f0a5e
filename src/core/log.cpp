#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <string>

namespace tinyemo {
namespace {

struct Sink {
  LogSink fn = nullptr;
  void* user_data = nullptr;
};
Sink g_sink;
std::atomic<int> g_min_level{static_cast<int>(LogLevel::Warn)};

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warning";
    case LogLevel::Error: return "error";
  }
  return "";
}

}  // namespace

void set_log_sink(LogSink sink, void* user_data, LogLevel min_level) {
  g_sink = Sink{sink, user_data};
  g_min_level.store(static_cast<int>(min_level));
}

bool log_enabled(LogLevel level) { return static_cast<int>(level) >= g_min_level.load(std::memory_order_relaxed); }

void log_message(LogLevel level, std::string_view message) {
  if (!log_enabled(level)) return;
  const std::string line(message);
  if (g_sink.fn != nullptr) {
    g_sink.fn(level, line.c_str(), g_sink.user_data);
  } else {
    std::fprintf(stderr, "tinyemo: %s: %s\n", level_name(level), line.c_str());
  }
}

}  // namespace tinyemo
