// tinyemo's one random-number module: xoshiro256** (Blackman & Vigna) seeded
// through splitmix64, with the ranges and distributions the trainer, the audits
// and the random-weight generators need. Every output is fully specified, so a
// seed gives the same stream on every compiler and standard library (std::
// distributions are implementation-defined).
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace tinyemo {

inline constexpr uint64_t kSplitmixGamma = 0x9e3779b97f4a7c15ull;

// splitmix64's output function: a bijective mix of 64 bits (element-wise
// random weights use it on a counter, so values do not depend on threads).
inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Advances `state` and returns the next splitmix64 output.
inline uint64_t splitmix64(uint64_t& state) { return splitmix64_mix(state += kSplitmixGamma); }

class Rng {
 public:
  // The four state words are consecutive splitmix64 outputs from `seed`.
  explicit Rng(uint64_t seed) {
    for (auto& s : s_) s = splitmix64(seed);
  }
  // Independent stream `stream` of one seed (the permutation engine gives every
  // chunk of replicates its own, so results do not depend on the thread count);
  // the index goes through splitmix64 first so neighbouring streams start far apart.
  static Rng stream(uint64_t seed, uint64_t stream) { return Rng(seed ^ splitmix64(stream)); }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Uniform integer in [0, bound), bound >= 1: Lemire's multiply-and-reject
  // (no modulo bias, one multiplication in the common case).
  uint64_t below(uint64_t bound) {
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * bound;
    auto low = static_cast<uint64_t>(m);
    if (low < bound) {
      const uint64_t threshold = (0 - bound) % bound;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * bound;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
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
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace tinyemo
