// The solver's argument checks, its maxIters warning and the scalings it
// returns, shared by the CPU solver (core/sinkhorn.cpp) and the CUDA one
// (cuda/sinkhorn.cu, which does not link the CPU solver): header-only, so both
// say and return the same in the same words.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#include "core/sinkhorn.h"
#include "sln/errors.h"

namespace sln::sinkhorn {

// who: the message prefix ("sinkhorn", "sinkhorn (cuda)").
inline void check_args(int64_t n, int64_t k, const Options& o, const char* who) {
  if (k < 1) SLN_FAIL(Range, "SLN_INVALID_SHAPE", who << ": K (clusters) must be >= 1, got K=" << k);
  if (n < k)
    SLN_FAIL(Range, "SLN_INVALID_SHAPE",
             who << ": N (images) must be >= K (clusters) for an equipartition, got N=" << n << ", K=" << k);
  if (n > std::numeric_limits<int32_t>::max())
    SLN_FAIL(Range, "SLN_INVALID_SHAPE", who << ": N must be < 2^31, got N=" << n);
  if (!(o.lambda > 0) || !std::isfinite(o.lambda))
    SLN_FAIL(Range, "SLN_INVALID_ARGUMENT", who << ": lambda must be a finite number > 0, got " << o.lambda);
  if (!(o.tol >= 0) || !std::isfinite(o.tol))
    SLN_FAIL(Range, "SLN_INVALID_ARGUMENT", who << ": tol must be a finite number >= 0, got " << o.tol);
  if (o.max_iters < 1) SLN_FAIL(Range, "SLN_INVALID_ARGUMENT", who << ": maxIters must be >= 1, got " << o.max_iters);
  if (o.threads < 1) SLN_FAIL(Range, "SLN_INVALID_ARGUMENT", who << ": threads must be >= 1, got " << o.threads);
  if (o.warm_log_r) {
    for (int64_t i = 0; i < k; ++i)
      if (!std::isfinite(o.warm_log_r[i]))
        SLN_FAIL(Range, "SLN_INVALID_ARGUMENT",
                 who << ": warmStart[" << i << "] is " << o.warm_log_r[i] << "; a warm start must be finite log r (K)");
  }
}

// Result::warning of a solve stopped by maxIters with `error` > tol.
inline std::string max_iters_warning(const Options& o, double error) {
  std::ostringstream os;
  os << "sinkhorn: stopped at maxIters=" << o.max_iters << " with error " << error << " > tol " << o.tol
     << "; the labels are those of the last iterate (raise maxIters or tol, or lower lambda)";
  return os.str();
}

// The result's scalings from the final r (K), the logits' column shifts M (K)
// and c (N): log_r = log r - M (relative to the unshifted logits: a later
// solve's warm start) and log_c = log c.
inline void set_log_scalings(Result& res, const double* r, const double* M, int64_t K, const double* c, int64_t N) {
  res.log_r.resize(K);
  for (int64_t k = 0; k < K; ++k) res.log_r[k] = std::log(r[k]) - M[k];
  res.log_c.resize(N);
  for (int64_t j = 0; j < N; ++j) res.log_c[j] = std::log(c[j]);
}

}  // namespace sln::sinkhorn
