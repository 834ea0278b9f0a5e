// A small, fully specified pseudo-random generator for the audit's permutation
// tests and bootstraps. std::mt19937 is portable but std::uniform_int_distribution
// is not (each standard library maps bits to ranges differently), so results
// would change between compilers; xoshiro256** with Lemire's bounded integers
// gives the same stream everywhere for a given (seed, stream).
#pragma once

#include <cstdint>

namespace tinyemo::analysis {

class Rng {
 public:
  // Independent streams for one seed: the permutation engine gives every chunk
  // of replicates its own stream so results do not depend on the thread count.
  explicit Rng(uint64_t seed, uint64_t stream = 0);

  uint64_t next();
  // Uniform integer in [0, bound), bound >= 1 (Lemire's multiply-and-reject).
  uint64_t below(uint64_t bound);
  // Uniform double in [0, 1) with 53 random bits.
  double uniform();

 private:
  uint64_t s_[4];
};

}  // namespace tinyemo::analysis
