// Spectral clustering (see spectral.h).
#include "core/spectral.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/eigen.h"
#include "core/kmeans.h"
#include "core/knn.h"
#include "sln/errors.h"

namespace sln::spectral {

Result run(const float* x, int64_t n, int64_t d, int64_t k, const Options& o) {
  SLN_CHECK_ARG(n >= 2 && d >= 1, "spectral: need n >= 2 rows and d >= 1, got n " << n << ", d " << d);
  SLN_CHECK_ARG(k >= 1 && k <= n, "spectral: k = " << k << " must be in [1, n = " << n << "]");
  SLN_CHECK_ARG(o.neighbors >= 1 && o.restarts >= 1 && o.dims >= 0, "spectral: bad options");
  for (int64_t i = 0; i < n * d; ++i)
    if (!std::isfinite(x[i])) SLN_FAIL(Range, "SLN_NONFINITE", "spectral: row " << i / d << " holds NaN or Inf");
  const int threads = std::max(1, o.threads);
  Result r;
  // 1. projection
  std::vector<float> proj;
  const float* rows = x;
  int64_t dd = d;
  if (o.dims > 0 && o.dims < d) {
    // basis: the mean direction first (the rows' common offset carries their cosine
    // geometry), then the principal directions orthogonalised against it
    const std::vector<float> pc = eigen::principal_directions(x, n, d, o.dims, 2, o.seed, threads);
    std::vector<double> basis;  // (m, d) row-major, orthonormal rows
    std::vector<double> v(static_cast<size_t>(d), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j) v[j] += x[i * d + j];
    auto add = [&](std::vector<double> u) {
      for (size_t b = 0; b < basis.size() / d; ++b) {
        double dot = 0;
        for (int64_t j = 0; j < d; ++j) dot += u[j] * basis[b * d + j];
        for (int64_t j = 0; j < d; ++j) u[j] -= dot * basis[b * d + j];
      }
      double s2 = 0;
      for (double t : u) s2 += t * t;
      if (s2 <= 1e-12) return;  // already spanned
      for (double& t : u) t /= std::sqrt(s2);
      basis.insert(basis.end(), u.begin(), u.end());
    };
    {
      double s2 = 0;
      for (double t : v) s2 += t * t;
      if (s2 > 0) {
        for (double& t : v) t /= std::sqrt(s2);
        add(v);
      }
    }
    for (int64_t c = 0; c < o.dims && static_cast<int64_t>(basis.size()) / d < o.dims; ++c) {
      for (int64_t j = 0; j < d; ++j) v[j] = pc[j * o.dims + c];
      add(v);
    }
    dd = static_cast<int64_t>(basis.size()) / d;
    if (dd == 0) dd = d;  // every row zero: nothing to project on, the rows as given
    else {
      proj.assign(static_cast<size_t>(n * dd), 0.0f);
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < dd; ++c) {
          double s = 0;
          for (int64_t j = 0; j < d; ++j) s += static_cast<double>(x[i * d + j]) * basis[c * d + j];
          proj[i * dd + c] = static_cast<float>(s);
        }
      rows = proj.data();
    }
  }
  r.dims = dd;
  // 2. kNN graph (union of the directed neighbour lists)
  const int64_t nb = std::min(o.neighbors, n - 1);
  const knn::TopK t = knn::topk(rows, n, rows, n, dd, nb + 1, 1024, 8192, threads);
  std::vector<std::vector<int32_t>> adj(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t taken = 0;
    for (int64_t j = 0; j < t.k && taken < nb; ++j) {
      const int32_t c = t.idx[i * t.k + j];
      if (c == i || c < 0) continue;
      adj[i].push_back(c);
      adj[c].push_back(static_cast<int32_t>(i));
      ++taken;
    }
  }
  eigen::Csr a;
  a.n = n;
  a.ptr.assign(static_cast<size_t>(n + 1), 0);
  for (int64_t i = 0; i < n; ++i) {
    auto& l = adj[i];
    std::sort(l.begin(), l.end());
    l.erase(std::unique(l.begin(), l.end()), l.end());
    a.ptr[i + 1] = a.ptr[i] + static_cast<int64_t>(l.size());
  }
  a.col.reserve(static_cast<size_t>(a.ptr[n]));
  for (auto& l : adj) a.col.insert(a.col.end(), l.begin(), l.end());
  adj.clear();
  adj.shrink_to_fit();
  r.edges = a.ptr[n] / 2;
  std::vector<double> dinv(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) dinv[i] = 1 / std::sqrt(static_cast<double>(a.ptr[i + 1] - a.ptr[i]));
  a.val.resize(a.col.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t e = a.ptr[i]; e < a.ptr[i + 1]; ++e) a.val[e] = dinv[i] * dinv[a.col[e]];
  // 3. spectral embedding
  eigen::EigOptions eo;
  eo.seed = o.seed;
  eo.threads = threads;
  const eigen::EigResult er = eigen::top_eigen(a, k, eo);
  r.eigenvalues = er.values;
  r.residual = er.residual;
  r.products = er.products;
  std::vector<float> emb(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < k; ++j) s += er.vectors[i * k + j] * er.vectors[i * k + j];
    const double inv = s > 0 ? 1 / std::sqrt(s) : 0;
    for (int64_t j = 0; j < k; ++j) emb[i * k + j] = static_cast<float>(er.vectors[i * k + j] * inv);
  }
  // 4. k-means on the embedding
  kmeans::Options ko;
  ko.restarts = o.restarts;
  ko.seed = o.seed;
  ko.threads = threads;
  kmeans::Result kr = kmeans::run(emb.data(), n, k, k, ko);
  r.labels = std::move(kr.labels);
  int64_t same = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t e = a.ptr[i]; e < a.ptr[i + 1]; ++e) same += r.labels[i] == r.labels[a.col[e]];
  r.within = a.ptr[n] > 0 ? static_cast<double>(same) / static_cast<double>(a.ptr[n]) : 1.0;
  return r;
}

}  // namespace sln::spectral
