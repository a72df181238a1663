// Batch norm on cuDNN (CUDNN_BATCHNORM_SPATIAL: statistics per channel over
// N, H, W; with H = W = 1 that is PyTorch's BatchNorm1d over (N, C)).
//
// Running statistics: cuDNN's cudnnBatchNormalizationForwardTraining updates
//   running_mean = (1 - f) running_mean + f mean
//   running_var  = (1 - f) running_var  + f var * M / (M - 1)   (unbiased, M = N H W)
// with f = exponentialAverageFactor; we pass f = momentum, which is exactly
// PyTorch's (and our CPU backend's) rule. The batch mean and inverse standard
// deviation it saves are kept in the op for backward.
#include <sstream>

#include "cuda/common.h"

namespace sln::cuda {

namespace {

class CudaBatchNorm final : public BatchNormOp {
 public:
  CudaBatchNorm(CudaBackend& be, const BatchNormDesc& d) : be_(be), d_(d) {
    SLN_CHECK_ARG(d.N >= 1 && d.C >= 1 && d.H >= 1 && d.W >= 1, "batchnorm: every size must be >= 1, got " << shape());
    SLN_CHECK_ARG(d.eps > 0 && static_cast<double>(d.eps) >= CUDNN_BN_MIN_EPSILON,
                  "batchnorm: eps must be > 0 (and >= cuDNN's minimum " << CUDNN_BN_MIN_EPSILON << "), got " << d.eps);
    SLN_CHECK_ARG(d.momentum >= 0 && d.momentum <= 1, "batchnorm: momentum must be in [0,1], got " << d.momentum);
    M_ = static_cast<double>(d.N) * d.H * d.W;
    auto lk = be_.enter();
    try {
      SLN_CUDNN(cudnnCreateTensorDescriptor(&x_), "batchnorm " << shape());
      SLN_CUDNN(cudnnCreateTensorDescriptor(&p_), "batchnorm " << shape());
      SLN_CUDNN(cudnnSetTensor4dDescriptor(x_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d.N, d.C, d.H, d.W),
                "batchnorm " << shape());
      SLN_CUDNN(cudnnDeriveBNTensorDescriptor(p_, x_, CUDNN_BATCHNORM_SPATIAL), "batchnorm " << shape());
      const size_t cb = static_cast<size_t>(d.C) * sizeof(float);
      save_mean_.reserve(be_, cb);     // (C)
      save_invstd_.reserve(be_, cb);   // (C)
    } catch (...) {
      destroy();
      throw;
    }
  }
  ~CudaBatchNorm() override { destroy(); }

  // x, y (N,C,H,W); gamma, beta, running_mean, running_var (C)
  void forward(const float* x, const float* gamma, const float* beta, float* running_mean, float* running_var,
               float* y, bool training) override {
    SLN_CHECK_ARG(!training || M_ > 1, "batchnorm: training needs more than 1 value per channel, got " << shape());
    auto lk = be_.enter();
    const float one = 1.f, zero = 0.f;
    if (!training) {
      SLN_CUDNN(cudnnBatchNormalizationForwardInference(be_.cudnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_, x, x_, y,
                                                        p_, gamma, beta, running_mean, running_var,
                                                        static_cast<double>(d_.eps)),
                "batchnorm inference " << shape());
      return;
    }
    SLN_CUDNN(cudnnBatchNormalizationForwardTraining(be_.cudnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_, x, x_, y, p_,
                                                     gamma, beta, static_cast<double>(d_.momentum), running_mean,
                                                     running_var, static_cast<double>(d_.eps), save_mean_.f32(),
                                                     save_invstd_.f32()),
              "batchnorm training " << shape());
    have_stats_ = true;
  }

  // dx (N,C,H,W) or null, dgamma, dbeta (C) or null; overwritten
  void backward(const float* x, const float* gamma, const float* dy, float* dx, float* dgamma, float* dbeta) override {
    SLN_CHECK_ARG(have_stats_, "batchnorm: backward needs a training forward first " << shape());
    auto lk = be_.enter();
    const size_t cb = static_cast<size_t>(d_.C) * sizeof(float);
    if (!dx) dx = static_cast<float*>(scratch_dx_.reserve(be_, static_cast<size_t>(M_) * cb));
    if (!dgamma || !dbeta) scratch_c_.reserve(be_, 2 * cb);
    if (!dgamma) dgamma = scratch_c_.f32();
    if (!dbeta) dbeta = scratch_c_.f32() + d_.C;
    const float one = 1.f, zero = 0.f;
    SLN_CUDNN(cudnnBatchNormalizationBackward(be_.cudnn(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, x_, x, x_, dy,
                                              x_, dx, p_, gamma, dgamma, dbeta, static_cast<double>(d_.eps),
                                              save_mean_.f32(), save_invstd_.f32()),
              "batchnorm backward " << shape());
  }

 private:
  std::string shape() const {
    std::ostringstream os;
    os << "(N,C,H,W) = (" << d_.N << "," << d_.C << "," << d_.H << "," << d_.W << ")";
    return os.str();
  }
  void destroy() noexcept {
    if (x_) cudnnDestroyTensorDescriptor(x_);
    if (p_) cudnnDestroyTensorDescriptor(p_);
    x_ = p_ = nullptr;
  }

  CudaBackend& be_;
  BatchNormDesc d_;
  double M_ = 1;   // N*H*W values per channel
  bool have_stats_ = false;
  cudnnTensorDescriptor_t x_ = nullptr;   // (N,C,H,W): x, y, dy, dx
  cudnnTensorDescriptor_t p_ = nullptr;   // (1,C,1,1): gamma, beta, running and saved statistics
  Buffer save_mean_, save_invstd_;        // (C) each, from the last training forward
  Buffer scratch_dx_;                     // (N,C,H,W) when the caller passes dx = null
  Buffer scratch_c_;                      // (2, C) when the caller passes dgamma or dbeta = null
};

}  // namespace

std::unique_ptr<BatchNormOp> make_batchnorm(CudaBackend& be, const BatchNormDesc& d) {
  return std::make_unique<CudaBatchNorm>(be, d);
}

}  // namespace sln::cuda
