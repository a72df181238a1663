// Elementwise ops with own kernels: relu, dropout, add_inplace. Grid-stride
// loops, one thread per element.
//
// relu: y = max(x, 0); backward from the forward output: dx = y > 0 ? dy : 0
// (the CPU's oneDNN relu_use_dst_for_bwd). In place allowed for both.
// dropout: element i is kept iff sln::dropout_keep(seed, i, threshold), the
// very function the CPU backend and the reference use (core/dropout_mask.h,
// __host__ __device__), so all backends drop the same elements for a seed.
// The mask (n bytes) is kept for backward.
#include "core/dropout_mask.h"
#include "cuda/common.h"

namespace sln::cuda {

namespace {

__global__ void relu_forward_kernel(const float* x, float* y, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    y[i] = v > 0.f ? v : 0.f;
  }
}

__global__ void relu_backward_kernel(const float* y, const float* dy, float* dx, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dx[i] = y[i] > 0.f ? dy[i] : 0.f;
}

__global__ void dropout_forward_kernel(const float* x, float* y, uint8_t* mask, size_t n, uint64_t seed,
                                       uint64_t threshold, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint8_t keep = dropout_keep(seed, static_cast<uint64_t>(i), threshold) ? 1 : 0;
    mask[i] = keep;
    y[i] = keep ? __fmul_rn(x[i], scale) : 0.0f;   // no contraction: the CPU's x * scale
  }
}

__global__ void dropout_backward_kernel(const float* dy, const uint8_t* mask, float* dx, size_t n, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dx[i] = mask[i] ? __fmul_rn(dy[i], scale) : 0.0f;
}

__global__ void add_inplace_kernel(float* y, const float* x, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

class CudaRelu final : public ReluOp {
 public:
  CudaRelu(CudaBackend& be, const EltwiseDesc& d) : be_(be), n_(d.n) {
    SLN_CHECK_ARG(d.n >= 1, "relu: n must be >= 1, got " << d.n);
  }
  // x, y (n); x == y allowed
  void forward(const float* x, float* y) override {
    auto lk = be_.enter();
    relu_forward_kernel<<<grid_for(n_), 256, 0, be_.stream()>>>(x, y, n_);
    SLN_CU_LAUNCHED("relu forward n = " << n_);
  }
  // y: the forward output; dx == dy allowed
  void backward(const float* y, const float* dy, float* dx) override {
    if (!dx) return;
    auto lk = be_.enter();
    relu_backward_kernel<<<grid_for(n_), 256, 0, be_.stream()>>>(y, dy, dx, n_);
    SLN_CU_LAUNCHED("relu backward n = " << n_);
  }

 private:
  CudaBackend& be_;
  size_t n_;
};

class CudaDropout final : public DropoutOp {
 public:
  CudaDropout(CudaBackend& be, const DropoutDesc& d) : be_(be), n_(d.n) {
    SLN_CHECK_ARG(d.n >= 1, "dropout: n must be >= 1, got " << d.n);
    SLN_CHECK_ARG(d.p >= 0.0f && d.p < 1.0f, "dropout: p must be in [0, 1), got " << d.p << " (n = " << d.n << ")");
    scale_ = static_cast<float>(1.0 / (1.0 - static_cast<double>(d.p)));   // as the CPU backend
    threshold_ = dropout_threshold(d.p);
    auto lk = be_.enter();
    mask_.reserve(be_, n_);   // (n) bytes, 1 = kept
  }
  // x, y (n); x == y allowed
  void forward(const float* x, float* y, bool training, uint64_t seed) override {
    auto lk = be_.enter();
    training_ = training;
    if (!training) {
      if (y != x) SLN_CU(cudaMemcpyAsync(y, x, n_ * sizeof(float), cudaMemcpyDeviceToDevice, be_.stream()), "dropout eval n = " << n_);
      return;
    }
    dropout_forward_kernel<<<grid_for(n_), 256, 0, be_.stream()>>>(x, y, static_cast<uint8_t*>(mask_.data()), n_, seed,
                                                                     threshold_, scale_);
    SLN_CU_LAUNCHED("dropout forward n = " << n_);
  }
  // dy, dx (n); dx == dy allowed; the mask of the last forward
  void backward(const float* dy, float* dx) override {
    if (!dx) return;
    auto lk = be_.enter();
    if (!training_) {
      if (dx != dy) SLN_CU(cudaMemcpyAsync(dx, dy, n_ * sizeof(float), cudaMemcpyDeviceToDevice, be_.stream()), "dropout backward n = " << n_);
      return;
    }
    dropout_backward_kernel<<<grid_for(n_), 256, 0, be_.stream()>>>(dy, static_cast<const uint8_t*>(mask_.data()), dx, n_,
                                                                      scale_);
    SLN_CU_LAUNCHED("dropout backward n = " << n_);
  }

 private:
  CudaBackend& be_;
  size_t n_;
  float scale_ = 1;
  uint64_t threshold_ = 0;
  bool training_ = false;
  Buffer mask_;
};

}  // namespace

std::unique_ptr<ReluOp> make_relu(CudaBackend& be, const EltwiseDesc& d) { return std::make_unique<CudaRelu>(be, d); }
std::unique_ptr<DropoutOp> make_dropout(CudaBackend& be, const DropoutDesc& d) {
  return std::make_unique<CudaDropout>(be, d);
}

void launch_add_inplace(float* y, const float* x, size_t n, cudaStream_t s) {
  add_inplace_kernel<<<grid_for(n), 256, 0, s>>>(y, x, n);
}

}  // namespace sln::cuda
