// What the C API's opaque handles hold, and the guard that turns every C++
// exception into a te_status plus the thread's last-error message.
#pragma once

#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/image.h"
#include "models/clip/vision_model.h"
#include "models/lm/generate.h"
#include "models/lm/model.h"
#include "models/lm/session.h"
#include "models/lm/tokenizer.h"
#include "models/projector/model.h"
#include "tinyemo.h"

struct te_image {
  tinyemo::Image image;
};

struct te_clip {
  explicit te_clip(int threads) : pool(threads) {}
  tinyemo::ThreadPool pool;
  tinyemo::clip::VisionModel model;
  te_clip_params params{};
  std::string path;
};

struct te_projector {
  tinyemo::projector::ProjectorModel model;
  std::string path;
};

struct te_lm {
  explicit te_lm(int threads) : pool(threads) {}
  tinyemo::ThreadPool pool;
  tinyemo::lm::LmModel model;
  std::unique_ptr<tinyemo::lm::Tokenizer> tokenizer;
  std::string architecture;
  std::string path;
};

struct te_session {
  te_session(te_lm* owner) : lm(owner), session(owner->model) {}
  te_lm* lm;
  tinyemo::lm::LmSession session;
  std::vector<int32_t> history;  // the token at each position the session holds
};

namespace tinyemo::api {

// A failure the API itself detects, with its own status.
struct ApiError {
  te_status status;
  std::string message;
};

// The int a C caller passed for a C enum. C lets any int through, but in C++
// reading a value outside the enumerators' range as the enum type is
// undefined, so the bytes are read as an int.
template <class Enum>
int enum_value(const Enum& e) {
  static_assert(sizeof(Enum) == sizeof(int), "C enums are int-sized");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

[[noreturn]] inline void invalid(std::string message) { throw ApiError{TE_ERROR_INVALID_ARGUMENT, std::move(message)}; }
inline void require(bool ok, const char* what) {
  if (!ok) invalid(what);
}

void set_last_error(std::string message);
const char* last_error();

// Runs `body`, mapping what it throws to a status (and the message).
template <class Body>
te_status guard(Body&& body) noexcept {
  try {
    body();
    return TE_OK;
  } catch (const ApiError& e) {
    set_last_error(e.message);
    return e.status;
  } catch (const ContextFullError& e) {
    set_last_error(e.what());
    return TE_ERROR_CONTEXT_FULL;
  } catch (const TooLargeError& e) {
    set_last_error(e.what());
    return TE_ERROR_TOO_LARGE;
  } catch (const Error& e) {
    set_last_error(e.what());
    return TE_ERROR_FAILED;
  } catch (const std::bad_alloc&) {
    set_last_error("out of memory");
    return TE_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(std::string("internal error: ") + e.what());
    return TE_ERROR_INTERNAL;
  } catch (...) {
    set_last_error("internal error: unknown exception");
    return TE_ERROR_INTERNAL;
  }
}

// Copies `n` items to a caller's buffer of `capacity`, reporting the count
// needed; BUFFER_TOO_SMALL when they do not fit.
template <class T>
void copy_out(const T* items, size_t n, T* out, size_t capacity, size_t* needed, const char* what) {
  if (needed != nullptr) *needed = n;
  if (n > capacity) {
    throw ApiError{TE_ERROR_BUFFER_TOO_SMALL,
                   std::string(what) + ": " + std::to_string(n) + " needed, room for " + std::to_string(capacity)};
  }
  require(out != nullptr || n == 0, "output buffer is NULL");
  std::copy(items, items + n, out);
}

// Generation options from the C parameters (sampling, limits, stop strings,
// the streaming callback); the caller adds the tokenizer and EOS ids.
lm::GenerateOptions generate_options(const te_generate_params& params);
te_finish_reason finish_reason_of(const std::string& reason);
int threads_of(int32_t n_threads);

}  // namespace tinyemo::api
