// Batch norm on nChw16c activations (Layout::blocked16), written out here
// rather than oneDNN's: its nChw16c kernel sums each channel's N*H*W values in
// float32, and on large maps that error reaches the gradients (resnet18 at 224
// px, batch 2: conv1's weight gradient 2.2e-3 of its scale off float64, where
// PyTorch and oneDNN's NCHW kernel stay near 3e-6). Here every per-channel sum
// is a double, in two passes (the mean, then the squared deviations), and a
// 16-channel block is one vector of the layout, so the loops vectorise as they
// stand. Threads split the channel blocks. Same contract as cpu/batchnorm.cpp:
// biased batch variance for normalising, running statistics updated with
// torch's unbiased M/(M-1).
#include <cmath>
#include <sstream>
#include <vector>

#include "cpu/cpu.h"

namespace sln::cpu {

namespace {

class BlockedBatchNorm final : public BatchNormOp {
 public:
  explicit BlockedBatchNorm(const BatchNormDesc& d) : d_(d) {
    SLN_CHECK_ARG(d.N >= 1 && d.C >= 1 && d.H >= 1 && d.W >= 1,
                  "batchnorm: every size must be >= 1, got " << shape());
    SLN_CHECK_ARG(d.eps > 0, "batchnorm: eps must be > 0, got " << d.eps);
    SLN_CHECK_ARG(d.momentum >= 0 && d.momentum <= 1, "batchnorm: momentum must be in [0,1], got " << d.momentum);
    check_layout(d.layout, d.C, "batchnorm");
    HW_ = static_cast<size_t>(d.H) * d.W;
    M_ = static_cast<double>(d.N) * HW_;
    mean_.resize(d.C);
    invstd_.resize(d.C);
  }

  void forward(const float* x, const float* gamma, const float* beta, float* running_mean, float* running_var,
               float* y, bool training) override {
    apply_threads();
    SLN_CHECK_ARG(!training || M_ > 1, "batchnorm: training needs more than 1 value per channel, got " << shape());
    const int CB = d_.C / 16;
    if (training) {
      std::vector<double> var(d_.C);
#pragma omp parallel for schedule(static)
      for (int cb = 0; cb < CB; cb++) {
        double s[16] = {0};
        each(cb, x, [&](const float* v) {
          for (int k = 0; k < 16; k++) s[k] += v[k];
        });
        double m[16];
        for (int k = 0; k < 16; k++) m[k] = s[k] / M_;
        double q[16] = {0};
        each(cb, x, [&](const float* v) {
          for (int k = 0; k < 16; k++) {
            const double t = v[k] - m[k];
            q[k] += t * t;
          }
        });
        for (int k = 0; k < 16; k++) {
          mean_[cb * 16 + k] = m[k];
          var[cb * 16 + k] = q[k] / M_;
          invstd_[cb * 16 + k] = 1.0 / std::sqrt(q[k] / M_ + d_.eps);
        }
      }
      have_stats_ = true;
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
    map(x, y, [&](int cb, const float* v, float* o) {
      const float *m = &mu[cb * 16], *a = &scale[cb * 16], *b = &beta[cb * 16];
      for (int k = 0; k < 16; k++) o[k] = (v[k] - m[k]) * a[k] + b[k];
    });
  }

  // dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)); dgamma = sum(dy * xhat), dbeta = sum(dy)
  void backward(const float* x, const float* gamma, const float* dy, float* dx, float* dgamma,
                float* dbeta) override {
    apply_threads();
    SLN_CHECK_ARG(have_stats_, "batchnorm: backward needs a training forward first " << shape());
    const int CB = d_.C / 16;
    std::vector<double> sdy(d_.C), sdyx(d_.C);
#pragma omp parallel for schedule(static)
    for (int cb = 0; cb < CB; cb++) {
      double a[16] = {0}, b[16] = {0}, m[16];
      for (int k = 0; k < 16; k++) m[k] = mean_[cb * 16 + k];
      each2(cb, x, dy, [&](const float* v, const float* g) {
        for (int k = 0; k < 16; k++) {
          a[k] += g[k];
          b[k] += g[k] * (v[k] - m[k]);
        }
      });
      for (int k = 0; k < 16; k++) sdy[cb * 16 + k] = a[k], sdyx[cb * 16 + k] = b[k];
    }
    for (int c = 0; c < d_.C; c++) {
      if (dgamma) dgamma[c] = static_cast<float>(sdyx[c] * invstd_[c]);
      if (dbeta) dbeta[c] = static_cast<float>(sdy[c]);
    }
    if (!dx) return;
    // dx = k1 * dy + k2 * (x - mean) + k3 per channel (float32 coefficients from the double sums)
    std::vector<float> k1(d_.C), k2(d_.C), k3(d_.C), mu(d_.C);
    for (int c = 0; c < d_.C; c++) {
      const double is = invstd_[c], gi = gamma[c] * is;
      k1[c] = static_cast<float>(gi);
      k2[c] = static_cast<float>(-gi * is * is * sdyx[c] / M_);
      k3[c] = static_cast<float>(-gi * sdy[c] / M_);
      mu[c] = static_cast<float>(mean_[c]);
    }
    const size_t blocks = static_cast<size_t>(d_.N) * CB;
#pragma omp parallel for schedule(static)
    for (long nb = 0; nb < static_cast<long>(blocks); nb++) {
      const int cb = static_cast<int>(nb % CB);
      const size_t off = static_cast<size_t>(nb) * HW_ * 16;
      const float *a = &k1[cb * 16], *b = &k2[cb * 16], *e = &k3[cb * 16], *m = &mu[cb * 16];
      for (size_t i = 0; i < HW_; i++) {
        const float* v = x + off + i * 16;
        const float* g = dy + off + i * 16;
        float* o = dx + off + i * 16;
        for (int k = 0; k < 16; k++) o[k] = a[k] * g[k] + b[k] * (v[k] - m[k]) + e[k];
      }
    }
  }

 private:
  // f(pointer to 16 channels) over every (n, h, w) of channel block cb, in order
  template <typename F>
  void each(int cb, const float* x, F f) const {
    const int CB = d_.C / 16;
    for (int n = 0; n < d_.N; n++) {
      const float* p = x + (static_cast<size_t>(n) * CB + cb) * HW_ * 16;
      for (size_t i = 0; i < HW_; i++) f(p + i * 16);
    }
  }
  template <typename F>
  void each2(int cb, const float* x, const float* y, F f) const {
    const int CB = d_.C / 16;
    for (int n = 0; n < d_.N; n++) {
      const size_t off = (static_cast<size_t>(n) * CB + cb) * HW_ * 16;
      for (size_t i = 0; i < HW_; i++) f(x + off + i * 16, y + off + i * 16);
    }
  }
  // f(cb, in, out) over every 16-channel vector, split over the threads by (n, block)
  template <typename F>
  void map(const float* x, float* y, F f) const {
    const int CB = d_.C / 16;
    const long blocks = static_cast<long>(d_.N) * CB;
#pragma omp parallel for schedule(static)
    for (long nb = 0; nb < blocks; nb++) {
      const size_t off = static_cast<size_t>(nb) * HW_ * 16;
      for (size_t i = 0; i < HW_; i++) f(static_cast<int>(nb % CB), x + off + i * 16, y + off + i * 16);
    }
  }
  std::string shape() const {
    std::ostringstream os;
    os << "(N,C,H,W) = (" << d_.N << "," << d_.C << "," << d_.H << "," << d_.W << "), nChw16c";
    return os.str();
  }

  BatchNormDesc d_;
  size_t HW_ = 1;
  double M_ = 1;   // N*H*W values per channel
  bool have_stats_ = false;
  std::vector<double> mean_, invstd_;   // the last training forward's batch statistics
};

}  // namespace

std::unique_ptr<BatchNormOp> make_batchnorm_blocked(const BatchNormDesc& d) {
  return std::make_unique<BlockedBatchNorm>(d);
}

}  // namespace sln::cpu
