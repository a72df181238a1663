// Clustering metrics: contingency table, NMI, AMI (exact expected mutual
// information), ARI, and cluster accuracy through a linear sum assignment.
// Plain C++ (no napi); bad input throws sln::Error. Formulas follow
// scikit-learn 1.2 (sklearn.metrics.cluster._supervised and
// _expected_mutual_info_fast.pyx) so that values agree to rounding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sln::metrics {

// Labels mapped to 0..K-1 in increasing order of the original value.
struct Compacted {
  std::vector<int32_t> ids;     // (N,) compact id of each sample
  std::vector<int32_t> values;  // (K,) original label of each compact id, ascending
};
// Labels must be >= 0; `what` names the argument in the error message.
Compacted compact_labels(const int32_t* labels, size_t n, const char* what);

// Sparse contingency table of two labelings of the same N samples.
// Rows index the compacted labels of `a`, columns those of `b`.
struct Contingency {
  int64_t n = 0;                  // samples
  int32_t rows = 0, cols = 0;     // distinct labels in a, in b
  std::vector<int64_t> row_sums;  // (rows,)
  std::vector<int64_t> col_sums;  // (cols,)
  // Non-zero cells in row-major order: cell k is (ri[k], ci[k]) with count nz[k].
  std::vector<int32_t> ri, ci;
  std::vector<int64_t> nz;
  std::vector<int32_t> row_values, col_values;  // original label of each row / column
};
// name_a / name_b name the arguments in error messages.
Contingency contingency(const int32_t* a, const int32_t* b, size_t n, const char* name_a = "a",
                        const char* name_b = "b");

// Entropy (nats) of a marginal, sklearn's entropy(): 0 for one label, 1 for none.
double entropy(const std::vector<int64_t>& counts, int64_t n);
// sklearn's mutual_info_score on a contingency table (nats).
double mutual_info(const Contingency& c);

// Expected mutual information of two labelings with these marginals under the
// hypergeometric (permutation) model. `fast` groups equal marginals and sums,
// for each pair, only the nij range where exp(log term) is not exactly 0 in
// double (the hypergeometric pmf is log-concave, so that range is found by
// walking out from the mode); every term is computed with the same lgamma
// formula as `naive`, which is sklearn's triple loop verbatim. threads >= 1.
double expected_mutual_info_naive(const std::vector<int64_t>& a, const std::vector<int64_t>& b, int64_t n);
double expected_mutual_info(const std::vector<int64_t>& a, const std::vector<int64_t>& b, int64_t n, int threads);

struct Scores {
  double nmi = 0, ami = 0, ari = 0;
  double mi = 0, emi = 0, h_a = 0, h_b = 0;
};
enum : unsigned { kNMI = 1, kAMI = 2, kARI = 4 };
// Computes the metrics named in `which` (bit mask of kNMI|kAMI|kARI); the
// others are left 0. Special cases as sklearn (N = 0 or both labelings a
// single label: 1.0).
Scores scores(const Contingency& c, unsigned which, int threads);

// Linear sum assignment on a dense (nr, nc) cost matrix, row-major: a
// minimum-cost (or maximum with maximize) matching of min(nr, nc) pairs.
// Shortest augmenting path with dual potentials (Jonker-Volgenant style, as
// Crouse 2016 / scipy.optimize.linear_sum_assignment), O(min^2 * max).
// Returns col_for_row (nr,), -1 for rows left unmatched when nr > nc.
// Costs must be finite.
std::vector<int32_t> linear_sum_assignment(const double* cost, int32_t nr, int32_t nc, bool maximize);

struct Accuracy {
  int64_t n = 0;
  int64_t matched_correct = 0;   // samples in matched (cluster, class) cells
  int64_t majority_correct = 0;  // samples in each cluster's majority class
  std::vector<int32_t> cluster_values, class_values;
  std::vector<int32_t> matched_class;   // (clusters,) compact class id or -1
  std::vector<int32_t> majority_class;  // (clusters,) compact class id
};
// Largest K x C the dense matching accepts (a RangeError names it when exceeded).
constexpr int64_t kMaxAssignmentCells = int64_t(1) << 25;  // two dense double copies: 512 MiB
// a = predicted clusters, b = true classes.
Accuracy cluster_accuracy(const Contingency& c);

}  // namespace sln::metrics
