// The library's messages (warnings a user should see, what was loaded): one
// sink per process, standard error at Warn and above unless a program using
// the C API installs its own (te_log_set).
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace tinyemo {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

using LogSink = void (*)(LogLevel level, const char* message, void* user_data);

// `sink` null: standard error. Messages below `min_level` are dropped.
void set_log_sink(LogSink sink, void* user_data, LogLevel min_level);
bool log_enabled(LogLevel level);
void log_message(LogLevel level, std::string_view message);

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (log_enabled(level)) log_message(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace tinyemo
