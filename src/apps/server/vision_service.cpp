#include "vision_service.h"

#include <algorithm>

#include "http_error.h"

namespace tinyemo::server {

namespace {
const char* const kShuttingDown = "the server is shutting down";
}  // namespace

struct VisionService::Job {
  std::vector<te::image_ptr> images;
  std::shared_ptr<const LabelSet> labels;
  Output out;
  size_t next = 0;  // the next image to give a batch (worker only)
  bool abandoned = false;  // the request stopped waiting (guarded by mutex_)
  bool finished = false;   // `out` is complete (guarded by mutex_)
  std::string failure;     // the whole job failed (set before `finished`)
};

VisionService::VisionService(te_clip* clip, te_projector* projector, size_t max_queued, size_t batch,
                             Metrics* metrics)
    : clip_(clip),
      projector_(projector),
      max_queued_(std::max<size_t>(1, max_queued)),
      batch_(std::max<size_t>(1, batch)),
      dim_(static_cast<size_t>(te_clip_embedding_dim(clip))),
      metrics_(metrics),
      thread_([this] { worker(); }) {}

VisionService::~VisionService() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

size_t VisionService::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

VisionService::Output VisionService::run(std::vector<te::image_ptr> images, std::shared_ptr<const LabelSet> labels,
                                         Clock::time_point deadline) {
  auto job = std::make_shared<Job>();
  const size_t n = images.size();
  job->images = std::move(images);
  job->labels = std::move(labels);
  job->out.errors.assign(n, "");
  job->out.embeddings.assign(n * dim_, 0.0f);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) throw HttpError(503, "shutting_down", "the server is shutting down", 1);
    if (queue_.size() >= max_queued_) {
      throw HttpError(503, "queue_full",
                      "the image queue is full (" + std::to_string(max_queued_) + " requests); retry shortly", 1);
    }
    queue_.push_back(job);
  }
  wake_.notify_one();
  std::unique_lock<std::mutex> lock(mutex_);
  if (!done_.wait_until(lock, deadline, [&] { return job->finished; })) {
    job->abandoned = true;  // the worker drops what it has not started
    throw HttpError(503, "timeout", "the request did not finish within the server's time limit (--timeout-s)", 1);
  }
  if (job->failure == kShuttingDown) throw HttpError(503, "shutting_down", "the server is shutting down", 1);
  if (!job->failure.empty()) throw HttpError(500, "internal_error", job->failure);
  return std::move(job->out);
}

void VisionService::worker() {
  for (;;) {
    std::vector<std::pair<std::shared_ptr<Job>, size_t>> batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      // Images in arrival order, across requests, up to the batch size. No
      // image is in flight here (one worker), so an abandoned job can go.
      for (auto it = queue_.begin(); it != queue_.end() && batch.size() < batch_;) {
        Job& job = **it;
        if (job.abandoned || stop_) {
          job.failure = kShuttingDown;
          job.finished = true;
          it = queue_.erase(it);
          continue;
        }
        while (job.next < job.images.size() && batch.size() < batch_) batch.emplace_back(*it, job.next++);
        ++it;
      }
    }
    done_.notify_all();
    if (batch.empty()) continue;
    embed_batch(batch);

    // Jobs whose last image was in this batch are complete.
    std::vector<std::shared_ptr<Job>> complete;
    for (const auto& [job, index] : batch) {
      if (job->next == job->images.size() && (complete.empty() || complete.back() != job)) complete.push_back(job);
    }
    for (const auto& job : complete) {
      bool abandoned;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        abandoned = job->abandoned;
      }
      if (job->labels && !abandoned) classify(*job);
      job->images.clear();  // the decoded pixels go now, not when the request's thread wakes
      std::lock_guard<std::mutex> lock(mutex_);
      job->finished = true;
      queue_.erase(std::remove(queue_.begin(), queue_.end(), job), queue_.end());
    }
    done_.notify_all();
  }
}

void VisionService::embed_batch(std::vector<std::pair<std::shared_ptr<Job>, size_t>>& batch) {
  std::vector<const te_image*> images;
  for (const auto& [job, index] : batch) images.push_back(job->images[index].get());
  std::vector<float> rows(images.size() * dim_);
  uint64_t embedded = 0;
  if (te_clip_embed(clip_, images.data(), images.size(), rows.data(), rows.size()) == TE_OK) {
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& [job, index] = batch[i];
      std::copy(rows.begin() + i * dim_, rows.begin() + (i + 1) * dim_, job->out.embeddings.begin() + index * dim_);
    }
    embedded = batch.size();
  } else {
    // One image spoiled the batch: embed each alone so the others still succeed.
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& [job, index] = batch[i];
      const te_image* one = images[i];
      if (te_clip_embed(clip_, &one, 1, job->out.embeddings.data() + index * dim_, dim_) == TE_OK) {
        ++embedded;
      } else {
        job->out.errors[index] = te_last_error();
      }
    }
  }
  if (metrics_ != nullptr) metrics_->add_images(embedded);
}

void VisionService::classify(Job& job) {
  const LabelSet& set = *job.labels;
  const size_t n = job.images.size(), L = set.labels.size();
  if (current_labels_ != job.labels) {
    std::vector<const char*> names;
    for (const auto& l : set.labels) names.push_back(l.c_str());
    if (te_projector_set_anchors(projector_, names.data(), names.size(), set.anchors.data(), set.anchors.size()) !=
        TE_OK) {
      current_labels_.reset();
      job.failure = std::string("cannot use the label set: ") + te_last_error();
      return;
    }
    current_labels_ = job.labels;
  }
  // The images that were embedded, classified together.
  std::vector<size_t> ok;
  std::vector<float> features;
  for (size_t i = 0; i < n; ++i) {
    if (!job.out.errors[i].empty()) continue;
    ok.push_back(i);
    features.insert(features.end(), job.out.embeddings.begin() + i * dim_, job.out.embeddings.begin() + (i + 1) * dim_);
  }
  job.out.predicted.assign(n, -1);
  job.out.probabilities.assign(n * L, 0.0f);
  job.out.cosines.assign(n * L, 0.0f);
  job.out.distances.assign(n * L, 0.0f);
  if (ok.empty()) return;
  std::vector<int32_t> predicted(ok.size());
  std::vector<float> p(ok.size() * L), c(ok.size() * L), d(ok.size() * L);
  if (te_projector_classify(projector_, features.data(), ok.size(), dim_, predicted.data(), p.data(), c.data(),
                            d.data()) != TE_OK) {
    job.failure = std::string("the projector failed: ") + te_last_error();
    return;
  }
  for (size_t k = 0; k < ok.size(); ++k) {
    const size_t i = ok[k];
    job.out.predicted[i] = predicted[k];
    std::copy(p.begin() + k * L, p.begin() + (k + 1) * L, job.out.probabilities.begin() + i * L);
    std::copy(c.begin() + k * L, c.begin() + (k + 1) * L, job.out.cosines.begin() + i * L);
    std::copy(d.begin() + k * L, d.begin() + (k + 1) * L, job.out.distances.begin() + i * L);
  }
}

}  // namespace tinyemo::server
