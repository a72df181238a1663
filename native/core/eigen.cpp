// Symmetric eigenproblems for spectral clustering (see eigen.h).
#include "core/eigen.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/splitmix.h"
#include "sln/errors.h"

namespace sln::eigen {

namespace {

constexpr int64_t kChunk = 1024;  // rows per partial sum (fixed: results do not depend on threads)

struct Rng : SplitMix64 {  // + Box-Muller
  double open_uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }  // (0, 1)
  double normal() { return std::sqrt(-2.0 * std::log(open_uniform())) * std::cos(6.283185307179586 * open_uniform()); }
};

// out (m) = the sum over rows i < n of what add_row(i, s) adds into s (m
// values): one partial sum per chunk of kChunk rows, combined in chunk order
// (fixed: the result does not depend on the threads).
template <typename AddRow>
void chunked_sum(int64_t n, int64_t m, double* out, int threads, const AddRow& add_row) {
  const int64_t nc = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(nc * m), 0.0);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < nc; ++c)
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) add_row(i, part.data() + c * m);
  std::fill(out, out + m, 0.0);
  for (int64_t c = 0; c < nc; ++c)
    for (int64_t j = 0; j < m; ++j) out[j] += part[c * m + j];
}

// Element (i, u) of a row-major matrix with p columns, and of x - mu (x float
// (n, d), mu the column means): the left operands of cross and right_multiply.
struct Dense {
  const double* a;
  int64_t p;
  double operator()(int64_t i, int64_t u) const { return a[i * p + u]; }
};
struct Centred {
  const float* x;
  const double* mu;
  int64_t d;
  double operator()(int64_t i, int64_t j) const { return static_cast<double>(x[i * d + j]) - mu[j]; }
};

// out (p, q) = sum over rows i of a_i^T b_i, a (n, p), b (n, q) row-major; chunked_sum's order.
template <typename A>
void cross(const A& a, int64_t p, const double* b, int64_t q, int64_t n, double* out, int threads) {
  chunked_sum(n, p * q, out, threads, [&](int64_t i, double* s) {
    for (int64_t u = 0; u < p; ++u) {
      const double au = a(i, u);
      for (int64_t v = 0; v < q; ++v) s[u * q + v] += au * b[i * q + v];
    }
  });
}

// y (n, q) = x (n, p) r (p, q), row-parallel.
template <typename X>
void right_multiply(const X& x, int64_t n, int64_t p, const double* r, int64_t q, double* y, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    double* yi = y + i * q;
    std::fill(yi, yi + q, 0.0);
    for (int64_t u = 0; u < p; ++u) {
      const double xu = x(i, u);
      for (int64_t v = 0; v < q; ++v) yi[v] += xu * r[u * q + v];
    }
  }
}

// Orthonormalise the p columns of y (n, p) in place (SVQB: y <- y Q L^-1/2 from
// the Gram matrix's eigenpairs, twice). A column that is (numerically) a
// combination of the others is replaced by a random one and the pass repeated.
void orthonormalise(std::vector<double>& y, int64_t n, int64_t p, Rng& rng, int threads) {
  std::vector<double> g(static_cast<size_t>(p * p)), w, q, r(static_cast<size_t>(p * p)), tmp(y.size());
  for (int pass = 0, clean = 0; clean < 2; ++pass) {
    SLN_CHECK_ARG(pass < 20, "eigen: could not orthonormalise a block of " << p << " vectors of length " << n);
    cross(Dense{y.data(), p}, p, y.data(), p, n, g.data(), threads);
    // unit columns first (the span is the same; a column far shorter than the others is not mistaken for a dependent one)
    for (int64_t j = 0; j < p; ++j) r[j * p + j] = g[j * p + j] > 0 ? 1 / std::sqrt(g[j * p + j]) : 1;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < p; ++j) y[i * p + j] *= r[j * p + j];
    for (int64_t u = 0; u < p; ++u)
      for (int64_t v = 0; v < p; ++v) g[u * p + v] *= r[u * p + u] * r[v * p + v];
    sym_eigen(g, p, w, q);
    const double top = std::max(w[0], 1e-300);
    bool redo = false;
    for (int64_t j = 0; j < p; ++j)
      if (!(w[j] > top * 1e-24) || top < 1e-250) {  // rank deficient: eigenvector j's direction replaced by a random one
        redo = true;
        int64_t col = 0;  // the column eigenvector j weighs most
        for (int64_t u = 1; u < p; ++u)
          if (std::fabs(q[u * p + j]) > std::fabs(q[col * p + j])) col = u;
        for (int64_t i = 0; i < n; ++i) y[i * p + col] = rng.normal();
      }
    if (redo) {
      clean = 0;
      continue;
    }
    for (int64_t u = 0; u < p; ++u)
      for (int64_t v = 0; v < p; ++v) r[u * p + v] = q[u * p + v] / std::sqrt(w[v]);
    right_multiply(Dense{y.data(), p}, n, p, r.data(), p, tmp.data(), threads);
    y.swap(tmp);
    ++clean;
  }
}

}  // namespace

void sym_eigen(const std::vector<double>& a_in, int64_t p, std::vector<double>& values, std::vector<double>& vectors) {
  std::vector<double> a(a_in.begin(), a_in.begin() + p * p), v(static_cast<size_t>(p * p), 0.0);
  for (int64_t i = 0; i < p; ++i) v[i * p + i] = 1;
  double total = 0;
  for (double x : a) total += x * x;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (int64_t i = 0; i < p; ++i)
      for (int64_t j = i + 1; j < p; ++j) off += a[i * p + j] * a[i * p + j];
    if (off <= total * 1e-30 || off == 0) break;
    for (int64_t i = 0; i < p; ++i)
      for (int64_t j = i + 1; j < p; ++j) {
        const double aij = a[i * p + j];
        if (aij == 0) continue;
        const double theta = (a[j * p + j] - a[i * p + i]) / (2 * aij);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int64_t k = 0; k < p; ++k) {  // columns i, j
          const double aki = a[k * p + i], akj = a[k * p + j];
          a[k * p + i] = c * aki - s * akj;
          a[k * p + j] = s * aki + c * akj;
        }
        for (int64_t k = 0; k < p; ++k) {  // rows i, j
          const double aik = a[i * p + k], ajk = a[j * p + k];
          a[i * p + k] = c * aik - s * ajk;
          a[j * p + k] = s * aik + c * ajk;
        }
        for (int64_t k = 0; k < p; ++k) {
          const double vki = v[k * p + i], vkj = v[k * p + j];
          v[k * p + i] = c * vki - s * vkj;
          v[k * p + j] = s * vki + c * vkj;
        }
      }
  }
  std::vector<int64_t> order(static_cast<size_t>(p));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return a[x * p + x] > a[y * p + y]; });
  values.assign(static_cast<size_t>(p), 0);
  vectors.assign(static_cast<size_t>(p * p), 0);
  for (int64_t j = 0; j < p; ++j) {
    values[j] = a[order[j] * p + order[j]];
    for (int64_t k = 0; k < p; ++k) vectors[k * p + j] = v[k * p + order[j]];
  }
}

std::vector<float> principal_directions(const float* x, int64_t n, int64_t d, int64_t dims, int64_t power, uint64_t seed,
                                        int threads) {
  SLN_CHECK_ARG(n >= 1 && d >= 1 && dims >= 1 && dims <= d, "eigen: principal_directions needs 1 <= dims <= d, got dims "
                                                                << dims << ", d " << d);
  const int64_t l = std::min({d, n, dims + 10});  // the range finder's block (at most n independent columns)
  const int64_t kept = std::min(dims, l);           // directions beyond it stay zero
  // column means (chunked, in order)
  std::vector<double> mu(static_cast<size_t>(d), 0.0);
  chunked_sum(n, d, mu.data(), threads, [&](int64_t i, double* s) {
    for (int64_t j = 0; j < d; ++j) s[j] += x[i * d + j];
  });
  for (double& m : mu) m /= static_cast<double>(n);
  const Centred xc{x, mu.data(), d};
  Rng rng;
  rng.s = seed ^ 0x9ca5a1d3e7b20f11ull;
  std::vector<double> om(static_cast<size_t>(d * l));
  for (double& v : om) v = rng.normal();
  std::vector<double> y(static_cast<size_t>(n * l)), z(static_cast<size_t>(d * l));
  // y (n, l) = (x - mu) m
  auto times_om = [&](const std::vector<double>& m) { right_multiply(xc, n, d, m.data(), l, y.data(), threads); };
  // z (d, l) = (x - mu)^T y
  auto transpose_times_y = [&]() { cross(xc, d, y.data(), l, n, z.data(), threads); };
  times_om(om);
  for (int64_t it = 0; it < power; ++it) {
    orthonormalise(y, n, l, rng, threads);
    transpose_times_y();
    orthonormalise(z, d, l, rng, threads);
    times_om(z);
  }
  orthonormalise(y, n, l, rng, threads);
  transpose_times_y();  // z = (x - mu)^T q: its columns span the top directions
  std::vector<double> g(static_cast<size_t>(l * l)), w, q;
  cross(Dense{z.data(), l}, l, z.data(), l, d, g.data(), threads);  // z^T z = B B^T
  sym_eigen(g, l, w, q);
  std::vector<float> out(static_cast<size_t>(d * dims), 0.0f);
  for (int64_t c = 0; c < kept; ++c) {
    if (!(w[c] > w[0] * 1e-20) || w[0] <= 0) continue;  // no variance left in this direction
    const double inv = 1 / std::sqrt(w[c]);
    for (int64_t j = 0; j < d; ++j) {
      double s = 0;
      for (int64_t v = 0; v < l; ++v) s += z[j * l + v] * q[v * l + c];
      out[j * dims + c] = static_cast<float>(s * inv);
    }
  }
  return out;
}

void csr_multiply(const Csr& a, const double* x, int64_t p, double* y, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < a.n; ++i) {
    double* yi = y + i * p;
    std::fill(yi, yi + p, 0.0);
    for (int64_t e = a.ptr[i]; e < a.ptr[i + 1]; ++e) {
      const double w = a.val[e];
      const double* xj = x + static_cast<int64_t>(a.col[e]) * p;
      for (int64_t v = 0; v < p; ++v) yi[v] += w * xj[v];
    }
  }
}

EigResult top_eigen(const Csr& a, int64_t nev, const EigOptions& o) {
  const int64_t n = a.n;
  SLN_CHECK_ARG(nev >= 1 && nev <= n, "eigen: top_eigen needs 1 <= nev <= n, got nev " << nev << ", n " << n);
  SLN_CHECK_ARG(o.degree >= 1 && o.max_outer >= 1 && o.tol > 0, "eigen: bad options");
  const int64_t p = std::min(n, nev + std::max<int64_t>(nev, 10));
  Rng rng;
  rng.s = o.seed ^ 0x51ec7a1e5eedull;
  std::vector<double> v(static_cast<size_t>(n * p)), w(v.size()), y0(v.size()), y1(v.size()), y2(v.size());
  for (double& x : v) x = rng.normal();
  EigResult r;
  std::vector<double> h(static_cast<size_t>(p * p)), theta, q, tmp(v.size());
  // Rayleigh-Ritz on the orthonormal block v: theta, v <- v q, w <- a v; residuals of the wanted pairs
  auto rayleigh_ritz = [&]() {
    csr_multiply(a, v.data(), p, w.data(), o.threads);
    ++r.products;
    cross(Dense{v.data(), p}, p, w.data(), p, n, h.data(), o.threads);
    for (int64_t u = 0; u < p; ++u)  // symmetrise the rounding
      for (int64_t t = u + 1; t < p; ++t) h[u * p + t] = h[t * p + u] = 0.5 * (h[u * p + t] + h[t * p + u]);
    sym_eigen(h, p, theta, q);
    right_multiply(Dense{v.data(), p}, n, p, q.data(), p, tmp.data(), o.threads);
    v.swap(tmp);
    right_multiply(Dense{w.data(), p}, n, p, q.data(), p, tmp.data(), o.threads);
    w.swap(tmp);
    double worst = 0;
    for (int64_t j = 0; j < nev; ++j) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) {
        const double e = w[i * p + j] - theta[j] * v[i * p + j];
        s += e * e;
      }
      worst = std::max(worst, std::sqrt(s));
    }
    return worst;
  };
  orthonormalise(v, n, p, rng, o.threads);
  r.residual = rayleigh_ritz();
  while (r.residual > o.tol && r.outer < o.max_outer && p < n) {
    // Chebyshev filter of degree m damping [-1, b]: b = the smallest Ritz value
    const double lo = -1.0, b = std::max(theta[p - 1], lo + 1e-3);
    const double e = (b - lo) / 2, c = (b + lo) / 2;
    // degree capped so the largest eigenvalue (<= 1) is amplified at most ~1e8 over
    // the damped interval: T_m((1 - c) / e) = cosh(m acosh(.)) <= cosh(acosh(1e8))
    const double reach = std::acosh(std::max(1.0 + 1e-12, (1.0 - c) / e));
    const int64_t degree = std::max<int64_t>(1, std::min<int64_t>(o.degree, static_cast<int64_t>(std::acosh(1e8) / reach)));
    y0 = v;
    csr_multiply(a, y0.data(), p, y1.data(), o.threads);
    ++r.products;
    for (size_t i = 0; i < y1.size(); ++i) y1[i] = (y1[i] - c * y0[i]) / e;
    for (int64_t m = 2; m <= degree; ++m) {
      csr_multiply(a, y1.data(), p, y2.data(), o.threads);
      ++r.products;
      for (size_t i = 0; i < y2.size(); ++i) y2[i] = 2 * (y2[i] - c * y1[i]) / e - y0[i];
      y0.swap(y1);
      y1.swap(y2);
    }
    v.swap(y1);
    orthonormalise(v, n, p, rng, o.threads);
    r.residual = rayleigh_ritz();
    ++r.outer;
  }
  r.values.assign(theta.begin(), theta.begin() + nev);
  r.vectors.assign(static_cast<size_t>(n * nev), 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < nev; ++j) r.vectors[i * nev + j] = v[i * p + j];
  return r;
}

}  // namespace sln::eigen
