#include "metrics.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace tinyemo::server {

Metrics::Metrics()
    : bounds_{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
      start_(std::chrono::steady_clock::now()) {}

int64_t Metrics::now_s() const {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_).count();
}

void Metrics::Rate::add(int64_t now, uint64_t n) {
  const size_t i = static_cast<size_t>(now % kWindow);
  if (second[i] != now) {
    second[i] = now;
    buckets[i] = 0;
  }
  buckets[i] += n;
}

double Metrics::Rate::per_second(int64_t now) const {
  // The last kWindow whole seconds (the current one is still filling); a
  // server younger than that divides by its age.
  uint64_t total = 0;
  for (int k = 1; k <= kWindow; ++k) {
    const int64_t s = now - k;
    if (s < 0) break;
    const size_t i = static_cast<size_t>(s % kWindow);
    if (second[i] == s) total += buckets[i];
  }
  const int64_t span = std::min<int64_t>(kWindow, now);
  return span > 0 ? static_cast<double>(total) / static_cast<double>(span) : 0.0;
}

void Metrics::observe_request(const std::string& route_in, int status, double seconds) {
  const bool known = std::find(known_routes_.begin(), known_routes_.end(), route_in) != known_routes_.end();
  const std::string route = known ? route_in : "other";
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  Histogram& h = latency_[route];
  if (h.counts.empty()) h.counts.assign(bounds_.size() + 1, 0);
  const size_t b = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin());
  ++h.counts[b];
  h.sum += seconds;
  ++h.count;
}

void Metrics::add_images(uint64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  images_ += n;
  image_rate_.add(now_s(), n);
}

void Metrics::add_tokens(uint64_t prompt, uint64_t generated) {
  std::lock_guard<std::mutex> lock(mutex_);
  prompt_tokens_ += prompt;
  generated_tokens_ += generated;
  token_rate_.add(now_s(), generated);
}

namespace {
std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
}  // namespace

std::string Metrics::render(const MetricsGauges& g) const {
  std::ostringstream out;
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t now = now_s();
  out << "# HELP tinyemo_requests_total HTTP requests answered, by route and status.\n"
         "# TYPE tinyemo_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    out << "tinyemo_requests_total{route=\"" << key.first << "\",status=\"" << key.second << "\"} " << n << "\n";
  }
  out << "# HELP tinyemo_request_duration_seconds Time from reading a request to its last byte, by route.\n"
         "# TYPE tinyemo_request_duration_seconds histogram\n";
  for (const auto& [route, h] : latency_) {
    uint64_t cumulative = 0;
    for (size_t b = 0; b < bounds_.size(); ++b) {
      cumulative += h.counts[b];
      out << "tinyemo_request_duration_seconds_bucket{route=\"" << route << "\",le=\"" << number(bounds_[b]) << "\"} "
          << cumulative << "\n";
    }
    out << "tinyemo_request_duration_seconds_bucket{route=\"" << route << "\",le=\"+Inf\"} " << h.count << "\n";
    out << "tinyemo_request_duration_seconds_sum{route=\"" << route << "\"} " << number(h.sum) << "\n";
    out << "tinyemo_request_duration_seconds_count{route=\"" << route << "\"} " << h.count << "\n";
  }
  out << "# HELP tinyemo_images_total Images embedded by CLIP.\n# TYPE tinyemo_images_total counter\n"
      << "tinyemo_images_total " << images_ << "\n";
  out << "# HELP tinyemo_images_per_second Images embedded per second over the last minute.\n"
         "# TYPE tinyemo_images_per_second gauge\n"
      << "tinyemo_images_per_second " << number(image_rate_.per_second(now)) << "\n";
  out << "# HELP tinyemo_prompt_tokens_total Prompt tokens evaluated.\n# TYPE tinyemo_prompt_tokens_total counter\n"
      << "tinyemo_prompt_tokens_total " << prompt_tokens_ << "\n";
  out << "# HELP tinyemo_generated_tokens_total Tokens generated.\n# TYPE tinyemo_generated_tokens_total counter\n"
      << "tinyemo_generated_tokens_total " << generated_tokens_ << "\n";
  out << "# HELP tinyemo_tokens_per_second Tokens generated per second over the last minute.\n"
         "# TYPE tinyemo_tokens_per_second gauge\n"
      << "tinyemo_tokens_per_second " << number(token_rate_.per_second(now)) << "\n";
  out << "# HELP tinyemo_queue_depth Requests waiting, by queue.\n# TYPE tinyemo_queue_depth gauge\n"
      << "tinyemo_queue_depth{queue=\"vision\"} " << g.vision_queue << "\n"
      << "tinyemo_queue_depth{queue=\"generation\"} " << g.generation_queue << "\n";
  out << "# HELP tinyemo_slots_busy Generation slots in use.\n# TYPE tinyemo_slots_busy gauge\n"
      << "tinyemo_slots_busy " << g.slots_busy << "\n";
  out << "# HELP tinyemo_slots_total Generation slots (--parallel).\n# TYPE tinyemo_slots_total gauge\n"
      << "tinyemo_slots_total " << g.slots_total << "\n";
  out << "# HELP tinyemo_ready 1 once the models are loaded.\n# TYPE tinyemo_ready gauge\n"
      << "tinyemo_ready " << (g.ready ? 1 : 0) << "\n";
  out << "# HELP process_resident_memory_bytes Resident memory (VmRSS).\n"
         "# TYPE process_resident_memory_bytes gauge\n"
      << "process_resident_memory_bytes " << resident_memory_bytes() << "\n";
  return out.str();
}

int64_t resident_memory_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      int64_t kb = 0;
      fields >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

}  // namespace tinyemo::server
