// xoshiro256** (Blackman & Vigna) seeded through splitmix64: a small random
// generator whose output is fully specified, so a seed gives the same stream on
// every compiler and standard library (std:: distributions are
// implementation-defined). Users add the ranges and distributions they need.
#pragma once

#include <cstdint>

namespace tinyemo {

// Advances `state` and returns the next splitmix64 output.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Xoshiro256StarStar {
 public:
  // The four state words are consecutive splitmix64 outputs from `seed_state`.
  explicit Xoshiro256StarStar(uint64_t seed_state) {
    for (auto& s : s_) s = splitmix64(seed_state);
  }

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

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace tinyemo
