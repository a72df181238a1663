// splitmix64 (Steele, Lea, Flood 2014): the small seeded generator behind
// k-means++ draws, the eigensolvers' random starts and the synthetic images.
// One 64-bit state, no thread state: a stream per (seed, index) is a value.
#pragma once
#include <cstdint>

namespace sln {

struct SplitMix64 {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // [0, 1) with 53 random bits
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
};

}  // namespace sln
