// k-means (see kmeans.h).
#include "core/kmeans.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/splitmix.h"
#include "sln/errors.h"

namespace sln::kmeans {

namespace {

constexpr int64_t kChunk = 1024;  // rows per partial sum (fixed: results do not depend on threads)

using Rng = SplitMix64;

// Squared distance of float rows a, b summed in float64 (a SIMD reduction: the
// order depends on the vector width of the clone picked at load time, never on
// the thread count).
__attribute__((target_clones("avx2", "default"))) double sqdist(const float* a, const float* b, int64_t d) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < d; ++j) {
    const double t = static_cast<double>(a[j]) - static_cast<double>(b[j]);
    s += t * t;
  }
  return s;
}

// Sum of v over chunks of kChunk, combined in order (thread-count independent).
double chunked_sum(const std::vector<double>& v, int threads) {
  const int64_t n = static_cast<int64_t>(v.size()), nc = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(nc), 0.0);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < nc; ++c) {
    double s = 0;
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) s += v[i];
    part[c] = s;
  }
  double s = 0;
  for (double p : part) s += p;
  return s;
}

// Greedy k-means++: k centres (k, d) chosen among the rows.
std::vector<float> seed_centres(const float* x, int64_t n, int64_t d, int64_t k, Rng& rng, int threads) {
  std::vector<float> c(static_cast<size_t>(k * d));
  const int64_t trials = 2 + static_cast<int64_t>(std::log(static_cast<double>(k)));
  int64_t first = static_cast<int64_t>(rng.uniform() * n);
  first = std::min(first, n - 1);
  std::copy(x + first * d, x + (first + 1) * d, c.begin());
  std::vector<double> closest(static_cast<size_t>(n));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) closest[i] = sqdist(x + i * d, c.data(), d);
  double pot = chunked_sum(closest, threads);
  std::vector<double> cand_d(static_cast<size_t>(n));
  std::vector<double> best_d(static_cast<size_t>(n));
  for (int64_t m = 1; m < k; ++m) {
    // candidates by D^2 sampling (a cumulative search over the running potential)
    std::vector<int64_t> cand(static_cast<size_t>(trials));
    for (int64_t t = 0; t < trials; ++t) {
      double u = rng.uniform() * pot, acc = 0;
      int64_t pick = n - 1;
      for (int64_t i = 0; i < n; ++i) {
        acc += closest[i];
        if (acc > u) {
          pick = i;
          break;
        }
      }
      cand[t] = pick;
    }
    double best_pot = std::numeric_limits<double>::infinity();
    int64_t best = cand[0];
    for (int64_t t = 0; t < trials; ++t) {
      const float* cr = x + cand[t] * d;
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t i = 0; i < n; ++i) cand_d[i] = std::min(closest[i], sqdist(x + i * d, cr, d));
      const double p = chunked_sum(cand_d, threads);
      if (p < best_pot) {
        best_pot = p;
        best = cand[t];
        best_d.swap(cand_d);
      }
    }
    std::copy(x + best * d, x + (best + 1) * d, c.begin() + m * d);
    closest.swap(best_d);
    pot = best_pot;
  }
  return c;
}

// One Lloyd run from centres c; returns inertia, fills labels and iterations.
double lloyd(const float* x, int64_t n, int64_t d, int64_t k, std::vector<float>& c, std::vector<int32_t>& labels,
             int64_t& iterations, double tol_abs, int64_t max_iter, int threads) {
  std::vector<double> dist(static_cast<size_t>(n));
  const int64_t nc = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(nc * k * d));
  std::vector<int64_t> pcount(static_cast<size_t>(nc * k));
  std::fill(labels.begin(), labels.end(), -1);
  auto assign = [&]() -> int64_t {
    int64_t changed = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : changed)
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * d;
      double bd = std::numeric_limits<double>::infinity();
      int32_t bm = 0;
      for (int64_t m = 0; m < k; ++m) {
        const double v = sqdist(xi, c.data() + m * d, d);
        if (v < bd) {
          bd = v;
          bm = static_cast<int32_t>(m);
        }
      }
      if (labels[i] != bm) ++changed;
      labels[i] = bm;
      dist[i] = bd;
    }
    return changed;
  };
  assign();
  iterations = 0;
  while (iterations < max_iter) {
    ++iterations;
    // new centres: float64 sums per chunk, combined in chunk order
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t ch = 0; ch < nc; ++ch) {
      double* s = part.data() + ch * k * d;
      int64_t* cnt = pcount.data() + ch * k;
      std::fill(s, s + k * d, 0.0);
      std::fill(cnt, cnt + k, 0);
      for (int64_t i = ch * kChunk; i < std::min(n, (ch + 1) * kChunk); ++i) {
        const float* xi = x + i * d;
        double* si = s + static_cast<int64_t>(labels[i]) * d;
        for (int64_t j = 0; j < d; ++j) si[j] += xi[j];
        ++cnt[labels[i]];
      }
    }
    std::vector<double> sum(static_cast<size_t>(k * d), 0.0);
    std::vector<int64_t> count(static_cast<size_t>(k), 0);
    for (int64_t ch = 0; ch < nc; ++ch) {
      for (int64_t q = 0; q < k * d; ++q) sum[q] += part[ch * k * d + q];
      for (int64_t m = 0; m < k; ++m) count[m] += pcount[ch * k + m];
    }
    double shift = 0;
    std::vector<char> taken(static_cast<size_t>(n), 0);
    for (int64_t m = 0; m < k; ++m) {
      float* cm = c.data() + m * d;
      std::vector<float> nw(static_cast<size_t>(d));
      if (count[m] > 0) {
        for (int64_t j = 0; j < d; ++j) nw[j] = static_cast<float>(sum[m * d + j] / static_cast<double>(count[m]));
      } else {
        // empty: the row farthest from its centre (lowest index on ties) not already taken
        int64_t far = -1;
        for (int64_t i = 0; i < n; ++i)
          if (!taken[i] && (far < 0 || dist[i] > dist[far])) far = i;
        taken[far] = 1;
        dist[far] = 0;
        std::copy(x + far * d, x + (far + 1) * d, nw.begin());
      }
      shift += sqdist(cm, nw.data(), d);
      std::copy(nw.begin(), nw.end(), cm);
    }
    const int64_t changed = assign();
    if (changed == 0 || shift <= tol_abs) break;
  }
  return chunked_sum(dist, threads);
}

}  // namespace

Result run(const float* x, int64_t n, int64_t d, int64_t k, const Options& o) {
  SLN_CHECK_ARG(n >= 1 && d >= 1, "kmeans: need at least one row of at least one value, got n = " << n << ", d = " << d);
  SLN_CHECK_ARG(k >= 1 && k <= n, "kmeans: k must be in [1, n = " << n << "], got k = " << k);
  SLN_CHECK_ARG(o.restarts >= 1, "kmeans: restarts must be >= 1, got " << o.restarts);
  SLN_CHECK_ARG(o.max_iter >= 1, "kmeans: maxIter must be >= 1, got " << o.max_iter);
  SLN_CHECK_ARG(o.tol >= 0 && std::isfinite(o.tol), "kmeans: tol must be a finite number >= 0, got " << o.tol);
  const int threads = std::max(1, o.threads);
  // finiteness and the mean per-dimension variance (scikit-learn's tol scale)
  int64_t bad = -1;
  std::vector<double> mean(static_cast<size_t>(d), 0.0), sq(static_cast<size_t>(d), 0.0);
  for (int64_t i = 0; i < n && bad < 0; ++i) {
    const float* xi = x + i * d;
    for (int64_t j = 0; j < d; ++j) {
      if (!std::isfinite(xi[j])) {
        bad = i;
        break;
      }
      mean[j] += xi[j];
    }
  }
  if (bad >= 0) SLN_FAIL(Range, "SLN_NONFINITE", "kmeans: row " << bad << " holds NaN or Inf");
  for (int64_t j = 0; j < d; ++j) mean[j] /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) {
      const double t = x[i * d + j] - mean[j];
      sq[j] += t * t;
    }
  double var = 0;
  for (int64_t j = 0; j < d; ++j) var += sq[j] / static_cast<double>(n);
  const double tol_abs = o.tol * var / static_cast<double>(d);

  Result best;
  best.inertia = std::numeric_limits<double>::infinity();
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (int64_t r = 0; r < o.restarts; ++r) {
    Rng rng{o.seed * 0x100000001B3ull + static_cast<uint64_t>(r) * 0x9E3779B97F4A7C15ull + 1};
    std::vector<float> c = seed_centres(x, n, d, k, rng, threads);
    int64_t iters = 0;
    const double inertia = lloyd(x, n, d, k, c, labels, iters, tol_abs, o.max_iter, threads);
    best.inertias.push_back(inertia);
    if (inertia < best.inertia) {
      best.inertia = inertia;
      best.labels = labels;
      best.centroids = c;
      best.iterations = iters;
      best.restart = r;
    }
  }
  return best;
}

}  // namespace sln::kmeans
