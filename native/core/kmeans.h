// k-means (Lloyd) with greedy k-means++ seeding and restarts, on float32 rows.
//
//   x (n, d) float32, k clusters, `restarts` independent runs, the one with the
//   lowest inertia (sum of squared distances to the assigned centre) kept.
// Seeding: greedy k-means++ as scikit-learn's: the first centre uniform, each
//   next one the best (lowest potential) of 2 + floor(ln k) candidates drawn
//   with probability proportional to D(x)^2.
// Lloyd: assign every row to its nearest centre (squared distance summed in
//   float64, first centre on ties), recompute the centres as float64 means,
//   stop when no label changed or the total squared centre shift is at most
//   tol * (mean per-dimension variance of x), as scikit-learn's tol, or after
//   max_iter iterations. An empty cluster takes the row farthest from its centre.
// Determinism: the rows are summed in fixed chunks of kChunk combined in order,
//   and every random draw comes from a splitmix64 stream of (seed, restart), so
//   the result is bit-identical for any thread count.
#pragma once
#include <cstdint>
#include <vector>

namespace sln::kmeans {

struct Options {
  int64_t restarts = 3;
  int64_t max_iter = 300;
  double tol = 1e-4;
  uint64_t seed = 0;
  int threads = 1;
};

struct Result {
  std::vector<int32_t> labels;    // (n)
  std::vector<float> centroids;   // (k, d)
  double inertia = 0;             // sum of squared distances of the kept run
  int64_t iterations = 0;         // Lloyd iterations of the kept run
  int64_t restart = 0;            // which restart was kept
  std::vector<double> inertias;   // every restart's inertia
};

// Throws sln::Error: k < 1 or k > n (SLN_INVALID_ARGUMENT), a NaN/Inf value
// (SLN_NONFINITE, naming the row).
Result run(const float* x, int64_t n, int64_t d, int64_t k, const Options& o);

}  // namespace sln::kmeans
