// The Sinkhorn solver's kernels: the build passes and the fused iteration pass
// (core/sinkhorn_kernels.h says what each computes; core/sinkhorn.cpp drives them).
// Nothing here throws: kernels report bad values through BadValue / BlockOut and the
// driver throws after its OpenMP region.
#include "core/sinkhorn_kernels.h"

// FP operations here never trap (no FP exceptions are enabled): letting GCC assume it
// allows if-conversion, so the exp and flush selects vectorize. Results are unchanged.
#pragma GCC optimize("no-trapping-math", "fp-contract=off")

#include <cstdlib>
#include <type_traits>

namespace sln::sinkhorn::kernels {

// Unaligned load/store of a GCC vector type (also used by sinkhorn_pass.inc).
template <class V>
SLN_ALWAYS_INLINE V loadu(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
SLN_ALWAYS_INLINE void storeu(void* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// dot(a, r) with 8 independent float64 accumulators (vectorizes without reassociation).
template <class T>
SLN_ALWAYS_INLINE double dot_row(const T* a, const double* r, int64_t K) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8)
    for (int i = 0; i < 8; ++i) s[i] += static_cast<double>(a[k + i]) * r[k + i];
  for (int i = 0; k < K; ++k, ++i) s[i] += static_cast<double>(a[k]) * r[k];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

template <class T>
SLN_ALWAYS_INLINE void axpy_row(double* y, const T* a, double x, int64_t K) {
  for (int64_t k = 0; k < K; ++k) y[k] += static_cast<double>(a[k]) * x;
}

// exp(x) <= 1 as stored in T, with results below T's smallest normal number stored as
// 0: they are < 2^-126 (f32) or 2^-1022 (f64) of the row's own 1, and denormal
// operands cost a microcode assist per use (measured: f32 storage with denormals ran
// slower per iteration than f64).
template <class T>
SLN_ALWAYS_INLINE T stored_exp(double x) {
  const T v = static_cast<T>(exp_nonpos(x));
  return v < std::numeric_limits<T>::min() ? T(0) : v;
}

// Row max and whether every entry is finite, in the storage type (max is exact in
// any type), 8 lanes at a time: the scalar loop (a compare-and-select chain) cost as
// much as the two exps per entry of the build.
template <class ZT>
SLN_ALWAYS_INLINE bool row_max_finite(const ZT* zr, int64_t K, double* max_out) {
  typedef ZT vz __attribute__((vector_size(8 * sizeof(ZT))));
  typedef typename std::conditional<sizeof(ZT) == 4, int32_t, int64_t>::type IZ;
  typedef IZ vi __attribute__((vector_size(8 * sizeof(ZT))));
  const ZT ninf = -std::numeric_limits<ZT>::infinity();
  vz mx = {ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf};
  vi ok = ~vi{};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const vz x = loadu<vz>(zr + k);
    ok &= (x - x == 0);  // false for NaN and +-Inf
    mx = x > mx ? x : mx;
  }
  ZT m = ninf;
  bool finite = true;
  for (int i = 0; i < 8; ++i) {
    finite &= ok[i] != 0;
    m = mx[i] > m ? mx[i] : m;
  }
  for (; k < K; ++k) {
    const ZT v = zr[k];
    finite &= (v - v == 0);
    m = v > m ? v : m;
  }
  *max_out = static_cast<double>(m);
  return finite;
}

// Build pass 1 over rows [j0, j1) of z (row stride K): rowmax, lse = log sum exp(z),
// cm[k] = max(cm[k], lambda*(z - rowmax)); stops at the first non-finite value.
template <class ZT>
SLN_ALWAYS_INLINE void build_pass1_impl(const ZT* z, int64_t j0, int64_t j1, int64_t K, double lambda, double* rowmax,
                                        double* lse, double* cm, BadValue* bad) {
  for (int64_t j = j0; j < j1; ++j) {
    const ZT* zr = z + j * K;
    double m;
    const bool finite = row_max_finite(zr, K, &m);
    if (!finite) {
      for (int64_t k = 0; k < K; ++k)
        if (!std::isfinite(static_cast<double>(zr[k]))) {
          *bad = {j, k, static_cast<double>(zr[k])};
          return;
        }
    }
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= K; k += 8)
      for (int i = 0; i < 8; ++i) s[i] += exp_nonpos(static_cast<double>(zr[k + i]) - m);
    for (int i = 0; k < K; ++k, ++i) s[i] += exp_nonpos(static_cast<double>(zr[k]) - m);
    for (k = 0; k < K; ++k) {
      const double v = lambda * (static_cast<double>(zr[k]) - m);
      cm[k] = v > cm[k] ? v : cm[k];
    }
    rowmax[j] = m;
    lse[j] = m + std::log(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])));
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void build_pass1(const float* z, int64_t j0, int64_t j1, int64_t K,
                                                                   double lambda, double* rowmax, double* lse,
                                                                   double* cm, BadValue* bad) {
  build_pass1_impl(z, j0, j1, K, lambda, rowmax, lse, cm, bad);
}
__attribute__((target_clones("avx512f", "avx2", "default"))) void build_pass1(const double* z, int64_t j0, int64_t j1, int64_t K,
                                                                   double lambda, double* rowmax, double* lse,
                                                                   double* cm, BadValue* bad) {
  build_pass1_impl(z, j0, j1, K, lambda, rowmax, lse, cm, bad);
}

// Build pass 2 over rows [j0, j1): A = exp(lambda*(z - rowmax) - M) (z may be A itself,
// read before written), c = the start value (cold) or (1/N)/(A r) (warm), colsum += A c.
template <class T, class ZT>
SLN_ALWAYS_INLINE void build_pass2_impl(const ZT* z, T* A, int64_t j0, int64_t j1, int64_t K, double lambda,
                                        const double* rowmax, const double* lse, double min_ls, const double* M,
                                        const double* warm_r, double* c, double* colsum, double inv_n) {
  for (int64_t j = j0; j < j1; ++j) {
    const ZT* zr = z + j * K;
    T* a = A + j * K;
    const double m = rowmax[j];
    for (int64_t k = 0; k < K; ++k) a[k] = stored_exp<T>(lambda * (static_cast<double>(zr[k]) - m) - M[k]);
    double cj = inv_n * exp_nonpos(std::max(-lambda * (lse[j] - m - min_ls), -600.0));
    if (warm_r) cj = inv_n / dot_row(a, warm_r, K);  // > 0: the row's argmax column has A = 1 and r >= e^-600
    c[j] = cj;
    axpy_row(colsum, a, cj, K);
  }
}

#define SLN_PASS2(T, ZT)                                                                                           \
  __attribute__((target_clones("avx512f", "avx2", "default"))) void build_pass2(                                            \
      const ZT* z, T* A, int64_t j0, int64_t j1, int64_t K, double lambda, const double* rowmax, const double* lse, \
      double min_ls, const double* M, const double* warm_r, double* c, double* colsum, double inv_n) {             \
    build_pass2_impl(z, A, j0, j1, K, lambda, rowmax, lse, min_ls, M, warm_r, c, colsum, inv_n);                 \
  }
SLN_PASS2(double, float)
SLN_PASS2(double, double)
SLN_PASS2(float, float)
#undef SLN_PASS2

// The hot loop. The kernels are compiled twice: in namespace avx512 for AVX-512
// (a pragma target region) and in namespace portable as target_clones for AVX2 and
// the baseline ISA; fused_block picks one at run time. Both are compiled from the same
// source with fp-contract off: every variant rounds alike.
namespace portable {
#define SLN_SK_AVX512 0
#include "core/sinkhorn_pass.inc"
#undef SLN_SK_AVX512
__attribute__((target_clones("avx2", "default"))) void fused_block_f64(
    const double* A, int64_t j0, int64_t j1, int64_t K, int64_t Kp, const double* r, double* c, double* colsum,
    bool check, double inv_n, BlockOut* out) {
  fused_block_impl(A, j0, j1, K, Kp, r, c, colsum, check, inv_n, out);
}
__attribute__((target_clones("avx2", "default"))) void fused_block_f32(
    const float* A, int64_t j0, int64_t j1, int64_t K, int64_t Kp, const double* r, double* c, double* colsum,
    bool check, double inv_n, BlockOut* out) {
  fused_block_impl(A, j0, j1, K, Kp, r, c, colsum, check, inv_n, out);
}
}  // namespace portable

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl")
namespace avx512 {
#define SLN_SK_AVX512 1
#include "core/sinkhorn_pass.inc"
#undef SLN_SK_AVX512
void fused_block_f64(const double* A, int64_t j0, int64_t j1, int64_t K, int64_t Kp, const double* r, double* c,
                     double* colsum, bool check, double inv_n, BlockOut* out) {
  fused_block_impl(A, j0, j1, K, Kp, r, c, colsum, check, inv_n, out);
}
void fused_block_f32(const float* A, int64_t j0, int64_t j1, int64_t K, int64_t Kp, const double* r, double* c,
                     double* colsum, bool check, double inv_n, BlockOut* out) {
  fused_block_impl(A, j0, j1, K, Kp, r, c, colsum, check, inv_n, out);
}
}  // namespace avx512
#pragma GCC pop_options
// SELFLABEL_SINKHORN_ISA=portable skips the AVX-512 kernels (for the test that checks
// they round exactly as the portable ones, and for timing one against the other).
bool use_avx512() {
  __builtin_cpu_init();
  const char* isa = std::getenv("SELFLABEL_SINKHORN_ISA");
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && !(isa && std::strcmp(isa, "portable") == 0);
}
const bool kAvx512 = use_avx512();
#define SLN_SK_PICK(fn) (kAvx512 ? avx512::fn : portable::fn)
#else
#define SLN_SK_PICK(fn) portable::fn
#endif

void fused_block(const double* A, int64_t j0, int64_t j1, int64_t K, int64_t Kp, const double* r, double* c,
                 double* colsum, bool check, double inv_n, BlockOut* out) {
  SLN_SK_PICK(fused_block_f64)(A, j0, j1, K, Kp, r, c, colsum, check, inv_n, out);
}
void fused_block(const float* A, int64_t j0, int64_t j1, int64_t K, int64_t Kp, const double* r, double* c,
                 double* colsum, bool check, double inv_n, BlockOut* out) {
  SLN_SK_PICK(fused_block_f32)(A, j0, j1, K, Kp, r, c, colsum, check, inv_n, out);
}
#undef SLN_SK_PICK

}  // namespace sln::sinkhorn::kernels
