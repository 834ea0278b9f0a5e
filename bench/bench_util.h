// Helpers for the JSON-printing benchmarks: what machine ran them, and a
// monotonic clock.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>

namespace tinyemo::bench {

// {"cpu": ..., "cores": ..., "avx512": ..., "compiler": ...}
nlohmann::json machine_info();

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs fn `reps` times after one warm-up and returns the median seconds.
template <class Fn>
double median_seconds(int reps, Fn&& fn);

}  // namespace tinyemo::bench

#include <algorithm>
#include <vector>

template <class Fn>
double tinyemo::bench::median_seconds(int reps, Fn&& fn) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_seconds();
    fn();
    t.push_back(now_seconds() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
