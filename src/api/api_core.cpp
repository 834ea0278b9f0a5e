// te_status, errors, version, logging and images.
#include <cstring>

#include "api/api_internal.h"
#include "core/log.h"

namespace tinyemo::api {
namespace {
thread_local std::string t_last_error;
}
void set_last_error(std::string message) { t_last_error = std::move(message); }
const char* last_error() { return t_last_error.c_str(); }
}  // namespace tinyemo::api

using namespace tinyemo;
using tinyemo::api::guard;
using tinyemo::api::invalid;
using tinyemo::api::require;

namespace {

te_log_callback g_log_callback = nullptr;
void forward_log(LogLevel level, const char* message, void* user_data) {
  g_log_callback(static_cast<te_log_level>(level), message, user_data);
}

te_image* new_image(Image image) {
  auto* out = new te_image;
  out->image = std::move(image);
  return out;
}

ImageLimits limits_of(int64_t max_pixels) {
  ImageLimits limits;
  if (max_pixels < 0) invalid("max_pixels must be >= 0 (0: the default)");
  if (max_pixels > 0) limits.max_pixels = max_pixels;
  return limits;
}

}  // namespace

extern "C" {

const char* te_status_name(te_status status) {
  switch (status) {
    case TE_OK: return "TE_OK";
    case TE_ERROR_INVALID_ARGUMENT: return "TE_ERROR_INVALID_ARGUMENT";
    case TE_ERROR_FAILED: return "TE_ERROR_FAILED";
    case TE_ERROR_OUT_OF_MEMORY: return "TE_ERROR_OUT_OF_MEMORY";
    case TE_ERROR_BUFFER_TOO_SMALL: return "TE_ERROR_BUFFER_TOO_SMALL";
    case TE_ERROR_CANCELLED: return "TE_ERROR_CANCELLED";
    case TE_ERROR_CONTEXT_FULL: return "TE_ERROR_CONTEXT_FULL";
    case TE_ERROR_INTERNAL: return "TE_ERROR_INTERNAL";
    case TE_ERROR_TOO_LARGE: return "TE_ERROR_TOO_LARGE";
  }
  return "TE_ERROR_UNKNOWN";
}

const char* te_last_error(void) { return api::last_error(); }

const char* te_version(void) {
#define TE_STR2(x) #x
#define TE_STR(x) TE_STR2(x)
  return TE_STR(TE_VERSION_MAJOR) "." TE_STR(TE_VERSION_MINOR) "." TE_STR(TE_VERSION_PATCH);
#undef TE_STR
#undef TE_STR2
}

int te_api_version(void) { return TE_API_VERSION; }

void te_log_set(te_log_callback callback, void* user_data, te_log_level min_level) {
  const int level = std::min(std::max(api::enum_value(min_level), 0), 3);
  g_log_callback = callback;
  set_log_sink(callback != nullptr ? forward_log : nullptr, user_data, static_cast<LogLevel>(level));
}

int64_t te_image_default_max_pixels(void) { return ImageLimits{}.max_pixels; }

te_status te_image_load_file(const char* path, int64_t max_pixels, te_image** out) {
  return guard([&] {
    require(out != nullptr, "te_image_load_file: out is NULL");
    *out = nullptr;
    require(path != nullptr, "te_image_load_file: path is NULL");
    *out = new_image(load_image(path, limits_of(max_pixels)));
  });
}

te_status te_image_load_memory(const void* data, size_t size, int64_t max_pixels, te_image** out) {
  return guard([&] {
    require(out != nullptr, "te_image_load_memory: out is NULL");
    *out = nullptr;
    require(data != nullptr || size == 0, "te_image_load_memory: data is NULL");
    *out = new_image(decode_image(data, size, "image in memory", limits_of(max_pixels)));
  });
}

te_status te_image_from_pixels(const uint8_t* pixels, int32_t width, int32_t height, int32_t channels, size_t stride,
                               te_image** out) {
  return guard([&] {
    require(out != nullptr, "te_image_from_pixels: out is NULL");
    *out = nullptr;
    require(pixels != nullptr, "te_image_from_pixels: pixels is NULL");
    require(width > 0 && height > 0, "te_image_from_pixels: width and height must be positive");
    require(channels == 1 || channels == 3 || channels == 4, "te_image_from_pixels: channels must be 1, 3 or 4");
    const size_t row = static_cast<size_t>(width) * static_cast<size_t>(channels);
    if (stride == 0) stride = row;
    require(stride >= row, "te_image_from_pixels: stride is smaller than width * channels");
    if (static_cast<int64_t>(width) * height > ImageLimits{}.max_pixels) {
      invalid("te_image_from_pixels: more pixels than the default limit");
    }
    Image image;
    image.width = width;
    image.height = height;
    image.mode = channels == 1 ? ImageMode::L : channels == 3 ? ImageMode::RGB : ImageMode::RGBA;
    image.pixels.resize(row * static_cast<size_t>(height));
    for (int32_t y = 0; y < height; ++y) std::memcpy(image.pixels.data() + y * row, pixels + y * stride, row);
    *out = new_image(std::move(image));
  });
}

int32_t te_image_width(const te_image* image) { return image ? static_cast<int32_t>(image->image.width) : 0; }
int32_t te_image_height(const te_image* image) { return image ? static_cast<int32_t>(image->image.height) : 0; }
void te_image_free(te_image* image) { delete image; }

}  // extern "C"
