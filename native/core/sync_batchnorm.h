// Synchronised batch norm (--sync-bn in a distributed run): training-mode
// statistics over the global batch, the per-channel sums all-reduced across the
// ranks (DistHooks::bn_sum). Host memory only. Float64 accumulation; the
// formulas are ref/batchnorm.cpp's (PyTorch BatchNorm2d semantics), with M the
// global number of values per channel.
#pragma once
#include <functional>
#include <vector>

#include "sln/ops.h"

namespace sln {

using SumFn = std::function<void(double* v, size_t n)>;

// Two all-reduces of C doubles (the mean, then the centred sum of squares, as the
// reference's two passes); updates the running statistics (unbiased variance over
// the global batch); save_mean / save_invstd (C) for backward.
void sync_batchnorm_forward(const BatchNormDesc& d, const float* x, const float* gamma, const float* beta,
                            float* running_mean, float* running_var, float* y, std::vector<double>& save_mean,
                            std::vector<double>& save_invstd, const SumFn& sum);

// One all-reduce of 2C doubles (sum dy, sum dy*xhat) for dx; dgamma / dbeta get
// this rank's sums (the gradient all-reduce adds the other ranks').
void sync_batchnorm_backward(const BatchNormDesc& d, const float* x, const float* gamma, const float* dy,
                             const std::vector<double>& save_mean, const std::vector<double>& save_invstd,
                             float* dx, float* dgamma, float* dbeta, const SumFn& sum);

}  // namespace sln
