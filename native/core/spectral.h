// Spectral clustering of float32 rows (Ng, Jordan, Weiss 2001 on a kNN graph).
//
//   1. Optionally project the rows (uncentred, x V) onto `dims` orthonormal
//      directions: the rows' mean direction, then their top principal
//      directions (eigen::principal_directions) orthogonalised against it; so
//      the cosine geometry is kept up to the dropped low-variance directions.
//      dims = 0 or dims >= d: the rows as given.
//   2. kNN graph on cosine similarity (knn::topk): every row's `neighbors`
//      nearest other rows (the row itself dropped); an edge when either end
//      picked the other (union), weight 1.
//   3. The top-k eigenvectors of the normalised adjacency D^-1/2 A D^-1/2
//      (eigen::top_eigen), each row of the (n, k) block scaled to unit length.
//   4. k-means (kmeans::run, `restarts` runs) of those rows.
// within: the fraction of the graph's edges whose two ends share a cluster
//   (1 - the normalised cut's edge share); a label-free measure of how well
//   the graph splits into k groups.
// Same result for any thread count (every stage is thread-count independent).
#pragma once
#include <cstdint>
#include <vector>

namespace sln::spectral {

struct Options {
  int64_t neighbors = 10;
  int64_t dims = 64;       // principal directions kept before the graph (0: none)
  int64_t restarts = 10;   // k-means runs on the embedding
  uint64_t seed = 0;
  int threads = 1;
};

struct Result {
  std::vector<int32_t> labels;       // (n)
  std::vector<double> eigenvalues;   // (k) descending
  double within = 0;                 // edge share inside clusters
  int64_t edges = 0;                 // undirected edges of the graph
  double residual = 0;               // eigensolver's largest wanted residual
  int64_t products = 0;              // sparse matrix-block products of the eigensolver
  int64_t dims = 0;                  // dimension the graph was built on
};

// Throws sln::Error: k < 1 or k > n, n < 2, a NaN/Inf value (naming the row).
Result run(const float* x, int64_t n, int64_t d, int64_t k, const Options& o);

}  // namespace sln::spectral
