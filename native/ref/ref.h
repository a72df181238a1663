// Float64 naive reference of every op: small, obvious loops, no library.
// Compiled into the test-only addon only (native/sources.json's test_addon)
// and the fake CUDA device of test/helpers/fake_cuda.ts; the tests check the
// backends against it through the op harness (native/harness) and check it by
// finite differences (test/ops_conv_linear.test.ts, test/ops_misc.test.ts).
// Same descriptors and the same gradient rule as sln/ops.h (backward
// overwrites its outputs; null = skip).
#pragma once
#include <cstddef>
#include <cstdint>

#include "sln/ops.h"

namespace sln::ref {

void conv2d_forward(const Conv2dDesc& d, const double* x, const double* w, const double* b, double* y);
void conv2d_backward(const Conv2dDesc& d, const double* x, const double* w, const double* dy,
                     double* dx, double* dw, double* db);

// save_mean/save_invstd (C) are written by a training forward and read by backward.
void batchnorm_forward(const BatchNormDesc& d, const double* x, const double* gamma, const double* beta,
                       double* running_mean, double* running_var, double* y, bool training,
                       double* save_mean, double* save_invstd);
void batchnorm_backward(const BatchNormDesc& d, const double* x, const double* gamma, const double* dy,
                        const double* save_mean, const double* save_invstd,
                        double* dx, double* dgamma, double* dbeta);

void relu_forward(size_t n, const double* x, double* y);
void relu_backward(size_t n, const double* y, const double* dy, double* dx);

// argmax (N,C,OH,OW): flat index into x of each maximum (first maximum wins ties)
void maxpool2d_forward(const Pool2dDesc& d, const double* x, double* y, int64_t* argmax);
void maxpool2d_backward(const Pool2dDesc& d, const int64_t* argmax, const double* dy, double* dx);
void avgpool2d_forward(const Pool2dDesc& d, const double* x, double* y);
void avgpool2d_backward(const Pool2dDesc& d, const double* dy, double* dx);

void linear_forward(const LinearDesc& d, const double* x, const double* w, const double* b, double* y);
void linear_backward(const LinearDesc& d, const double* x, const double* w, const double* dy,
                     double* dx, double* dw, double* db);

// mask from sln::dropout_mask (native/core/dropout_mask.h), shared by all backends
void dropout_forward(size_t n, double p, const uint8_t* mask, const double* x, double* y);
void dropout_backward(size_t n, double p, const uint8_t* mask, const double* dy, double* dx);

double cross_entropy(const double* logits, const int32_t* labels, int N, int K, double* dlogits, double scale);

void sgd_step(double* w, const double* g, double* buf, size_t n, double lr, double momentum,
              double weight_decay, bool first);

}  // namespace sln::ref
