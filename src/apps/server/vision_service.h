// The CLIP worker: one thread owns the te_clip and te_projector handles (a
// handle is used by one thread at a time) and serves classify and embedding
// requests from a bounded queue. Images of several requests share one CLIP
// forward (up to the batch size) whenever more than one is waiting; with one
// request waiting its images go at once, so batching never adds latency.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "label_sets.h"
#include "metrics.h"
#include "tinyemo.hpp"

namespace tinyemo::server {

using Clock = std::chrono::steady_clock;

class VisionService {
 public:
  // `clip` and `projector` must outlive the service; `max_queued` bounds the
  // requests waiting (more: HttpError 503 "queue_full" with Retry-After).
  VisionService(te_clip* clip, te_projector* projector, size_t max_queued, size_t batch, Metrics* metrics);
  ~VisionService();
  VisionService(const VisionService&) = delete;
  VisionService& operator=(const VisionService&) = delete;

  struct Output {
    std::vector<std::string> errors;  // per image: "" when embedded
    std::vector<float> embeddings;    // [n, embedding_dim] (rows of failed images are zeros)
    std::vector<int32_t> predicted;   // classify only: [n]
    std::vector<float> probabilities, cosines, distances;  // classify only: [n, labels]
  };
  // Embeds `images` (their ownership passes to the service until done) and,
  // when `labels` is given, classifies them against that set. Waits until
  // `deadline`; past it the request is dropped (HttpError 503 "timeout").
  Output run(std::vector<te::image_ptr> images, std::shared_ptr<const LabelSet> labels, Clock::time_point deadline);

  size_t queued() const;
  size_t embedding_dim() const { return dim_; }

 private:
  struct Job;
  void worker();
  void embed_batch(std::vector<std::pair<std::shared_ptr<Job>, size_t>>& batch);
  void classify(Job& job);

  te_clip* clip_;
  te_projector* projector_;
  size_t max_queued_, batch_, dim_;
  Metrics* metrics_;
  std::shared_ptr<const LabelSet> current_labels_;  // what projector_ holds (worker thread only)

  mutable std::mutex mutex_;
  std::condition_variable wake_;  // the worker waits here for jobs
  std::condition_variable done_;  // requests wait here for their job
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace tinyemo::server
