// The fused float64 Sinkhorn-Knopp solver's driver: see sinkhorn.h for the
// algorithm, the underflow handling and the determinism rule; the kernels it calls
// are in sinkhorn_kernels.cpp. Nothing here throws inside an OpenMP region (an
// exception leaving a region would terminate the process): workers record what
// went wrong and the driver throws after the region.
#include "core/sinkhorn.h"
#include "core/sinkhorn_checks.h"
#include "core/sinkhorn_kernels.h"

// FP operations here never trap (no FP exceptions are enabled): letting GCC assume it
// allows if-conversion, so the exp and flush selects vectorize. Results are unchanged.
#pragma GCC optimize("no-trapping-math", "fp-contract=off")

#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <string>

#include "sln/errors.h"

namespace sln::sinkhorn {

namespace {
using namespace kernels;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fmt_gb(double bytes) {
  char buf[64];
  if (bytes >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  else if (bytes >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  else std::snprintf(buf, sizeof buf, "%.0f bytes", bytes);
  return buf;
}

const char* storage_name(Storage s) { return s == Storage::F64 ? "f64" : "f32"; }

// MemAvailable from /proc/meminfo (bytes); 0 when unknown.
uint64_t mem_available() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  uint64_t val = 0;
  std::string unit;
  while (f >> key >> val) {
    std::getline(f, unit);
    if (key == "MemAvailable:") return val * 1024ull;
  }
  long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  return pages > 0 && psz > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(psz) : 0;
}

// Refuse before allocating anything large.
void check_memory(int64_t n, int64_t k, Storage s, uint64_t budget, uint64_t need) {
  uint64_t avail = budget ? budget : mem_available();
  if (avail == 0 || need <= avail) return;
  std::ostringstream os;
  os << "sinkhorn: the N x K = " << n << " x " << k << " matrix in " << storage_name(s) << " storage needs "
     << fmt_gb(static_cast<double>(need)) << " but only " << fmt_gb(static_cast<double>(avail))
     << " of memory is available; ";
  if (s == Storage::F64)
    os << "use --dtype f32 (float32 storage, float64 accumulation: "
       << fmt_gb(static_cast<double>(planned_bytes(n, k, Storage::F32))) << ")";
  else
    os << "--dtype f32 is already the smallest storage: use fewer images or free memory";
  throw Error(ErrorKind::OutOfMemory, "SLN_OUT_OF_MEMORY", os.str());
}

// One logit of the features variant, in the order sinkhorn.h documents.
inline float feature_logit(const float* f, const float* w, int64_t D, const float* bias, int64_t k) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t d = 0;
  for (; d + 8 <= D; d += 8)
    for (int i = 0; i < 8; ++i) s[i] += static_cast<double>(f[d + i]) * static_cast<double>(w[d + i]);
  for (int i = 0; d < D; ++d, ++i) s[i] += static_cast<double>(f[d]) * static_cast<double>(w[d]);
  double t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  if (bias) t += static_cast<double>(bias[k]);
  return static_cast<float>(t);
}

// Where the logits come from: a (N, K) array, or features x weight^T + bias
// computed block by block into the matrix buffer itself (then turned into A in place).
struct LogitSource {
  const float* z = nullptr;  // logits variant
  const float* features = nullptr;
  const float* weight = nullptr;
  const float* bias = nullptr;
  int64_t d = 0;
  float at(int64_t j, int64_t k, int64_t K) const {
    return z ? z[j * K + k] : feature_logit(features + j * d, weight + k * d, d, bias, k);
  }
};

// Write the logits of rows [j0, j1) into dst (T, row-major K): tiles of 16 rows so
// each weight row is reused from cache.
template <class T>
void compute_feature_logits(const LogitSource& src, int64_t j0, int64_t j1, int64_t K, T* dst) {
  constexpr int64_t tile = 16;
  for (int64_t t0 = j0; t0 < j1; t0 += tile) {
    int64_t t1 = std::min(j1, t0 + tile);
    for (int64_t k = 0; k < K; ++k) {
      const float* w = src.weight + k * src.d;
      for (int64_t j = t0; j < t1; ++j)
        dst[j * K + k] = static_cast<T>(feature_logit(src.features + j * src.d, w, src.d, src.bias, k));
    }
  }
}

void throw_bad_logit(const BadValue& bad, const LogitSource& src) {
  const char* what = std::isnan(bad.value) ? "NaN" : (bad.value > 0 ? "+Inf" : "-Inf");
  if (bad.col < 0)  // a sharded solve: the row is held by another rank (which names the column)
    SLN_FAIL(Range, "SLN_NONFINITE_LOGITS",
             "sinkhorn: logits row " << bad.row << " (image " << bad.row << ", held by another rank) is not finite"
                                     << "; labels need finite logits: check the model's outputs for that image");
  SLN_FAIL(Range, "SLN_NONFINITE_LOGITS",
           "sinkhorn: logits row " << bad.row << " (image " << bad.row << ") has " << what << " at column " << bad.col
                                   << (src.z ? "" : " (computed from its features, the head weight and bias)")
                                   << "; labels need finite logits: check the model's outputs for that image");
}

// The collectives of a sharded solve (Options::shard); with no shard every call is
// local. Blocks' partials are rows of `stride` doubles in `part` (this call's nb
// blocks); after exchange() the rows to reduce are all()[0 .. rows()) in global
// block order: every block (exact or no shard) or one row, the all-reduced sum of
// the ranks' own-block sums (inexact mode).
class Exchange {
 public:
  Exchange(const Shard* sh, const Blocks& B, int64_t stride) : sh_(sh), B_(B), stride_(stride) {
    if (sh_) buf_.resize(static_cast<size_t>(sh_->exact ? B.nb_total : 1) * stride);
  }
  // op: 0 = sum, 1 = max (the reduction the caller applies over rows()).
  void exchange(double* part, int op) {
    part_ = part;
    if (!sh_) return;
    if (sh_->exact) {
      std::vector<int64_t> counts(sh_->ranks);
      for (int r = 0; r < sh_->ranks; ++r) {
        const Blocks o(sh_->n_total, r, sh_->ranks);
        counts[r] = o.nb * stride_;
      }
      sh_->allgather(part, B_.nb * stride_, buf_.data(), counts);
      return;
    }
    for (int64_t i = 0; i < stride_; ++i) {
      double a = op == 0 ? 0.0 : -std::numeric_limits<double>::infinity();
      for (int64_t b = 0; b < B_.nb; ++b) a = op == 0 ? a + part[b * stride_ + i] : std::max(a, part[b * stride_ + i]);
      buf_[i] = a;
    }
    sh_->allreduce(buf_.data(), stride_, op);
  }
  const double* all() const { return sh_ ? buf_.data() : part_; }
  int64_t rows() const { return !sh_ ? B_.nb : sh_->exact ? B_.nb_total : 1; }
  // min over the ranks of a local value (first bad row, smallest log-scale)
  double min(double v) const {
    if (sh_) sh_->allreduce(&v, 1, 2);
    return v;
  }

 private:
  const Shard* sh_;
  const Blocks& B_;
  int64_t stride_;
  double* part_ = nullptr;
  std::vector<double> buf_;
};

template <class T>
Result solve_impl(const LogitSource& src, int64_t N, int64_t K, const Options& o) {
  const Shard* sh = o.shard;
  const int64_t Nt = sh ? sh->n_total : N;  // rows of the whole problem
  check_args(Nt, K, o, "sinkhorn");
  const Blocks B = sh ? Blocks(Nt, sh->rank, sh->ranks) : Blocks(N);
  if (sh && (B.nb < 1 || B.end(B.nb - 1) != N))
    SLN_FAIL(Range, "SLN_INVALID_SHAPE",
             "sinkhorn: rank " << sh->rank << " of " << sh->ranks << " holds rows [" << B.row0 << ", "
                               << B.row0 + (B.nb > 0 ? B.end(B.nb - 1) : 0) << ") of N=" << Nt << ", got " << N
                               << " rows (use shard_rows / shardRows for the split)");
  check_memory(N, K, o.storage, o.memory_budget, planned_bytes(N, K, o.storage));
  const double t_build = now_s();
  const int nt = o.threads;
  const double lambda = o.lambda, inv_n = 1.0 / static_cast<double>(Nt), inv_k = 1.0 / static_cast<double>(K);
  const int64_t Kp = padded_k(K), PS = part_stride(K);

  // + kSlack zeroed bytes: the fused pass reads the last row as Kp entries.
  MatrixMemory A_mem(static_cast<size_t>(N) * static_cast<size_t>(K) * sizeof(T) + kSlack);
  struct {
    T* p;
    T* get() const { return p; }
    T& operator[](size_t i) const { return p[i]; }
  } A{static_cast<T*>(A_mem.data())};  // (N, K) shifted P^lambda
  std::vector<double> rowmax(N), lse(N);   // (N) max_k z, log sum_k exp(z) (for the cost)
  std::vector<double> c(N, inv_n);         // (N) image scaling
  std::vector<double> part(static_cast<size_t>(B.nb) * PS, 0.0);  // (nb, PS) per-block partials
  std::vector<double> M(K), r(Kp, 0.0), r_next(Kp, 0.0);     // (K); r is zero beyond K
  std::vector<BadValue> bad(B.nb);
  std::vector<BlockOut> bo(B.nb);
  Exchange X(sh, B, PS);
  Result res;
  res.labels.assign(N, 0);

  // Build pass 1: row max, logsumexp, finiteness, per-block column max of lambda*(z - rowmax).
#pragma omp parallel num_threads(nt)
  {
    FlushDenormals ftz;
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B.nb; ++b) {
      const int64_t j0 = B.begin(b), j1 = B.end(b);
      double* cm = part.data() + b * PS;
      std::fill(cm, cm + K, -std::numeric_limits<double>::infinity());
      if (src.z) {
        build_pass1(src.z, j0, j1, K, lambda, rowmax.data(), lse.data(), cm, &bad[b]);
      } else {
        compute_feature_logits<T>(src, j0, j1, K, A.get());
        build_pass1(static_cast<const T*>(A.get()), j0, j1, K, lambda, rowmax.data(), lse.data(), cm, &bad[b]);
      }
    }
  }
  {
    const BadValue* first_bad = nullptr;
    for (int64_t b = 0; b < B.nb && !first_bad; ++b)
      if (bad[b].row >= 0) first_bad = &bad[b];  // blocks are in row order: the first is the first bad row
    const double big = std::numeric_limits<double>::infinity();
    const double bad_row = X.min(first_bad ? static_cast<double>(first_bad->row + B.row0) : big);
    if (bad_row < big) {
      BadValue g = first_bad && first_bad->row + B.row0 == static_cast<int64_t>(bad_row) ? *first_bad : BadValue{};
      g.row = static_cast<int64_t>(bad_row);
      if (g.col < 0) g.value = std::numeric_limits<double>::quiet_NaN();  // held by another rank
      throw_bad_logit(g, src);
    }
  }
  X.exchange(part.data(), 1);
  for (int64_t k = 0; k < K; ++k) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t b = 0; b < X.rows(); ++b) m = std::max(m, X.all()[b * PS + k]);
    M[k] = m;  // finite: every logit is finite
  }

  // The reference starts from c = 1/N for P = softmax(z)^lambda, whose rows are B's
  // divided by s_j^lambda (s_j = sum_k exp(z - rowmax)): in B's gauge that start is
  // c_j = (1/N) s_j^-lambda. A common factor on all c_j changes nothing (r absorbs it,
  // err is a ratio), so it is taken relative to the smallest s_j (clamped at e^-600: no denormal c).
  double min_ls = std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < N; ++j) min_ls = std::min(min_ls, lse[j] - rowmax[j]);
  min_ls = X.min(min_ls);

  // Starting r: cold = from that c (the colsums of pass 2); warm = the given log r,
  // moved to A's gauge (+M), shifted so its max is 0 and clamped 600 below it (exp > 0).
  const bool warm = o.warm_log_r != nullptr;
  if (warm) {
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, o.warm_log_r[k] + M[k]);
    for (int64_t k = 0; k < K; ++k) r[k] = exp_nonpos(std::max(o.warm_log_r[k] + M[k] - mx, -600.0));
  }

  // Build pass 2: A = exp(lambda*(z - rowmax) - M), then the first half-step:
  // cold: colsum = A^T (1/N); warm: c = (1/N)/(A r), colsum = A^T c.
  // Pass 2, the iterations and the labels give each thread the same contiguous blocks
  // (schedule static): a thread then rereads what it wrote, from its own core's caches.
  // With dynamic blocks the 60000 x 128 pass took 3x as long on the dev machine, whose
  // two cores do not share a last-level cache (the matrix, 31-61 MB, mostly stays in
  // cache there). The block partition, and so every result, is the same either way.
#pragma omp parallel num_threads(nt)
  {
    FlushDenormals ftz;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B.nb; ++b) {
      double* cs = part.data() + b * PS;
      std::fill(cs, cs + K, 0.0);
      const T* zsrc = A.get();
      if (src.z)
        build_pass2(src.z, A.get(), B.begin(b), B.end(b), K, lambda, rowmax.data(), lse.data(), min_ls, M.data(),
                    warm ? r.data() : nullptr, c.data(), cs, inv_n);
      else
        build_pass2(zsrc, A.get(), B.begin(b), B.end(b), K, lambda, rowmax.data(), lse.data(), min_ls, M.data(),
                    warm ? r.data() : nullptr, c.data(), cs, inv_n);
    }
  }
  // r = (1/K) / (column sums over every block in block order); returns a bad cluster or -1.
  auto reduce_r = [&](std::vector<double>& out) -> int64_t {
    int64_t badk = -1;
    const double* all = X.all();
    const int64_t rows = X.rows();
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t k = 0; k < K; ++k) {
      double s = 0;
      for (int64_t b = 0; b < rows; ++b) s += all[b * PS + k];  // fixed block order
      out[k] = inv_k / s;
    }
    for (int64_t k = 0; k < K && badk < 0; ++k)
      if (!(out[k] > 0 && out[k] < std::numeric_limits<double>::infinity())) badk = k;
    return badk;
  };
  auto range_fail = [&](int it, const char* what, int64_t idx) {
    SLN_FAIL(Range, "SLN_SINKHORN_RANGE",
             "sinkhorn: the scaling of " << what << " " << idx << " left the float64 range at iteration " << it
                                         << " (N=" << Nt << ", K=" << K << ", lambda=" << lambda
                                         << "): lambda is too large for the spread of these logits; lower lambda (--lamb)");
  };
  X.exchange(part.data(), 0);
  if (int64_t bk = reduce_r(r); bk >= 0) range_fail(0, "cluster", bk);
  res.build_seconds = now_s() - t_build;

  // Iterations: one fused pass each; err on check passes (every 10th and the last allowed).
  const double t_solve = now_s();
  std::vector<double> iter_times;
  int it = 0;
  for (;; ++it) {
    const double t_it = now_s();
    const bool check = (it % 10 == 0) || (it == o.max_iters - 1);
    const double* rp = r.data();
    double* cp = c.data();
#pragma omp parallel num_threads(nt)
    {
      FlushDenormals ftz;
#pragma omp for schedule(static)
      for (int64_t b = 0; b < B.nb; ++b) {
        bo[b] = BlockOut{};
        double* pb = part.data() + b * PS;
        fused_block(A.get(), B.begin(b), B.end(b), K, Kp, rp, cp, pb, check, inv_n, &bo[b]);
        pb[Kp] = bo[b].err;
        pb[Kp + 1] = bo[b].bad_row >= 0 ? 1.0 : 0.0;
      }
    }
    X.exchange(part.data(), 0);
    const int64_t bad_k = reduce_r(r_next);
    {
      double nbad = 0;
      for (int64_t b = 0; b < X.rows(); ++b) nbad += X.all()[b * PS + Kp + 1];
      if (nbad > 0) {
        double mine = std::numeric_limits<double>::infinity();
        for (int64_t b = 0; b < B.nb; ++b)
          if (bo[b].bad_row >= 0) {
            mine = static_cast<double>(bo[b].bad_row + B.row0);
            break;
          }
        range_fail(it, "image", static_cast<int64_t>(X.min(mine)));
      }
    }
    if (check) {
      double err = 0;
      for (int64_t b = 0; b < X.rows(); ++b) err += X.all()[b * PS + Kp];
      res.error = err;
    }
    res.iterations = it + 1;
    iter_times.push_back(now_s() - t_it);
    if (check && res.error <= o.tol) {  // the reference loops `while err > tol`
      res.converged = true;
      break;
    }
    if (it + 1 >= o.max_iters) break;
    if (bad_k >= 0) range_fail(it + 1, "cluster", bad_k);
    r.swap(r_next);
  }
  // Labels: argmax_k A[j,k] r[k] with the r that produced the final c (one more pass;
  // an argmax on every check pass cost more than that over a few hundred iterations).
#pragma omp parallel num_threads(nt)
  {
    FlushDenormals ftz;
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B.nb; ++b)
      for (int64_t j = B.begin(b); j < B.end(b); ++j) res.labels[j] = argmax_row(A.get() + j * K, r.data(), K);
  }
  res.solve_seconds = now_s() - t_solve;
  res.median_iter_seconds = median(iter_times);
  if (!res.converged) res.warning = max_iters_warning(o, res.error);

  // Outputs: counts, cost (mean -log softmax(z)[label], the reference's CIFAR cost), scalings.
  // counts and the per-block cost partials travel in part's rows (counts are exact in doubles).
  std::fill(part.begin(), part.end(), 0.0);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t b = 0; b < B.nb; ++b) {
    double s = 0;
    for (int64_t j = B.begin(b); j < B.end(b); ++j) s += lse[j] - static_cast<double>(src.at(j, res.labels[j], K));
    part[b * PS + Kp] = s;
  }
  for (int64_t b = 0; b < B.nb; ++b)
    for (int64_t j = B.begin(b); j < B.end(b); ++j) part[b * PS + res.labels[j]] += 1.0;
  X.exchange(part.data(), 0);
  res.counts.assign(K, 0);
  double cost = 0;
  for (int64_t b = 0; b < X.rows(); ++b) {
    const double* row = X.all() + b * PS;
    for (int64_t k = 0; k < K; ++k) res.counts[k] += static_cast<int32_t>(row[k]);
    cost += row[Kp];
  }
  res.cost = cost / static_cast<double>(Nt);
  set_log_scalings(res, r.data(), M.data(), K, c.data(), N);
  return res;
}

}  // namespace

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

MatrixMemory::MatrixMemory(size_t bytes) {
  const size_t huge = size_t(2) << 20;
  len_ = std::max<size_t>((bytes + huge - 1) / huge * huge, huge);
  void* p = mmap(nullptr, len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
  madvise(p, len_, MADV_HUGEPAGE);  // advice only: without THP it is plain 4 KB pages
#endif
  p_ = p;
}
MatrixMemory::~MatrixMemory() {
  if (p_) munmap(p_, len_);
}

uint64_t planned_bytes(int64_t n, int64_t k, Storage s) {
  const uint64_t N = static_cast<uint64_t>(n), K = static_cast<uint64_t>(k);
  const uint64_t elem = s == Storage::F64 ? 8 : 4;
  const uint64_t nb = static_cast<uint64_t>(std::min<int64_t>(n, kMaxBlocks)), Kp = padded_k(k);
  // matrix (+ slack) + (c, rowmax, lse, log_c) doubles and labels per image + block partials + K vectors
  return N * K * elem + kSlack + N * (4 * 8 + 4) + nb * static_cast<uint64_t>(part_stride(k)) * 8 + 6 * Kp * 8;
}

std::pair<int64_t, int64_t> shard_rows(int64_t n, int rank, int ranks) {
  const Blocks all(n);
  if (ranks < 1 || rank < 0 || rank >= ranks)
    SLN_FAIL(Range, "SLN_INVALID_ARGUMENT", "sinkhorn: rank " << rank << " of " << ranks << " ranks is not a rank");
  if (ranks > all.nb_total)
    SLN_FAIL(Range, "SLN_INVALID_SHAPE", "sinkhorn: " << ranks << " ranks but N=" << n << " rows make only "
                                                      << all.nb_total << " blocks: use at most that many ranks");
  const Blocks B(n, rank, ranks);
  return {B.row0, B.row0 + B.end(B.nb - 1)};
}

Result solve_logits(const float* z, int64_t n, int64_t k, const Options& opt) {
  LogitSource src;
  src.z = z;
  return opt.storage == Storage::F64 ? solve_impl<double>(src, n, k, opt) : solve_impl<float>(src, n, k, opt);
}

Result solve_features(const float* features, int64_t n, int64_t d, const float* weight, const float* bias,
                      int64_t k, const Options& opt) {
  if (d < 1) SLN_FAIL(Range, "SLN_INVALID_SHAPE", "sinkhornFromFeatures: D (feature size) must be >= 1, got D=" << d);
  LogitSource src;
  src.features = features;
  src.weight = weight;
  src.bias = bias;
  src.d = d;
  return opt.storage == Storage::F64 ? solve_impl<double>(src, n, k, opt) : solve_impl<float>(src, n, k, opt);
}

}  // namespace sln::sinkhorn
