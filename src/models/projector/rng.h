// The projector's random numbers: core's fully specified xoshiro256** plus the
// ranges and distributions training needs, so a `--seed` gives the same model
// on every compiler and standard library.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/rng.h"

namespace tinyemo::projector {

class Rng : public Xoshiro256StarStar {
 public:
  explicit Rng(uint64_t seed) : Xoshiro256StarStar(seed) {}

  // Uniform integer in [0, n) (n > 0), without modulo bias.
  uint64_t below(uint64_t n) {
    const uint64_t limit = -n % n;  // 2^64 mod n
    for (;;) {
      const uint64_t r = next();
      if (r >= limit) return r % n;
    }
  }
  // Standard normal (Box-Muller; both values of a pair are used).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 0.0;
    while (u1 == 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * M_PI * u2);
    has_spare_ = true;
    return r * std::cos(2.0 * M_PI * u2);
  }
  // Fisher-Yates.
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace tinyemo::projector
