// Helpers for the JSON-printing benchmarks: what machine ran them, its
// measured limits (peak FLOP/s, memory bandwidth) and a monotonic clock.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "core/machine_limits.h"

namespace tinyemo::bench {

// {"cpu": ..., "cores": ..., "avx512": ..., "compiler": ...}
nlohmann::json machine_info();

// The limits a benchmark reports its speed against, measured now on `threads`
// threads (see core/machine_limits.h): peak f32 FMA and bf16-dot GFLOP/s, int8
// dot GOP/s, read and copy bandwidth in GB/s. Takes about a second.
using tinyemo::measure_copy_bandwidth;
using tinyemo::measure_read_bandwidth;
using tinyemo::peak_gflops;
nlohmann::json machine_limits(int threads);

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The middle value (the upper one of an even count); values must not be empty.
double median(std::vector<double> values);

// Runs fn `reps` times after one warm-up and returns the median seconds, as
// read by `clock` (wall time by default).
template <class Fn>
double median_seconds(int reps, Fn&& fn, double (*clock)() = now_seconds);

}  // namespace tinyemo::bench

template <class Fn>
double tinyemo::bench::median_seconds(int reps, Fn&& fn, double (*clock)()) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = clock();
    fn();
    t.push_back(clock() - t0);
  }
  return median(std::move(t));
}
