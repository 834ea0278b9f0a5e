#include "image_decoding.h"

#include <algorithm>

#include "http_error.h"

namespace tinyemo::server {

bool PixelBudget::acquire(int64_t n, Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!freed_.wait_until(lock, deadline, [&] { return free_ >= n; })) return false;
  free_ -= n;
  return true;
}

void PixelBudget::release(int64_t n) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    free_ += n;
  }
  freed_.notify_all();
}

void DecodedImages::decode(std::vector<ImageInput>& inputs, int64_t max_pixels, Clock::time_point deadline) {
  images.clear();
  images.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    ImageInput& in = inputs[i];
    DecodedImage& out = images[i];
    if (!in.error.empty()) {
      out.error = in.error;
      out.error_status = in.error_status;
      continue;
    }
    // Reserve the most this image may decode to; keep what it really takes.
    const int64_t room = budget_->capacity() - held_;
    const int64_t reserve = std::min(max_pixels, room);
    if (reserve <= 0) {
      throw HttpError(413, "image_too_large",
                      "the images of this request decode to more than " + std::to_string(budget_->capacity()) +
                          " pixels in total; send fewer or smaller images");
    }
    if (!budget_->acquire(reserve, deadline)) {
      throw HttpError(503, "timeout", "the server is busy decoding other images; retry shortly", 1);
    }
    te_image* image = nullptr;
    const te_status s = te_image_load_memory(in.bytes.data(), in.bytes.size(), reserve, &image);
    int64_t used = 0;
    if (s == TE_OK) used = static_cast<int64_t>(te_image_width(image)) * te_image_height(image);
    budget_->release(reserve - used);
    held_ += used;
    std::string().swap(in.bytes);
    if (s == TE_ERROR_TOO_LARGE) {
      throw HttpError(413, "image_too_large",
                      in.name + (reserve < max_pixels
                                     ? ": the images of this request decode to more than " +
                                           std::to_string(budget_->capacity()) + " pixels in total"
                                     : " has more than " + std::to_string(max_pixels) + " pixels (--max-pixels)"));
    }
    if (s != TE_OK) {
      // The library names the image "image in memory"; the request knows its name.
      std::string message = te_last_error();
      const std::string generic = "image in memory: ";
      if (message.rfind(generic, 0) == 0) message.erase(0, generic.size());
      out.error = in.name + ": " + message;
      out.error_status = 400;
      continue;
    }
    out.image.reset(image);
  }
}

}  // namespace tinyemo::server
