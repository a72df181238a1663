// The reference's Sinkhorn-Knopp (sinkhornknopp.py, optimize_L_sk) as written, in
// C++: P = softmax(z) in float64, P **= lambda, then per iteration two separate
// passes over the matrix (r = (1/K)/(P^T c), c_new = (1/N)/(P r)), err every 10
// iterations, labels = argmax of (P * c) * r. It is the "numpy-like" baseline of
// bench/sinkhorn.ts and a second reference for the tests. Threaded like the fused
// solver (fixed row blocks, block-ordered reduction), but with no underflow
// handling: that is the point of the comparison.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <sstream>
#include <vector>

#include "core/sinkhorn.h"
#include "sln/errors.h"

namespace sln::sinkhorn {

Result solve_two_pass_reference(const float* z, int64_t N, int64_t K, const Options& o) {
  if (K < 1 || N < K) SLN_FAIL(Range, "SLN_INVALID_SHAPE", "sinkhorn (two-pass reference): need N >= K >= 1, got N=" << N << ", K=" << K);
  if (!(o.lambda > 0)) SLN_FAIL(Range, "SLN_INVALID_ARGUMENT", "sinkhorn (two-pass reference): lambda must be > 0");
  if (o.max_iters < 1 || o.threads < 1) SLN_FAIL(Range, "SLN_INVALID_ARGUMENT", "sinkhorn (two-pass reference): maxIters and threads must be >= 1");
  const uint64_t need = static_cast<uint64_t>(N) * static_cast<uint64_t>(K) * 8 + static_cast<uint64_t>(N) * 24;
  if (o.memory_budget && need > o.memory_budget)
    SLN_FAIL(OutOfMemory, "SLN_OUT_OF_MEMORY", "sinkhorn (two-pass reference): needs " << need << " bytes");
  auto now = [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
  const int nt = o.threads;
  const int64_t nb = std::min<int64_t>(N, 256), rows = (N + nb - 1) / nb;
  const double inv_n = 1.0 / static_cast<double>(N), inv_k = 1.0 / static_cast<double>(K);
  const double t0 = now();

  // same allocation as the fused solver, so the comparison is about passes, not page faults
  MatrixMemory P_mem(static_cast<size_t>(N) * static_cast<size_t>(K) * sizeof(double));
  struct {
    double* p;
    double* get() const { return p; }
    double& operator[](size_t i) const { return p[i]; }
  } P{static_cast<double*>(P_mem.data())};  // (N, K)
  // P = softmax(z); P **= lambda
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t j = 0; j < N; ++j) {
    const float* zr = z + j * K;
    double* p = P.get() + j * K;
    double m = -std::numeric_limits<double>::infinity(), s = 0;
    for (int64_t k = 0; k < K; ++k) m = std::max(m, static_cast<double>(zr[k]));
    for (int64_t k = 0; k < K; ++k) s += (p[k] = std::exp(static_cast<double>(zr[k]) - m));
    for (int64_t k = 0; k < K; ++k) p[k] /= s;
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < N * K; ++i) P[i] = std::pow(P[i], o.lambda);

  std::vector<double> c(N, inv_n), c_new(N), r(K), part(static_cast<size_t>(nb) * K), errp(nb);
  Result res;
  res.build_seconds = now() - t0;
  const double t1 = now();
  double err = 1e6;
  int counter = 0;
  std::vector<double> iter_times;
  while (err > o.tol && counter < o.max_iters) {
    const double t_it = now();
    // pass 1: r = inv_K / (P^T c)
#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(static)
      for (int64_t b = 0; b < nb; ++b) {
        double* cs = part.data() + b * K;
        std::fill(cs, cs + K, 0.0);
        for (int64_t j = b * rows; j < std::min(N, (b + 1) * rows); ++j) {
          const double* p = P.get() + j * K;
          for (int64_t k = 0; k < K; ++k) cs[k] += p[k] * c[j];
        }
      }
#pragma omp for schedule(static)
      for (int64_t k = 0; k < K; ++k) {
        double s = 0;
        for (int64_t b = 0; b < nb; ++b) s += part[b * K + k];
        r[k] = inv_k / s;
      }
      // pass 2: c_new = inv_N / (P r)
#pragma omp for schedule(static)
      for (int64_t j = 0; j < N; ++j) {
        const double* p = P.get() + j * K;
        double s[4] = {0, 0, 0, 0};
        int64_t k = 0;
        for (; k + 4 <= K; k += 4)
          for (int q = 0; q < 4; ++q) s[q] += p[k + q] * r[k + q];
        for (int q = 0; k < K; ++k, ++q) s[q] += p[k] * r[k];
        c_new[j] = inv_n / ((s[0] + s[1]) + (s[2] + s[3]));
      }
    }
    if (counter % 10 == 0) {
#pragma omp parallel for num_threads(nt) schedule(static)
      for (int64_t b = 0; b < nb; ++b) {
        double e = 0;
        for (int64_t j = b * rows; j < std::min(N, (b + 1) * rows); ++j) {
          double v = std::fabs(c[j] / c_new[j] - 1.0);
          if (!std::isnan(v)) e += v;  // np.nansum
        }
        errp[b] = e;
      }
      err = 0;
      for (int64_t b = 0; b < nb; ++b) err += errp[b];
    }
    c.swap(c_new);
    ++counter;
    iter_times.push_back(now() - t_it);
  }
  res.solve_seconds = now() - t1;
  res.median_iter_seconds = median(iter_times);
  res.iterations = counter;
  res.error = err;
  res.converged = err <= o.tol;
  if (!res.converged) res.warning = "two-pass reference stopped at maxIters";
  // labels: argmax_k (P[j,k] * c[j]) * r[k]; cost = -(1/lambda) sum_j log P[j, label] / N
  res.labels.assign(N, 0);
  std::vector<double> costp(nb, 0.0);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    double s = 0;
    for (int64_t j = b * rows; j < std::min(N, (b + 1) * rows); ++j) {
      const double* p = P.get() + j * K;
      int32_t bi = 0;
      double best = -1;
      for (int64_t k = 0; k < K; ++k) {
        double v = (p[k] * c[j]) * r[k];
        if (v > best) {  // NaN never wins (np.nanargmax)
          best = v;
          bi = static_cast<int32_t>(k);
        }
      }
      res.labels[j] = bi;
      s += std::log(p[bi]);
    }
    costp[b] = s;
  }
  double cs = 0;
  for (int64_t b = 0; b < nb; ++b) cs += costp[b];
  res.cost = -(1.0 / o.lambda) * cs / static_cast<double>(N);
  res.counts.assign(K, 0);
  for (int64_t j = 0; j < N; ++j) res.counts[res.labels[j]]++;
  res.log_r.resize(K);
  for (int64_t k = 0; k < K; ++k) res.log_r[k] = std::log(r[k]);
  res.log_c.resize(N);
  for (int64_t j = 0; j < N; ++j) res.log_c[j] = std::log(c[j]);
  return res;
}

}  // namespace sln::sinkhorn
