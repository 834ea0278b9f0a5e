// Decoding uploaded images under a memory bound. Each image is checked against
// --max-pixels before its pixels are decoded (te_image_load_memory), and the
// pixels decoded at any time, across all requests, stay within a budget: an
// image reserves --max-pixels before decoding and keeps only its real size
// until its request is done. So a request of small compressed files that
// decode to huge images waits its turn (or gets 413) instead of exhausting memory.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "request_parsing.h"
#include "tinyemo.hpp"

namespace tinyemo::server {

using Clock = std::chrono::steady_clock;

class PixelBudget {
 public:
  explicit PixelBudget(int64_t capacity) : capacity_(capacity), free_(capacity) {}
  int64_t capacity() const { return capacity_; }
  // False when `n` pixels did not become free before `deadline`.
  bool acquire(int64_t n, Clock::time_point deadline);
  void release(int64_t n);

 private:
  const int64_t capacity_;
  int64_t free_;
  std::mutex mutex_;
  std::condition_variable freed_;
};

struct DecodedImage {
  te::image_ptr image;  // null when the input could not be decoded
  std::string error;    // why, naming the input
  int error_status = 0; // 400 (not a readable image) or 415 (not an image type)
};

// The decoded images of one request and the pixels they hold in the budget
// (given back when this is destroyed).
class DecodedImages {
 public:
  explicit DecodedImages(PixelBudget* budget) : budget_(budget) {}
  ~DecodedImages() {
    if (held_ > 0) budget_->release(held_);
  }
  DecodedImages(const DecodedImages&) = delete;
  DecodedImages& operator=(const DecodedImages&) = delete;

  // Decodes every readable input in order (an unreadable one gets its error
  // and the others go on), freeing each input's encoded bytes once decoded.
  // HttpError 413 "image_too_large" for an image over `max_pixels` or a
  // request whose images exceed the whole budget; 503 "timeout" when the
  // budget stays taken by other requests past `deadline`.
  void decode(std::vector<ImageInput>& inputs, int64_t max_pixels, Clock::time_point deadline);

  std::vector<DecodedImage> images;  // one per input

 private:
  PixelBudget* budget_;
  int64_t held_ = 0;
};

}  // namespace tinyemo::server
