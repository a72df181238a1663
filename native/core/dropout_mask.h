// Dropout mask shared by every backend, so ref, cpu and cuda drop the same
// elements for the same seed: element i is kept iff the i-th output of a
// splitmix64 stream started at `seed`, as a 53-bit uniform u in [0,1), is >= p.
// Counter-based (no sequential state), hence independent of the thread count
// and of how the loop is split. The inline functions are __host__ __device__
// (core/hd.h): the CUDA dropout kernel calls these very functions.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/hd.h"

namespace sln {

// splitmix64 output number i (0-based) of the stream seeded with `seed`.
SLN_HD inline uint64_t splitmix64_at(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Integer threshold for p in [0,1): keep iff (hash >> 11) >= threshold, i.e. u >= p
// with u = (hash >> 11) * 2^-53.
SLN_HD inline uint64_t dropout_threshold(double p) {
  return static_cast<uint64_t>(p * 9007199254740992.0);   // p * 2^53, exact for float p
}

SLN_HD inline bool dropout_keep(uint64_t seed, uint64_t i, uint64_t threshold) {
  return (splitmix64_at(seed, i) >> 11) >= threshold;
}

// mask (n): 1 = kept (scaled by 1/(1-p)), 0 = dropped. p in [0,1).
void dropout_mask(size_t n, float p, uint64_t seed, uint8_t* mask);

}  // namespace sln
