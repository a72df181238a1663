#include "core/dropout_mask.h"

#include "sln/errors.h"

namespace sln {

void dropout_mask(size_t n, float p, uint64_t seed, uint8_t* mask) {
  SLN_CHECK_ARG(p >= 0.0f && p < 1.0f, "dropout_mask: p must be in [0, 1), got " << p);
  const uint64_t thr = dropout_threshold(p);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < static_cast<long>(n); i++) mask[i] = dropout_keep(seed, static_cast<uint64_t>(i), thr) ? 1 : 0;
}

}  // namespace sln
