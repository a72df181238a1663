// Batch norm on nChw16c activations (Layout::blocked16), written out here
// rather than oneDNN's: its nChw16c kernel sums each channel's N*H*W values in
// float32, and on large maps that error reaches the gradients (resnet18 at 224
// px, batch 2: conv1's weight gradient 2.2e-3 of its scale off float64, where
// PyTorch and oneDNN's NCHW kernel stay near 3e-6). Here every per-channel sum
// is a double. Same contract as cpu/batchnorm.cpp: biased batch variance for
// normalising, running statistics updated with torch's unbiased M/(M-1).
//
// BatchNormDesc::relu fuses the ReLU that follows (y = max(0, bn(x))); its
// backward then takes the gradient of that y and masks it with y > 0 (as
// PyTorch's and oneDNN's relu backward): the portable kernels read the y of
// the last training forward (the caller keeps it intact until backward), the
// AVX-512 ones recompute its sign from x bit for bit (see Mask).
//
// Passes over the activations: training forward 2 (one read for the sums, one
// read + write for y), backward 2 (one read of x, dy for the sums, one for dx). The statistics come from one read as sums of (x - s) and (x - s)^2
// in double, s = the channel's first value (a shift, so that the variance
// E[(x-s)^2] - E[x-s]^2 does not cancel when the mean is large against the
// spread). Work is split over (image, channel block) rows; each row's sums are
// kept apart and added in image order, so results do not depend on the thread
// count. The row kernels exist twice: AVX-512 (a target region, picked at run
// time) and portable C++; SELFLABEL_BN_KERNEL=portable forces the latter (the
// tests check both against the float64 reference).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <vector>

#include "cpu/cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SLN_BN_AVX512 1
#else
#define SLN_BN_AVX512 0
#endif

namespace sln::cpu {

namespace {

// One row = hw consecutive 16-channel vectors (one image, one channel block).
// The fused ReLU's mask in backward: y > 0 for the row's forward output y. The
// portable kernels read y; the AVX-512 ones recompute the forward's
// (x - m) * a + b from x and the forward's constants m, a, b (of the row's
// channel block) with the same instructions, so the same bits, and save a read.
struct Mask {
  const float* y;
  const float *m, *a, *b;
};

struct Kernels {
  // s1 += sum (x - sh), s2 += sum (x - sh)^2 per channel (16 doubles each; overwritten)
  void (*stats)(const float* x, size_t hw, const double* sh, double* s1, double* s2);
  // y = (x - m) * a + b, then max(0, .) when relu
  void (*apply)(const float* x, size_t hw, const float* m, const float* a, const float* b, bool relu, float* y);
  // g = mask ? (y > 0 ? dy : 0) : dy; sg = sum g, sgx = sum g * (x - m) (doubles; overwritten)
  void (*bstats)(const float* x, const Mask* mask, const float* dy, size_t hw, const double* m, double* sg,
                 double* sgx);
  // dx = k1 * g + (k2 * (x - mu) + k3)
  void (*bapply)(const float* x, const Mask* mask, const float* dy, size_t hw, const float* k1, const float* k2,
                 const float* k3, const float* mu, float* dx);
};

namespace portable {
void stats(const float* x, size_t hw, const double* sh, double* s1, double* s2) {
  double a[16] = {0}, q[16] = {0};
  for (size_t i = 0; i < hw; i++)
    for (int k = 0; k < 16; k++) {
      const double t = static_cast<double>(x[i * 16 + k]) - sh[k];
      a[k] += t;
      q[k] += t * t;
    }
  std::memcpy(s1, a, sizeof a), std::memcpy(s2, q, sizeof q);
}
void apply(const float* x, size_t hw, const float* m, const float* a, const float* b, bool relu, float* y) {
  for (size_t i = 0; i < hw; i++)
    for (int k = 0; k < 16; k++) {
      const float o = (x[i * 16 + k] - m[k]) * a[k] + b[k];
      y[i * 16 + k] = relu ? std::max(o, 0.f) : o;
    }
}
void bstats(const float* x, const Mask* mask, const float* dy, size_t hw, const double* m, double* sg, double* sgx) {
  const float* y = mask ? mask->y : nullptr;
  double a[16] = {0}, b[16] = {0};
  for (size_t i = 0; i < hw; i++)
    for (int k = 0; k < 16; k++) {
      const double g = (!y || y[i * 16 + k] > 0.f) ? dy[i * 16 + k] : 0.0;
      a[k] += g;
      b[k] += g * (static_cast<double>(x[i * 16 + k]) - m[k]);
    }
  std::memcpy(sg, a, sizeof a), std::memcpy(sgx, b, sizeof b);
}
void bapply(const float* x, const Mask* mask, const float* dy, size_t hw, const float* k1, const float* k2,
            const float* k3, const float* mu, float* dx) {
  const float* y = mask ? mask->y : nullptr;
  for (size_t i = 0; i < hw; i++)
    for (int k = 0; k < 16; k++) {
      const float g = (!y || y[i * 16 + k] > 0.f) ? dy[i * 16 + k] : 0.f;
      dx[i * 16 + k] = k1[k] * g + (k2[k] * (x[i * 16 + k] - mu[k]) + k3[k]);
    }
}
const Kernels kernels{stats, apply, bstats, bapply};
}  // namespace portable

#if SLN_BN_AVX512
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
#pragma GCC diagnostic push
// GCC 12 flags the _mm256_undefined_* inside its own cast/extract intrinsics
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512 {
inline __m512d lo_pd(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
inline __m512d hi_pd(__m512 v) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}
// Every term goes to double before it is added (as the portable kernels): a
// float partial sum over even 8 terms lost 1e-3 of a small dbeta (a sum that
// cancels) in the blocked-vs-NCHW model test.
void stats(const float* x, size_t hw, const double* sh, double* s1, double* s2) {
  const __m512d k0 = _mm512_loadu_pd(sh), k1 = _mm512_loadu_pd(sh + 8);
  __m512d a0 = _mm512_setzero_pd(), a1 = a0, q0 = a0, q1 = a0, b0 = a0, b1 = a0, r0 = a0, r1 = a0;
  size_t i = 0;
  for (; i + 2 <= hw; i += 2) {   // two vectors per trip: independent add chains
    const __m512 v = _mm512_loadu_ps(x + i * 16), w = _mm512_loadu_ps(x + i * 16 + 16);
    const __m512d d0 = _mm512_sub_pd(lo_pd(v), k0), d1 = _mm512_sub_pd(hi_pd(v), k1);
    const __m512d e0 = _mm512_sub_pd(lo_pd(w), k0), e1 = _mm512_sub_pd(hi_pd(w), k1);
    a0 = _mm512_add_pd(a0, d0), a1 = _mm512_add_pd(a1, d1);
    q0 = _mm512_fmadd_pd(d0, d0, q0), q1 = _mm512_fmadd_pd(d1, d1, q1);
    b0 = _mm512_add_pd(b0, e0), b1 = _mm512_add_pd(b1, e1);
    r0 = _mm512_fmadd_pd(e0, e0, r0), r1 = _mm512_fmadd_pd(e1, e1, r1);
  }
  if (i < hw) {
    const __m512 v = _mm512_loadu_ps(x + i * 16);
    const __m512d d0 = _mm512_sub_pd(lo_pd(v), k0), d1 = _mm512_sub_pd(hi_pd(v), k1);
    a0 = _mm512_add_pd(a0, d0), a1 = _mm512_add_pd(a1, d1);
    q0 = _mm512_fmadd_pd(d0, d0, q0), q1 = _mm512_fmadd_pd(d1, d1, q1);
  }
  _mm512_storeu_pd(s1, _mm512_add_pd(a0, b0)), _mm512_storeu_pd(s1 + 8, _mm512_add_pd(a1, b1));
  _mm512_storeu_pd(s2, _mm512_add_pd(q0, r0)), _mm512_storeu_pd(s2 + 8, _mm512_add_pd(q1, r1));
}

void apply(const float* x, size_t hw, const float* m, const float* a, const float* b, bool relu, float* y) {
  const __m512 vm = _mm512_loadu_ps(m), va = _mm512_loadu_ps(a), vb = _mm512_loadu_ps(b), z = _mm512_setzero_ps();
  if (relu)
    for (size_t i = 0; i < hw; i++)
      _mm512_storeu_ps(y + i * 16, _mm512_max_ps(_mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i * 16), vm), va, vb), z));
  else
    for (size_t i = 0; i < hw; i++)
      _mm512_storeu_ps(y + i * 16, _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i * 16), vm), va, vb));
}

// The forward's constants, and g = dy where the forward's (x - m) * a + b > 0 (apply's instructions).
struct Fwd {
  __m512 m, a, b;
  explicit Fwd(const Mask* k)
      : m(k ? _mm512_loadu_ps(k->m) : _mm512_setzero_ps()), a(k ? _mm512_loadu_ps(k->a) : m),
        b(k ? _mm512_loadu_ps(k->b) : m) {}
  __m512 grad(bool relu, __m512 v, __m512 dy) const {
    if (!relu) return dy;
    const __m512 o = _mm512_fmadd_ps(_mm512_sub_ps(v, m), a, b);
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(o, _mm512_setzero_ps(), _CMP_GT_OQ), dy);
  }
};

void bstats(const float* x, const Mask* mask, const float* dy, size_t hw, const double* m, double* sg, double* sgx) {
  const __m512d m0 = _mm512_loadu_pd(m), m1 = _mm512_loadu_pd(m + 8);
  const Fwd f(mask);
  const bool relu = mask != nullptr;
  __m512d a0 = _mm512_setzero_pd(), a1 = a0, b0 = a0, b1 = a0;
  for (size_t i = 0; i < hw; i++) {
    const __m512 v = _mm512_loadu_ps(x + i * 16), g = f.grad(relu, v, _mm512_loadu_ps(dy + i * 16));
    const __m512d g0 = lo_pd(g), g1 = hi_pd(g);
    a0 = _mm512_add_pd(a0, g0), a1 = _mm512_add_pd(a1, g1);
    b0 = _mm512_fmadd_pd(g0, _mm512_sub_pd(lo_pd(v), m0), b0);
    b1 = _mm512_fmadd_pd(g1, _mm512_sub_pd(hi_pd(v), m1), b1);
  }
  _mm512_storeu_pd(sg, a0), _mm512_storeu_pd(sg + 8, a1);
  _mm512_storeu_pd(sgx, b0), _mm512_storeu_pd(sgx + 8, b1);
}

void bapply(const float* x, const Mask* mask, const float* dy, size_t hw, const float* k1, const float* k2,
            const float* k3, const float* mu, float* dx) {
  const __m512 v1 = _mm512_loadu_ps(k1), v2 = _mm512_loadu_ps(k2), v3 = _mm512_loadu_ps(k3), vm = _mm512_loadu_ps(mu);
  const Fwd f(mask);
  const bool relu = mask != nullptr;
  for (size_t i = 0; i < hw; i++) {
    const __m512 v = _mm512_loadu_ps(x + i * 16), g = f.grad(relu, v, _mm512_loadu_ps(dy + i * 16));
    const __m512 t = _mm512_fmadd_ps(v2, _mm512_sub_ps(v, vm), v3);
    _mm512_storeu_ps(dx + i * 16, _mm512_fmadd_ps(v1, g, t));
  }
}
const Kernels kernels{stats, apply, bstats, bapply};
}  // namespace avx512
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

const Kernels& pick_kernels() {
#if SLN_BN_AVX512
  __builtin_cpu_init();
  const char* e = std::getenv("SELFLABEL_BN_KERNEL");
  const bool portable_only = e && std::strcmp(e, "portable") == 0;
  if (!portable_only && __builtin_cpu_supports("avx512f")) return avx512::kernels;
#endif
  return portable::kernels;
}

class BlockedBatchNorm final : public BatchNormOp {
 public:
  explicit BlockedBatchNorm(const BatchNormDesc& d) : d_(d), k_(pick_kernels()) {
    SLN_CHECK_ARG(d.N >= 1 && d.C >= 1 && d.H >= 1 && d.W >= 1,
                  "batchnorm: every size must be >= 1, got " << shape());
    SLN_CHECK_ARG(d.eps > 0, "batchnorm: eps must be > 0, got " << d.eps);
    SLN_CHECK_ARG(d.momentum >= 0 && d.momentum <= 1, "batchnorm: momentum must be in [0,1], got " << d.momentum);
    check_layout(d.layout, d.C, "batchnorm");
    CB_ = d.C / 16;
    rows_ = static_cast<size_t>(d.N) * CB_;
    HW_ = static_cast<size_t>(d.H) * d.W;
    M_ = static_cast<double>(d.N) * HW_;
    mean_.resize(d.C);
    invstd_.resize(d.C);
    part_.resize(rows_ * 32);
  }

  void forward(const float* x, const float* gamma, const float* beta, float* running_mean, float* running_var,
               float* y, bool training) override {
    apply_threads();
    SLN_CHECK_ARG(!training || M_ > 1, "batchnorm: training needs more than 1 value per channel, got " << shape());
    if (training) {
      std::vector<double> shift(d_.C), var(d_.C);
      for (int cb = 0; cb < CB_; cb++)   // the first value of each channel (image 0, position 0)
        for (int k = 0; k < 16; k++) shift[cb * 16 + k] = x[static_cast<size_t>(cb) * HW_ * 16 + k];
      const Kernels& K = k_;
#pragma omp parallel for schedule(static)
      for (long r = 0; r < static_cast<long>(rows_); r++) {
        const int cb = static_cast<int>(r % CB_);
        K.stats(row(x, r), HW_, &shift[cb * 16], &part_[r * 32], &part_[r * 32 + 16]);
      }
      for (int c = 0; c < d_.C; c++) {
        const int cb = c / 16, k = c % 16;
        double s1 = 0, s2 = 0;
        for (int n = 0; n < d_.N; n++) {
          const double* p = &part_[(static_cast<size_t>(n) * CB_ + cb) * 32];
          s1 += p[k], s2 += p[16 + k];
        }
        const double dm = s1 / M_;
        mean_[c] = shift[c] + dm;
        var[c] = std::max(s2 / M_ - dm * dm, 0.0);
        invstd_[c] = 1.0 / std::sqrt(var[c] + d_.eps);
      }
      have_stats_ = true;
      relu_y_ = y;
      const double m = d_.momentum, unbias = M_ / (M_ - 1);
      for (int c = 0; c < d_.C; c++) {
        running_mean[c] = static_cast<float>((1 - m) * running_mean[c] + m * mean_[c]);
        running_var[c] = static_cast<float>((1 - m) * running_var[c] + m * var[c] * unbias);
      }
    }
    // y = (x - mean) * scale + beta per channel
    std::vector<float> mu(d_.C), scale(d_.C);
    for (int c = 0; c < d_.C; c++) {
      const double is = training ? invstd_[c] : 1.0 / std::sqrt(static_cast<double>(running_var[c]) + d_.eps);
      mu[c] = static_cast<float>(training ? mean_[c] : running_mean[c]);
      scale[c] = static_cast<float>(gamma[c] * is);
    }
    const Kernels& K = k_;
    const bool relu = d_.relu;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < static_cast<long>(rows_); r++) {
      const int cb = static_cast<int>(r % CB_);
      K.apply(row(x, r), HW_, &mu[cb * 16], &scale[cb * 16], &beta[cb * 16], relu, row(y, r));
    }
    if (training && relu) {   // the fused ReLU's mask for backward
      fwd_m_ = mu, fwd_a_ = scale;
      fwd_b_.assign(beta, beta + d_.C);
    }
  }

  // g = dy (masked by the fused ReLU's y > 0);
  // dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)); dgamma = sum(g * xhat), dbeta = sum(g)
  void backward(const float* x, const float* gamma, const float* dy, float* dx, float* dgamma,
                float* dbeta) override {
    apply_threads();
    SLN_CHECK_ARG(have_stats_, "batchnorm: backward needs a training forward first " << shape());
    const Kernels& K = k_;
    // the fused ReLU's mask of row r: the forward's output and constants
    auto mask = [&](long r) {
      const int cb = static_cast<int>(r % CB_);
      return Mask{row(relu_y_, r), &fwd_m_[cb * 16], &fwd_a_[cb * 16], &fwd_b_[cb * 16]};
    };
#pragma omp parallel for schedule(static)
    for (long r = 0; r < static_cast<long>(rows_); r++) {
      const int cb = static_cast<int>(r % CB_);
      const Mask mk = d_.relu ? mask(r) : Mask{};
      K.bstats(row(x, r), d_.relu ? &mk : nullptr, row(dy, r), HW_, &mean_[cb * 16], &part_[r * 32],
               &part_[r * 32 + 16]);
    }
    std::vector<double> sdy(d_.C), sdyx(d_.C);
    for (int c = 0; c < d_.C; c++) {
      const int cb = c / 16, k = c % 16;
      for (int n = 0; n < d_.N; n++) {
        const double* p = &part_[(static_cast<size_t>(n) * CB_ + cb) * 32];
        sdy[c] += p[k], sdyx[c] += p[16 + k];
      }
      if (dgamma) dgamma[c] = static_cast<float>(sdyx[c] * invstd_[c]);
      if (dbeta) dbeta[c] = static_cast<float>(sdy[c]);
    }
    if (!dx) return;
    // dx = k1 * g + k2 * (x - mean) + k3 per channel (float32 coefficients from the double sums)
    std::vector<float> k1(d_.C), k2(d_.C), k3(d_.C), mu(d_.C);
    for (int c = 0; c < d_.C; c++) {
      const double is = invstd_[c], gi = gamma[c] * is;
      k1[c] = static_cast<float>(gi);
      k2[c] = static_cast<float>(-gi * is * is * sdyx[c] / M_);
      k3[c] = static_cast<float>(-gi * sdy[c] / M_);
      mu[c] = static_cast<float>(mean_[c]);
    }
#pragma omp parallel for schedule(static)
    for (long r = 0; r < static_cast<long>(rows_); r++) {
      const int cb = static_cast<int>(r % CB_);
      const Mask mk = d_.relu ? mask(r) : Mask{};
      K.bapply(row(x, r), d_.relu ? &mk : nullptr, row(dy, r), HW_, &k1[cb * 16], &k2[cb * 16], &k3[cb * 16],
               &mu[cb * 16], row(dx, r));
    }
  }

 private:
  // row r = (image r / CB, channel block r % CB): HW_ vectors of 16 floats
  template <typename T>
  T* row(T* p, long r) const {
    return p + static_cast<size_t>(r) * HW_ * 16;
  }
  std::string shape() const {
    std::ostringstream os;
    os << "(N,C,H,W) = (" << d_.N << "," << d_.C << "," << d_.H << "," << d_.W << "), nChw16c";
    return os.str();
  }

  BatchNormDesc d_;
  const Kernels& k_;
  int CB_ = 1;
  size_t rows_ = 1, HW_ = 1;
  double M_ = 1;   // N*H*W values per channel
  bool have_stats_ = false;
  const float* relu_y_ = nullptr;        // the last training forward's y (the fused ReLU's mask)
  std::vector<float> fwd_m_, fwd_a_, fwd_b_;   // and its constants: y = max(0, (x - m) * a + b)
  std::vector<double> mean_, invstd_;   // the last training forward's batch statistics
  std::vector<double> part_;            // per row: 16 + 16 partial sums
};

}  // namespace

std::unique_ptr<BatchNormOp> make_batchnorm_blocked(const BatchNormDesc& d) {
  return std::make_unique<BlockedBatchNorm>(d);
}

}  // namespace sln::cpu
