// torch.optim.SGD step (dampening 0, nesterov off) over n contiguous
// parameters, one kernel:
//   g' = g + wd * w; buf = first ? g' : momentum * buf + g'; w -= lr * buf
// Written with round-to-nearest intrinsics so nvcc does not fuse the products
// into FMAs: each operation rounds as in the CPU backend's loop (native/cpu/
// sgd.cpp, compiled without FMA contraction for x86-64), so both backends
// give the same bits for the same inputs.
#include "cuda/common.h"

namespace sln::cuda {

namespace {

__global__ void sgd_kernel(float* w, const float* g, float* buf, size_t n, float lr, float momentum, float wd,
                           int first) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const float wi = w[i];
    const float gp = __fadd_rn(g[i], __fmul_rn(wd, wi));
    const float b = first ? gp : __fadd_rn(__fmul_rn(momentum, buf[i]), gp);
    buf[i] = b;
    w[i] = __fsub_rn(wi, __fmul_rn(lr, b));
  }
}

}  // namespace

void launch_sgd_step(float* w, const float* g, float* buf, size_t n, float lr, float momentum, float weight_decay,
                     bool first, cudaStream_t s) {
  sgd_kernel<<<grid_for(n), 256, 0, s>>>(w, g, buf, n, lr, momentum, weight_decay, first ? 1 : 0);
}

}  // namespace sln::cuda
