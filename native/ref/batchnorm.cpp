// Float64 reference batch norm (PyTorch BatchNorm2d semantics).
#include <cmath>
#include <vector>

#include "ref/ref.h"

namespace sln::ref {

// x, y (N,C,H,W); gamma, beta, running_mean, running_var, save_mean, save_invstd (C)
void batchnorm_forward(const BatchNormDesc& d, const double* x, const double* gamma, const double* beta,
                       double* running_mean, double* running_var, double* y, bool training,
                       double* save_mean, double* save_invstd) {
  const size_t HW = static_cast<size_t>(d.H) * d.W;
  const double M = static_cast<double>(d.N) * HW;   // values per channel
  for (int c = 0; c < d.C; c++) {
    double mean, var;   // var: biased, used to normalise
    if (training) {
      double s = 0;
      for (int n = 0; n < d.N; n++)
        for (size_t i = 0; i < HW; i++) s += x[(static_cast<size_t>(n) * d.C + c) * HW + i];
      mean = s / M;
      double ss = 0;
      for (int n = 0; n < d.N; n++)
        for (size_t i = 0; i < HW; i++) {
          double t = x[(static_cast<size_t>(n) * d.C + c) * HW + i] - mean;
          ss += t * t;
        }
      var = ss / M;
      // running statistics use the unbiased variance, as torch
      running_mean[c] = (1 - d.momentum) * running_mean[c] + d.momentum * mean;
      running_var[c] = (1 - d.momentum) * running_var[c] + d.momentum * (M > 1 ? ss / (M - 1) : var);
    } else {
      mean = running_mean[c];
      var = running_var[c];
    }
    const double invstd = 1.0 / std::sqrt(var + d.eps);
    if (training) {
      save_mean[c] = mean;
      save_invstd[c] = invstd;
    }
    for (int n = 0; n < d.N; n++)
      for (size_t i = 0; i < HW; i++) {
        size_t k = (static_cast<size_t>(n) * d.C + c) * HW + i;
        y[k] = (x[k] - mean) * invstd * gamma[c] + beta[c];
      }
  }
}

// dx = gamma * invstd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)); dgamma = sum(dy * xhat); dbeta = sum(dy)
void batchnorm_backward(const BatchNormDesc& d, const double* x, const double* gamma, const double* dy,
                        const double* save_mean, const double* save_invstd,
                        double* dx, double* dgamma, double* dbeta) {
  const size_t HW = static_cast<size_t>(d.H) * d.W;
  const double M = static_cast<double>(d.N) * HW;
  for (int c = 0; c < d.C; c++) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sdy = 0, sdyx = 0;
    for (int n = 0; n < d.N; n++)
      for (size_t i = 0; i < HW; i++) {
        size_t k = (static_cast<size_t>(n) * d.C + c) * HW + i;
        sdy += dy[k];
        sdyx += dy[k] * (x[k] - mean) * invstd;
      }
    if (dgamma) dgamma[c] = sdyx;
    if (dbeta) dbeta[c] = sdy;
    if (dx)
      for (int n = 0; n < d.N; n++)
        for (size_t i = 0; i < HW; i++) {
          size_t k = (static_cast<size_t>(n) * d.C + c) * HW + i;
          double xhat = (x[k] - mean) * invstd;
          dx[k] = gamma[c] * invstd / M * (M * dy[k] - sdy - xhat * sdyx);
        }
  }
}

}  // namespace sln::ref
