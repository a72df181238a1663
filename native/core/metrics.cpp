// Clustering metrics; see metrics.h. Notation as scikit-learn: a contingency
// table n_ij over R row labels and C column labels, row sums a_i, column sums
// b_j, N samples. Logs are natural.
#include "core/metrics.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "sln/errors.h"

namespace sln::metrics {

namespace {

// lgamma without the global `signgam` write (lgamma is not thread-safe there).
inline double lgam(double x) {
  int sign;
  return lgamma_r(x, &sign);
}

// Neumaier-compensated sum: numpy sums with pairwise summation, so a plain
// running sum would differ from scikit-learn by more than the terms' rounding.
struct Sum {
  double s = 0, c = 0;
  void add(double x) {
    double t = s + x;
    if (std::fabs(s) >= std::fabs(x)) c += (s - t) + x;
    else c += (x - t) + s;
    s = t;
  }
  double value() const { return s + c; }
};

}  // namespace

Compacted compact_labels(const int32_t* labels, size_t n, const char* what) {
  Compacted out;
  out.ids.resize(n);
  int32_t mx = -1;
  for (size_t i = 0; i < n; i++) {
    int32_t v = labels[i];
    if (v < 0) SLN_FAIL(Range, "SLN_BAD_LABEL", what << ": labels must be non-negative integers, got " << v << " at index " << i);
    if (v > mx) mx = v;
  }
  if (n == 0) return out;
  // A lookup table when the label range is comparable to N, else sort + search.
  if (static_cast<int64_t>(mx) <= 2 * static_cast<int64_t>(n) + (int64_t(1) << 20)) {
    std::vector<int32_t> map(static_cast<size_t>(mx) + 1, 0);
    for (size_t i = 0; i < n; i++) map[labels[i]] = 1;
    int32_t k = 0;
    for (int32_t v = 0; v <= mx; v++) {
      if (map[v]) {
        map[v] = k++;
        out.values.push_back(v);
      }
    }
    for (size_t i = 0; i < n; i++) out.ids[i] = map[labels[i]];
  } else {
    out.values.assign(labels, labels + n);
    std::sort(out.values.begin(), out.values.end());
    out.values.erase(std::unique(out.values.begin(), out.values.end()), out.values.end());
    for (size_t i = 0; i < n; i++)
      out.ids[i] = static_cast<int32_t>(std::lower_bound(out.values.begin(), out.values.end(), labels[i]) - out.values.begin());
  }
  return out;
}

Contingency contingency(const int32_t* a, const int32_t* b, size_t n, const char* name_a, const char* name_b) {
  Compacted ca = compact_labels(a, n, name_a);
  Compacted cb = compact_labels(b, n, name_b);
  Contingency c;
  c.n = static_cast<int64_t>(n);
  c.rows = static_cast<int32_t>(ca.values.size());
  c.cols = static_cast<int32_t>(cb.values.size());
  c.row_values = std::move(ca.values);
  c.col_values = std::move(cb.values);
  c.row_sums.assign(c.rows, 0);
  c.col_sums.assign(c.cols, 0);
  for (size_t k = 0; k < n; k++) {
    c.row_sums[ca.ids[k]]++;
    c.col_sums[cb.ids[k]]++;
  }
  const int64_t cells = static_cast<int64_t>(c.rows) * c.cols;
  if (cells <= std::max<int64_t>(4 * c.n, int64_t(1) << 22)) {
    std::vector<int64_t> dense(static_cast<size_t>(cells), 0);  // (rows, cols)
    for (size_t k = 0; k < n; k++) dense[static_cast<size_t>(ca.ids[k]) * c.cols + cb.ids[k]]++;
    for (int32_t i = 0; i < c.rows; i++) {
      const int64_t* row = dense.data() + static_cast<size_t>(i) * c.cols;
      for (int32_t j = 0; j < c.cols; j++) {
        if (row[j]) {
          c.ri.push_back(i);
          c.ci.push_back(j);
          c.nz.push_back(row[j]);
        }
      }
    }
  } else {
    std::vector<int64_t> keys(n);  // row * cols + col, sorted = row-major
    for (size_t k = 0; k < n; k++) keys[k] = static_cast<int64_t>(ca.ids[k]) * c.cols + cb.ids[k];
    std::sort(keys.begin(), keys.end());
    for (size_t k = 0; k < n;) {
      size_t e = k;
      while (e < n && keys[e] == keys[k]) e++;
      c.ri.push_back(static_cast<int32_t>(keys[k] / c.cols));
      c.ci.push_back(static_cast<int32_t>(keys[k] % c.cols));
      c.nz.push_back(static_cast<int64_t>(e - k));
      k = e;
    }
  }
  return c;
}

double entropy(const std::vector<int64_t>& counts, int64_t n) {
  if (n == 0) return 1.0;
  size_t nonzero = 0;
  for (int64_t v : counts) nonzero += v > 0;
  if (nonzero == 1) return 0.0;
  const double log_n = std::log(static_cast<double>(n));
  Sum s;
  for (int64_t v : counts) {
    if (v <= 0) continue;
    double p = static_cast<double>(v);
    s.add((p / static_cast<double>(n)) * (std::log(p) - log_n));
  }
  return -s.value();
}

double mutual_info(const Contingency& c) {
  if (c.rows == 1 || c.cols == 1 || c.n == 0) return 0.0;
  const double nn = static_cast<double>(c.n);
  const double log_n = std::log(nn);
  const double eps = std::numeric_limits<double>::epsilon();
  Sum s;
  for (size_t k = 0; k < c.nz.size(); k++) {
    const double v = static_cast<double>(c.nz[k]);
    const double cnm = v / nn;
    const int64_t outer = c.row_sums[c.ri[k]] * c.col_sums[c.ci[k]];
    const double log_outer = -std::log(static_cast<double>(outer)) + log_n + log_n;
    double mi = cnm * (std::log(v) - log_n) + cnm * log_outer;
    if (std::fabs(mi) < eps) mi = 0.0;  // as sklearn
    s.add(mi);
  }
  return std::max(0.0, s.value());
}

// sklearn's expected_mutual_information, loop for loop.
double expected_mutual_info_naive(const std::vector<int64_t>& a, const std::vector<int64_t>& b, int64_t n) {
  if (a.size() <= 1 || b.size() <= 1) return 0.0;
  const double N = static_cast<double>(n);
  const double log_N = std::log(N), gln_N = lgam(N + 1);
  double emi = 0.0;
  for (size_t i = 0; i < a.size(); i++) {
    const double ai = static_cast<double>(a[i]);
    for (size_t j = 0; j < b.size(); j++) {
      const double bj = static_cast<double>(b[j]);
      const double base = lgam(ai + 1) + lgam(bj + 1) + lgam(N - ai + 1) + lgam(N - bj + 1) - gln_N;
      const int64_t start = std::max<int64_t>(1, a[i] - n + b[j]);
      const int64_t end = std::min(a[i], b[j]) + 1;
      for (int64_t nij = start; nij < end; nij++) {
        const double x = static_cast<double>(nij);
        const double term2 = (log_N + std::log(x)) - std::log(ai) - std::log(bj);
        const double gln = base - lgam(x + 1) - lgam(ai - x + 1) - lgam(bj - x + 1) - lgam(N - ai - bj + x + 1);
        emi += (x / N) * term2 * std::exp(gln);
      }
    }
  }
  return emi;
}

namespace {

// Values and multiplicities of a marginal, ascending.
void group(const std::vector<int64_t>& v, std::vector<int64_t>& val, std::vector<double>& cnt) {
  std::vector<int64_t> s(v);
  std::sort(s.begin(), s.end());
  for (size_t k = 0; k < s.size();) {
    size_t e = k;
    while (e < s.size() && s[e] == s[k]) e++;
    val.push_back(s[k]);
    cnt.push_back(static_cast<double>(e - k));
    k = e;
  }
}

}  // namespace

double expected_mutual_info(const std::vector<int64_t>& a, const std::vector<int64_t>& b, int64_t n, int threads) {
  if (a.size() <= 1 || b.size() <= 1) return 0.0;
  // Pairs of rows with equal sums contribute equal sums: group by value.
  std::vector<int64_t> av, bv;
  std::vector<double> ac, bc;
  group(a, av, ac);
  group(b, bv, bc);
  const int64_t M = std::max(av.back(), bv.back());
  const double N = static_cast<double>(n);
  const double log_N = std::log(N);
  // lgamma(m + 1) for the small arguments m in [0, M] and the large ones
  // m in [big0, N] (N - a, N - b, N, N - a - b + nij all lie there).
  std::vector<double> lf(static_cast<size_t>(M) + 1), logk(static_cast<size_t>(M) + 1);
  const int64_t big0 = std::max<int64_t>(0, n - 2 * M);
  std::vector<double> lfb(static_cast<size_t>(n - big0) + 1);
  const int nt = std::max(1, threads);
#pragma omp parallel num_threads(nt)
  {
#pragma omp for schedule(static)
    for (int64_t m = 0; m <= M; m++) {
      lf[m] = lgam(static_cast<double>(m) + 1);
      logk[m] = std::log(static_cast<double>(m));
    }
#pragma omp for schedule(static)
    for (int64_t m = big0; m <= n; m++) lfb[m - big0] = lgam(static_cast<double>(m) + 1);
  }
  const double* LF = lf.data();
  const double* LG = logk.data();
  const double* LFB = lfb.data() - big0;  // LFB[m] = lgamma(m + 1) for m >= big0
  const double gln_N = LFB[n];
  // exp(x) is exactly 0 in double for x < -745.14; terms with gln below this
  // cut are exactly 0 in sklearn's loop too. log-concavity of the
  // hypergeometric pmf makes {nij : gln >= cut} an interval around the mode.
  constexpr double kCut = -750.0;
  std::vector<double> row_part(av.size(), 0.0);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int64_t i = 0; i < static_cast<int64_t>(av.size()); i++) {
    const int64_t A = av[i];
    const double log_A = LG[A];
    double acc = 0.0;
    for (size_t j = 0; j < bv.size(); j++) {
      const int64_t B = bv[j];
      const int64_t lo = std::max<int64_t>(1, A + B - n), hi = std::min(A, B);
      if (lo > hi) continue;
      const double base = LF[A] + LF[B] + LFB[n - A] + LFB[n - B] - gln_N;
      const double t2 = log_N - log_A - LG[B];
      const int64_t off = n - A - B;  // N - a - b + nij = off + nij
      // Mode of the hypergeometric distribution, clamped to the summed range.
      int64_t mode = static_cast<int64_t>((static_cast<double>(A + 1) * static_cast<double>(B + 1)) / (N + 2));
      mode = std::min(std::max(mode, lo), hi);
      double s = 0.0;
      for (int64_t x = mode; x <= hi; x++) {
        const double gln = base - LF[x] - LF[A - x] - LF[B - x] - LFB[off + x];
        if (gln < kCut) break;
        s += (static_cast<double>(x) / N) * (t2 + LG[x]) * std::exp(gln);
      }
      for (int64_t x = mode - 1; x >= lo; x--) {
        const double gln = base - LF[x] - LF[A - x] - LF[B - x] - LFB[off + x];
        if (gln < kCut) break;
        s += (static_cast<double>(x) / N) * (t2 + LG[x]) * std::exp(gln);
      }
      acc += bc[j] * s;
    }
    row_part[i] = ac[i] * acc;
  }
  double emi = 0.0;  // fixed order: the result does not depend on the thread count
  for (double v : row_part) emi += v;
  return emi;
}

Scores scores(const Contingency& c, unsigned which, int threads) {
  Scores s;
  if (c.n == 0 || (c.rows == 1 && c.cols == 1)) {
    // sklearn: no split at all (or no data) is a perfect match.
    s.nmi = (which & kNMI) ? 1.0 : 0.0;
    s.ami = (which & kAMI) ? 1.0 : 0.0;
    s.ari = (which & kARI) ? 1.0 : 0.0;
    return s;
  }
  if (which & (kNMI | kAMI)) {
    s.mi = mutual_info(c);
    s.h_a = entropy(c.row_sums, c.n);
    s.h_b = entropy(c.col_sums, c.n);
    const double normalizer = 0.5 * (s.h_a + s.h_b);  // arithmetic mean
    if (which & kNMI) s.nmi = s.mi == 0.0 ? 0.0 : s.mi / normalizer;
    if (which & kAMI) {
      s.emi = expected_mutual_info(c.row_sums, c.col_sums, c.n, threads);
      double den = normalizer - s.emi;
      const double eps = std::numeric_limits<double>::epsilon();
      den = den < 0 ? std::min(den, -eps) : std::max(den, eps);
      s.ami = (s.mi - s.emi) / den;
    }
  }
  if (which & kARI) {
    // sklearn's pair confusion matrix (ordered pairs), exact in integers.
    using i128 = __int128;
    const int64_t n = c.n;
    int64_t ss = 0, sr = 0, sc = 0;
    for (int64_t v : c.nz) ss += v * v;
    for (int64_t v : c.row_sums) sr += v * v;
    for (int64_t v : c.col_sums) sc += v * v;
    const i128 tp = ss - n;
    const i128 fp = sc - ss;  // sklearn's C[0, 1]: pairs together in b, apart in a
    const i128 fn = sr - ss;  // C[1, 0]: together in a, apart in b
    const i128 tn = static_cast<i128>(n) * n - fp - fn - ss;
    if (fn == 0 && fp == 0) {
      s.ari = 1.0;
    } else {
      const i128 num = 2 * (tp * tn - fn * fp);
      const i128 den = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn);
      s.ari = static_cast<double>(num) / static_cast<double>(den);
    }
  }
  return s;
}

std::vector<int32_t> linear_sum_assignment(const double* cost_in, int32_t nr0, int32_t nc0, bool maximize) {
  SLN_CHECK_ARG(nr0 >= 0 && nc0 >= 0, "linear_sum_assignment: negative shape (" << nr0 << ", " << nc0 << ")");
  std::vector<int32_t> result(nr0, -1);
  if (nr0 == 0 || nc0 == 0) return result;
  const bool transpose = nc0 < nr0;
  const int32_t nr = transpose ? nc0 : nr0, nc = transpose ? nr0 : nc0;  // nr <= nc
  // Non-negative working costs (same optimal matchings): c - min, or max - c.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  const size_t cells = static_cast<size_t>(nr) * nc;
  for (size_t k = 0; k < cells; k++) {
    const double v = cost_in[k];
    if (!std::isfinite(v))
      SLN_FAIL(Range, "SLN_BAD_COST", "linear_sum_assignment: cost matrix (" << nr0 << ", " << nc0 << ") has a non-finite entry " << v << " at flat index " << k);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  std::vector<double> cost(cells);  // (nr, nc)
  for (int32_t r = 0; r < nr0; r++) {
    for (int32_t q = 0; q < nc0; q++) {
      const double v = cost_in[static_cast<size_t>(r) * nc0 + q];
      const double w = maximize ? hi - v : v - lo;
      if (transpose) cost[static_cast<size_t>(q) * nc + r] = w;
      else cost[static_cast<size_t>(r) * nc + q] = w;
    }
  }

  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(nr, 0.0), v(nc, 0.0), dist(nc);  // row, column potentials; path lengths
  std::vector<int32_t> path(nc, -1), col4row(nr, -1), row4col(nc, -1), remaining(nc);
  std::vector<char> SR(nr), SC(nc);
  double* U = u.data();
  double* V = v.data();
  double* D = dist.data();
  int32_t* P = path.data();
  int32_t* R4C = row4col.data();
  int32_t* REM = remaining.data();

  for (int32_t cur = 0; cur < nr; cur++) {
    // Dijkstra over reduced costs from row `cur` to the nearest free column.
    std::fill(SR.begin(), SR.end(), 0);
    std::fill(SC.begin(), SC.end(), 0);
    std::fill(dist.begin(), dist.end(), inf);
    int32_t nrem = nc;
    for (int32_t k = 0; k < nc; k++) REM[k] = nc - k - 1;
    double min_val = 0.0;
    int32_t i = cur, sink = -1;
    while (sink == -1) {
      SR[i] = 1;
      const double* crow = cost.data() + static_cast<size_t>(i) * nc;
      const double base = min_val - U[i];
      double lowest = inf;
      int32_t index = -1;
      for (int32_t k = 0; k < nrem; k++) {
        const int32_t j = REM[k];
        const double r = base + crow[j] - V[j];
        if (r < D[j]) {
          P[j] = i;
          D[j] = r;
        }
        // Among equal minima prefer a free column: ends the search early,
        // which matters for integer costs with many ties (contingency tables).
        if (D[j] < lowest || (D[j] == lowest && R4C[j] == -1)) {
          lowest = D[j];
          index = k;
        }
      }
      min_val = lowest;
      if (index < 0 || min_val == inf)
        SLN_FAIL(Internal, "SLN_INTERNAL", "linear_sum_assignment: no augmenting path for row " << cur << " of (" << nr << ", " << nc << ")");
      const int32_t j = REM[index];
      if (R4C[j] == -1) sink = j;
      else i = R4C[j];
      SC[j] = 1;
      REM[index] = REM[--nrem];
    }
    // Update the potentials, then flip the augmenting path.
    U[cur] += min_val;
    for (int32_t r = 0; r < nr; r++)
      if (SR[r] && r != cur) U[r] += min_val - D[col4row[r]];
    for (int32_t q = 0; q < nc; q++)
      if (SC[q]) V[q] -= min_val - D[q];
    int32_t j = sink;
    for (;;) {
      const int32_t r = P[j];
      R4C[j] = r;
      std::swap(col4row[r], j);
      if (r == cur) break;
    }
  }
  if (transpose) {
    for (int32_t r = 0; r < nr; r++) result[col4row[r]] = r;
  } else {
    for (int32_t r = 0; r < nr; r++) result[r] = col4row[r];
  }
  return result;
}

Accuracy cluster_accuracy(const Contingency& c) {
  Accuracy acc;
  acc.n = c.n;
  acc.cluster_values = c.row_values;
  acc.class_values = c.col_values;
  acc.matched_class.assign(c.rows, -1);
  acc.majority_class.assign(c.rows, -1);
  if (c.n == 0) return acc;
  const int64_t cells = static_cast<int64_t>(c.rows) * c.cols;
  if (cells > kMaxAssignmentCells)
    SLN_FAIL(Range, "SLN_TOO_LARGE", "clusterAccuracy: " << c.rows << " clusters x " << c.cols << " classes = " << cells
                                      << " cells exceeds the dense matching limit of " << kMaxAssignmentCells
                                      << " cells; use fewer clusters or classes");
  // Majority vote: the first (smallest id) class with the largest count.
  std::vector<int64_t> best(c.rows, 0);
  for (size_t k = 0; k < c.nz.size(); k++) {
    if (c.nz[k] > best[c.ri[k]]) {
      best[c.ri[k]] = c.nz[k];
      acc.majority_class[c.ri[k]] = c.ci[k];
    }
  }
  for (int64_t v : best) acc.majority_correct += v;
  // One-to-one matching maximising the matched counts.
  std::vector<double> w(static_cast<size_t>(cells), 0.0);  // (clusters, classes)
  for (size_t k = 0; k < c.nz.size(); k++) w[static_cast<size_t>(c.ri[k]) * c.cols + c.ci[k]] = static_cast<double>(c.nz[k]);
  acc.matched_class = linear_sum_assignment(w.data(), c.rows, c.cols, true);
  for (int32_t r = 0; r < c.rows; r++) {
    const int32_t q = acc.matched_class[r];
    if (q >= 0) acc.matched_correct += static_cast<int64_t>(w[static_cast<size_t>(r) * c.cols + q]);
  }
  return acc;
}

}  // namespace sln::metrics
