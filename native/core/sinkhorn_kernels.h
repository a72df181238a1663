// The Sinkhorn solver's kernels (core/sinkhorn_kernels.cpp), as the driver
// (core/sinkhorn.cpp) calls them: the fixed row-block partition, the two build
// passes, the fused iteration pass with its run-time ISA pick, and the few inline
// helpers both sides use. Internal to the solver: nothing outside core/sinkhorn*.cpp
// includes it. Both .cpp files are compiled with no-trapping-math and fp-contract
// off (their first pragma), so every helper here rounds alike wherever it is inlined.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace sln::sinkhorn::kernels {

// Rows are split into at most this many blocks, whatever the thread count: each
// block owns a partial column-sum vector (kMaxBlocks x K doubles, 6 MB at K=3000,
// read once per iteration next to the 2.4-4.8 GB matrix).
constexpr int64_t kMaxBlocks = 256;
// Zeroed bytes after the matrix: the fused pass reads a row as K rounded up to 8 entries.
constexpr size_t kSlack = 64;
// The fused pass's padded row length (see sinkhorn_pass.inc).
constexpr int64_t padded_k(int64_t k) { return (k + 7) / 8 * 8; }

// The fixed block partition of n rows. A sharded solve (Options::shard) holds the
// global blocks [first, first + nb) of Blocks(n_total): begin/end are then rows of
// this call's arrays (row0 = the global row of local row 0).
struct Blocks {
  int64_t n = 0, nb = 0, rows = 0, first = 0, row0 = 0, nb_total = 0;
  explicit Blocks(int64_t n_) : n(n_) {
    int64_t want = std::min<int64_t>(n, kMaxBlocks);
    rows = want > 0 ? (n + want - 1) / want : 1;
    nb = (n + rows - 1) / rows;
    nb_total = nb;
  }
  Blocks(int64_t n_total, int rank, int ranks) : Blocks(n_total) {
    first = nb_total * rank / ranks;
    const int64_t last = nb_total * (rank + 1) / ranks;
    nb = last - first;
    row0 = std::min(n, first * rows);
  }
  int64_t begin(int64_t b) const { return std::min(n, (first + b) * rows) - row0; }
  int64_t end(int64_t b) const { return std::min(n, (first + b + 1) * rows) - row0; }
};
// Per-block partials are rows of K rounded up to 8 plus 8 slots: [Kp] err, [Kp+1] a
// bad-row flag (exchanged with the column sums in one collective when sharded).
constexpr int64_t part_stride(int64_t k) { return padded_k(k) + 8; }

#define SLN_ALWAYS_INLINE __attribute__((always_inline)) inline

// First maximum of a[k]*r[k] (np.nanargmax keeps the first of equal maxima).
template <class T>
SLN_ALWAYS_INLINE int32_t argmax_row(const T* a, const double* r, int64_t K) {
  double best = static_cast<double>(a[0]) * r[0];
  int32_t bi = 0;
  for (int64_t k = 1; k < K; ++k) {
    double v = static_cast<double>(a[k]) * r[k];
    if (v > best) {
      best = v;
      bi = static_cast<int32_t>(k);
    }
  }
  return bi;
}

// Denormal results (a tiny A[j,k] times a tiny c_j in the column sums, say) cost a
// microcode assist each: with them the fused pass ran at half its speed. Inside the
// solver's parallel regions every thread flushes denormal results and operands to
// zero (they are < 2^-1022 against sums of normal numbers), and restores its mode after.
class FlushDenormals {
 public:
#if defined(__SSE2__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }  // FTZ | DAZ
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};

// exp(x) for x <= 0, vectorizable (the build computes ~2 exps per matrix entry;
// glibc's scalar exp made the build cost as much as ~40 iterations). Cody-Waite
// reduction x = n ln2 + t, |t| <= ln2/2, degree-12 Taylor polynomial (truncation
// < 2e-16 relative), times 2^n built from its bits. x < -708 gives 0 (that is below
// the smallest normal double). No FMA is used, so every clone rounds alike.
SLN_ALWAYS_INLINE double exp_nonpos(double x) {
  const double log2e = 1.4426950408889634, ln2hi = 6.93147180369123816490e-01, ln2lo = 1.90821492927058770002e-10;
  const double shifter = 6755399441055744.0;  // 1.5 * 2^52: x*log2e + shifter holds round(x*log2e) in its low bits
  const bool tiny = !(x >= -708.0);
  const double xc = tiny ? -708.0 : x;
  double kd = xc * log2e + shifter;
  uint64_t kb, sb;
  std::memcpy(&kb, &kd, 8);
  std::memcpy(&sb, &shifter, 8);
  kd -= shifter;
  const double t = (xc - kd * ln2hi) - kd * ln2lo;
  double p = 1.0 / 479001600.0;  // 1/12!
  p = p * t + 1.0 / 39916800.0;
  p = p * t + 1.0 / 3628800.0;
  p = p * t + 1.0 / 362880.0;
  p = p * t + 1.0 / 40320.0;
  p = p * t + 1.0 / 5040.0;
  p = p * t + 1.0 / 720.0;
  p = p * t + 1.0 / 120.0;
  p = p * t + 1.0 / 24.0;
  p = p * t + 1.0 / 6.0;
  p = p * t + 0.5;
  p = p * t + 1.0;
  p = p * t + 1.0;
  const int64_t n = static_cast<int64_t>(kb - sb);  // in [-1022, 0]
  const uint64_t eb = static_cast<uint64_t>(n + 1023) << 52;
  double two_n;
  std::memcpy(&two_n, &eb, 8);
  return tiny ? 0.0 : p * two_n;
}

struct BadValue {
  int64_t row = -1, col = -1;
  double value = 0;
};

struct BlockOut {
  double err = 0;
  int64_t bad_row = -1;  // first row whose c_new = (1/N)/(B r) was not a positive finite number
};

// Build pass 1 over rows [j0, j1) of z (row stride K): rowmax, lse = log sum exp(z),
// cm[k] = max(cm[k], lambda*(z - rowmax)); stops at the first non-finite value (*bad).
void build_pass1(const float* z, int64_t j0, int64_t j1, int64_t K, double lambda, double* rowmax, double* lse,
                 double* cm, BadValue* bad);
void build_pass1(const double* z, int64_t j0, int64_t j1, int64_t K, double lambda, double* rowmax, double* lse,
                 double* cm, BadValue* bad);

// Build pass 2 over rows [j0, j1): A = exp(lambda*(z - rowmax) - M) (z may be A itself,
// read before written), c = the start value (cold) or (1/N)/(A r) (warm), colsum += A c.
#define SLN_PASS2_DECL(T, ZT)                                                                                      \
  void build_pass2(const ZT* z, T* A, int64_t j0, int64_t j1, int64_t K, double lambda, const double* rowmax,    \
                   const double* lse, double min_ls, const double* M, const double* warm_r, double* c,           \
                   double* colsum, double inv_n);
SLN_PASS2_DECL(double, float)
SLN_PASS2_DECL(double, double)
SLN_PASS2_DECL(float, float)
#undef SLN_PASS2_DECL

// One Sinkhorn iteration over rows [j0, j1) of A (sinkhorn_pass.inc): c = (1/N)/(A r),
// colsum += A^T c, and on check passes the block's err; the AVX-512 or the portable
// kernel, picked once at load time (SELFLABEL_SINKHORN_ISA=portable forces the latter).
void fused_block(const double* A, int64_t j0, int64_t j1, int64_t K, int64_t Kp, const double* r, double* c,
                 double* colsum, bool check, double inv_n, BlockOut* out);
void fused_block(const float* A, int64_t j0, int64_t j1, int64_t K, int64_t Kp, const double* r, double* c,
                 double* colsum, bool check, double inv_n, BlockOut* out);

}  // namespace sln::sinkhorn::kernels
