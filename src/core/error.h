// Error reporting: every failure the user can cause (bad file, bad flag, bad
// shape) is a tinyemo::Error whose message names the file/field involved.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace tinyemo {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A sequence that would not fit in a model's context (callers such as a chat
// or a server react to it differently from a bad file).
class ContextFullError : public Error {
 public:
  using Error::Error;
};

// An input larger than a limit the caller set (an image declaring more pixels
// than allowed): a server answers it differently from a malformed input.
class TooLargeError : public Error {
 public:
  using Error::Error;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace tinyemo

// TE_CHECK(cond, "format {}", args...): throws tinyemo::Error when cond is false.
#define TE_CHECK(cond, ...)            \
  do {                                 \
    if (!(cond)) {                     \
      ::tinyemo::fail(__VA_ARGS__);    \
    }                                  \
  } while (0)
