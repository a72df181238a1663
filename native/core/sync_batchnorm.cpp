// Synchronised batch norm: see sync_batchnorm.h.
#include "core/sync_batchnorm.h"

#include <cmath>

namespace sln {

namespace {
inline size_t at(const BatchNormDesc& d, int n, int c, size_t HW) { return (static_cast<size_t>(n) * d.C + c) * HW; }
}  // namespace

void sync_batchnorm_forward(const BatchNormDesc& d, const float* x, const float* gamma, const float* beta,
                            float* running_mean, float* running_var, float* y, std::vector<double>& save_mean,
                            std::vector<double>& save_invstd, const SumFn& sum) {
  const size_t HW = static_cast<size_t>(d.H) * d.W;
  const int C = d.C;
  // [0, C): sum x; [C]: values per channel on this rank
  std::vector<double> s(C + 1, 0.0);
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    double a = 0;
    for (int n = 0; n < d.N; n++) {
      const float* p = x + at(d, n, c, HW);
      for (size_t i = 0; i < HW; i++) a += p[i];
    }
    s[c] = a;
  }
  s[C] = static_cast<double>(d.N) * HW;
  sum(s.data(), s.size());
  const double M = s[C];   // values per channel over the global batch
  save_mean.assign(C, 0.0);
  for (int c = 0; c < C; c++) save_mean[c] = s[c] / M;
  std::vector<double> ss(C, 0.0);
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    double a = 0;
    const double m = save_mean[c];
    for (int n = 0; n < d.N; n++) {
      const float* p = x + at(d, n, c, HW);
      for (size_t i = 0; i < HW; i++) {
        const double t = p[i] - m;
        a += t * t;
      }
    }
    ss[c] = a;
  }
  sum(ss.data(), ss.size());
  save_invstd.assign(C, 0.0);
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    const double mean = save_mean[c], var = ss[c] / M;
    running_mean[c] = static_cast<float>((1 - d.momentum) * running_mean[c] + d.momentum * mean);
    running_var[c] = static_cast<float>((1 - d.momentum) * running_var[c] + d.momentum * (M > 1 ? ss[c] / (M - 1) : var));
    const double invstd = 1.0 / std::sqrt(var + d.eps);
    save_invstd[c] = invstd;
    const double g = gamma[c] * invstd, b = beta[c] - mean * g;
    for (int n = 0; n < d.N; n++) {
      const float* p = x + at(d, n, c, HW);
      float* q = y + at(d, n, c, HW);
      for (size_t i = 0; i < HW; i++) q[i] = static_cast<float>(p[i] * g + b);
    }
  }
}

void sync_batchnorm_backward(const BatchNormDesc& d, const float* x, const float* gamma, const float* dy,
                             const std::vector<double>& save_mean, const std::vector<double>& save_invstd,
                             float* dx, float* dgamma, float* dbeta, const SumFn& sum) {
  const size_t HW = static_cast<size_t>(d.H) * d.W;
  const int C = d.C;
  // [0, C): sum dy, [C, 2C): sum dy * xhat, [2C]: values per channel on this rank
  std::vector<double> s(2 * C + 1, 0.0);
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double a = 0, b = 0;
    for (int n = 0; n < d.N; n++) {
      const float* px = x + at(d, n, c, HW);
      const float* pd = dy + at(d, n, c, HW);
      for (size_t i = 0; i < HW; i++) {
        a += pd[i];
        b += pd[i] * ((px[i] - mean) * invstd);
      }
    }
    s[c] = a;
    s[C + c] = b;
    if (dbeta) dbeta[c] = static_cast<float>(a);
    if (dgamma) dgamma[c] = static_cast<float>(b);
  }
  s[2 * C] = static_cast<double>(d.N) * HW;
  sum(s.data(), s.size());
  if (!dx) return;
  const double M = s[2 * C];
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    const double sdy = s[c], sdyx = s[C + c], k = gamma[c] * invstd / M;
    for (int n = 0; n < d.N; n++) {
      const float* px = x + at(d, n, c, HW);
      const float* pd = dy + at(d, n, c, HW);
      float* q = dx + at(d, n, c, HW);
      for (size_t i = 0; i < HW; i++) {
        const double xhat = (px[i] - mean) * invstd;
        q[i] = static_cast<float>(k * (M * pd[i] - sdy - xhat * sdyx));
      }
    }
  }
}

}  // namespace sln
