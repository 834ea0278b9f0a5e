// The audit's random numbers for permutation tests and bootstraps: core's fully
// specified xoshiro256** with Lemire's bounded integers. std::mt19937 is
// portable but std::uniform_int_distribution is not (each standard library maps
// bits to ranges differently), so results would change between compilers.
#pragma once

#include <cstdint>

#include "core/rng.h"

namespace tinyemo::analysis {

class Rng : public Xoshiro256StarStar {
 public:
  // Independent streams for one seed: the permutation engine gives every chunk
  // of replicates its own stream so results do not depend on the thread count.
  // The stream index goes through splitmix64 first so neighbouring streams
  // start far apart in state space.
  explicit Rng(uint64_t seed, uint64_t stream = 0) : Xoshiro256StarStar(seed ^ splitmix64(stream)) {}

  // Uniform integer in [0, bound), bound >= 1 (Lemire's multiply-and-reject).
  uint64_t below(uint64_t bound);
};

}  // namespace tinyemo::analysis
