// What GET /metrics reports, in Prometheus' text format: requests by route and
// status, latency histograms per route, images and tokens (totals and per
// second over the last minute), queue depth, busy slots, resident memory.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace tinyemo::server {

// The gauges the server reads when /metrics is asked for.
struct MetricsGauges {
  int64_t vision_queue = 0;       // classify/embedding requests waiting for CLIP
  int64_t generation_queue = 0;   // requests waiting for a generation slot
  int64_t slots_busy = 0;
  int64_t slots_total = 0;
  bool ready = false;             // models loaded
};

class Metrics {
 public:
  Metrics();
  // Routes outside `known_routes` are counted as "other" (bounded label values).
  void set_known_routes(std::vector<std::string> routes) { known_routes_ = std::move(routes); }
  void observe_request(const std::string& route, int status, double seconds);
  void add_images(uint64_t n);
  void add_tokens(uint64_t prompt, uint64_t generated);
  std::string render(const MetricsGauges& gauges) const;

 private:
  // Events per second over the last kWindow seconds, in one-second buckets.
  static constexpr int kWindow = 60;
  struct Rate {
    std::array<uint64_t, kWindow> buckets{};
    std::array<int64_t, kWindow> second{};  // which second each bucket holds
    void add(int64_t now_s, uint64_t n);
    double per_second(int64_t now_s) const;
  };
  struct Histogram {
    std::vector<uint64_t> counts;  // one per bound, plus +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  int64_t now_s() const;

  std::vector<std::string> known_routes_;
  std::vector<double> bounds_;
  std::chrono::steady_clock::time_point start_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  uint64_t images_ = 0, prompt_tokens_ = 0, generated_tokens_ = 0;
  Rate image_rate_, token_rate_;
};

// VmRSS of this process from /proc/self/status, in bytes (0 when unreadable).
int64_t resident_memory_bytes();

}  // namespace tinyemo::server
