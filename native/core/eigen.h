// Symmetric eigenproblems for spectral clustering (core/spectral.h), float64.
//
// sym_eigen: cyclic Jacobi on a small dense symmetric matrix (p x p, p up to a
//   few hundred): all eigenvalues, descending, and their orthonormal
//   eigenvectors as columns. Sweeps until the off-diagonal mass is below
//   1e-30 of the total (or 100 sweeps).
// principal_directions: the top `dims` principal directions (d, dims) of the
//   rows of x (n, d) (centred by their mean), by a randomised range finder
//   (Halko, Martinsson, Tropp 2011): a seeded Gaussian test block of dims + 10
//   columns, `power` power iterations, each block orthonormalised, then the
//   exact eigenvectors of the small projected Gram matrix.
// top_eigen: the `nev` algebraically largest eigenpairs of a sparse symmetric
//   operator with spectrum in [-1, 1] (the normalised adjacency
//   D^-1/2 A D^-1/2 of a graph), by Chebyshev-filtered subspace iteration
//   (Zhou, Saad 2007): a block of p = nev + max(nev, 10) vectors, a degree-m
//   Chebyshev filter damping [-1, theta_p], orthonormalisation, Rayleigh-Ritz,
//   until every wanted residual ||A v - theta v|| is at most tol.
// Determinism: every sum over rows runs in fixed chunks of rows combined in
// order, so results do not depend on the thread count.
#pragma once
#include <cstdint>
#include <vector>

namespace sln::eigen {

// a (p, p) row-major symmetric; values (p) descending; vectors (p, p) row-major, column j = eigenvector j.
void sym_eigen(const std::vector<double>& a, int64_t p, std::vector<double>& values, std::vector<double>& vectors);

// x (n, d) float32 -> (d, dims) row-major float32 directions (orthonormal columns).
std::vector<float> principal_directions(const float* x, int64_t n, int64_t d, int64_t dims, int64_t power, uint64_t seed,
                                        int threads);

// Symmetric sparse matrix in CSR form with per-entry values.
struct Csr {
  int64_t n = 0;
  std::vector<int64_t> ptr;  // (n + 1)
  std::vector<int32_t> col;  // (nnz)
  std::vector<double> val;   // (nnz)
};

struct EigOptions {
  int64_t degree = 20;      // Chebyshev filter degree per outer iteration
  int64_t max_outer = 300;  // outer iterations at most
  double tol = 1e-5;        // residual norm of each wanted (unit) eigenvector
  uint64_t seed = 0;
  int threads = 1;
};

struct EigResult {
  std::vector<double> values;   // (nev) descending
  std::vector<double> vectors;  // (n, nev) row-major
  double residual = 0;          // largest wanted residual at the end
  int64_t outer = 0;            // outer iterations run
  int64_t products = 0;         // sparse matrix-block products
};

EigResult top_eigen(const Csr& a, int64_t nev, const EigOptions& o);

// y (n, p) = a x (n, p), row-parallel (each row's sum in CSR order).
void csr_multiply(const Csr& a, const double* x, int64_t p, double* y, int threads);

}  // namespace sln::eigen
