// Max and average pooling with own kernels (PyTorch semantics as the reference
// native/ref/pool.cpp: floor output size, padding never wins a max, the first
// maximum in window order wins ties, average counts padding).
//
// Own kernels rather than cuDNN: the max-pool forward keeps the argmax (int32,
// plane-local index, one per output) so backward needs neither x nor y and
// routes each gradient to the same element as the CPU and the reference do.
// Both backward passes are gathers (one thread per input element, summing
// the outputs whose window covers it in increasing output order) rather than
// atomic scatters, so results are deterministic; for overlapping windows the
// order of the additions is the reference's.
#include <sstream>

#include "cuda/common.h"
#include "sln/shape_checks.h"

namespace sln::cuda {

namespace {

struct PoolGeom {
  int H, W, OH, OW, KH, KW, stride, pad;
};

// f(ih * W + iw) for every input position of output (oh, ow)'s window inside the
// image (padding skipped), rows then columns: the order the first-maximum rule needs.
template <class F>
__device__ inline void for_each_in_window(const PoolGeom& g, int oh, int ow, F f) {
  for (int r = 0; r < g.KH; r++) {
    const int ih = oh * g.stride - g.pad + r;
    if (ih < 0 || ih >= g.H) continue;
    for (int q = 0; q < g.KW; q++) {
      const int iw = ow * g.stride - g.pad + q;
      if (iw < 0 || iw >= g.W) continue;
      f(ih * g.W + iw);
    }
  }
}

__global__ void maxpool_forward_kernel(const float* __restrict__ x, float* __restrict__ y, int32_t* __restrict__ argmax,
                                       size_t total, PoolGeom g) {
  for (size_t o = blockIdx.x * size_t(blockDim.x) + threadIdx.x; o < total; o += size_t(gridDim.x) * blockDim.x) {
    const int ow = static_cast<int>(o % g.OW), oh = static_cast<int>((o / g.OW) % g.OH);
    const size_t nc = o / (static_cast<size_t>(g.OW) * g.OH);
    const float* xp = x + nc * g.H * g.W;
    float best = -INFINITY;
    int bi = -1;
    for_each_in_window(g, oh, ow, [&](int i) {
      const float v = xp[i];
      if (bi < 0 || v > best) {
        best = v;
        bi = i;
      }
    });
    y[o] = best;
    argmax[o] = bi;
  }
}

// First and last output index whose window covers input index i (may be empty).
__device__ inline void covering(int i, int K, int stride, int pad, int O, int& lo, int& hi) {
  const int a = i + pad - K + 1;
  lo = a <= 0 ? 0 : (a + stride - 1) / stride;
  hi = (i + pad) / stride;
  if (hi > O - 1) hi = O - 1;
}

// Calls f(o, oh, ow) for every output element o (an index into the whole y) whose
// window covers input element i (an index into the whole x).
template <class F>
__device__ inline void for_each_covering(const PoolGeom& g, size_t i, F&& f) {
  const int iw = static_cast<int>(i % g.W), ih = static_cast<int>((i / g.W) % g.H);
  const size_t nc = i / (static_cast<size_t>(g.W) * g.H);
  int oh0, oh1, ow0, ow1;
  covering(ih, g.KH, g.stride, g.pad, g.OH, oh0, oh1);
  covering(iw, g.KW, g.stride, g.pad, g.OW, ow0, ow1);
  const size_t base = nc * g.OH * g.OW;
  for (int oh = oh0; oh <= oh1; oh++)
    for (int ow = ow0; ow <= ow1; ow++) f(base + static_cast<size_t>(oh) * g.OW + ow, oh, ow);
}

__global__ void maxpool_backward_kernel(const float* __restrict__ dy, const int32_t* __restrict__ argmax,
                                        float* __restrict__ dx, size_t total, PoolGeom g) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    const int self = static_cast<int>(i % (static_cast<size_t>(g.W) * g.H));  // ih * W + iw
    float acc = 0.f;
    for_each_covering(g, i, [&](size_t o, int, int) {
      if (argmax[o] == self) acc += dy[o];
    });
    dx[i] = acc;
  }
}

// torch's count_include_pad divisor: the window clipped to the padded input.
__device__ inline int avg_divisor(const PoolGeom& g, int oh, int ow) {
  const int h0 = oh * g.stride - g.pad, w0 = ow * g.stride - g.pad;
  const int h1 = min(h0 + g.KH, g.H + g.pad), w1 = min(w0 + g.KW, g.W + g.pad);
  return (h1 - h0) * (w1 - w0);
}

__global__ void avgpool_forward_kernel(const float* __restrict__ x, float* __restrict__ y, size_t total, PoolGeom g) {
  for (size_t o = blockIdx.x * size_t(blockDim.x) + threadIdx.x; o < total; o += size_t(gridDim.x) * blockDim.x) {
    const int ow = static_cast<int>(o % g.OW), oh = static_cast<int>((o / g.OW) % g.OH);
    const size_t nc = o / (static_cast<size_t>(g.OW) * g.OH);
    const float* xp = x + nc * g.H * g.W;
    float s = 0.f;
    for_each_in_window(g, oh, ow, [&](int i) { s += xp[i]; });
    y[o] = s / static_cast<float>(avg_divisor(g, oh, ow));
  }
}

__global__ void avgpool_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx, size_t total, PoolGeom g) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < total; i += size_t(gridDim.x) * blockDim.x) {
    float acc = 0.f;
    for_each_covering(g, i, [&](size_t o, int oh, int ow) { acc += dy[o] / static_cast<float>(avg_divisor(g, oh, ow)); });
    dx[i] = acc;
  }
}


class CudaPool final : public Pool2dOp {
 public:
  CudaPool(CudaBackend& be, const Pool2dDesc& d, bool is_max)
      : be_(be), d_(d), max_(is_max), name_(is_max ? "maxpool2d" : "avgpool2d") {
    check_pool(name_, d);
    g_ = PoolGeom{d.H, d.W, d.OH(), d.OW(), d.KH(), d.KW(), d.stride, d.pad};
    nx_ = static_cast<size_t>(d.N) * d.C * d.H * d.W;
    ny_ = static_cast<size_t>(d.N) * d.C * g_.OH * g_.OW;
    if (max_) {
      auto lk = be_.enter();
      argmax_.reserve(be_, ny_ * sizeof(int32_t));   // (N,C,OH,OW)
    }
  }

  // x (N,C,H,W), y (N,C,OH,OW)
  void forward(const float* x, float* y, bool training) override {
    auto lk = be_.enter();
    if (max_) {
      maxpool_forward_kernel<<<grid_for(ny_), 256, 0, be_.stream()>>>(x, y, static_cast<int32_t*>(argmax_.data()), ny_, g_);
      have_fwd_ = true;
    } else {
      avgpool_forward_kernel<<<grid_for(ny_), 256, 0, be_.stream()>>>(x, y, ny_, g_);
    }
    SLN_CU_LAUNCHED(pool_shape(name_, d_) << " forward");
  }

  // dy (N,C,OH,OW) -> dx (N,C,H,W), overwritten
  void backward(const float* dy, float* dx) override {
    if (!dx) return;
    SLN_CHECK_ARG(!max_ || have_fwd_, pool_shape(name_, d_) << ": backward needs a forward first");
    auto lk = be_.enter();
    if (max_)
      maxpool_backward_kernel<<<grid_for(nx_), 256, 0, be_.stream()>>>(dy, static_cast<const int32_t*>(argmax_.data()), dx,
                                                                        nx_, g_);
    else
      avgpool_backward_kernel<<<grid_for(nx_), 256, 0, be_.stream()>>>(dy, dx, nx_, g_);
    SLN_CU_LAUNCHED(pool_shape(name_, d_) << " backward");
  }

 private:
  CudaBackend& be_;
  Pool2dDesc d_;
  bool max_;
  const char* name_;
  PoolGeom g_{};
  size_t nx_ = 0, ny_ = 0;
  bool have_fwd_ = false;
  Buffer argmax_;   // (N,C,OH,OW) int32 plane-local index of each output's maximum
};

}  // namespace

std::unique_ptr<Pool2dOp> make_maxpool2d(CudaBackend& be, const Pool2dDesc& d) {
  return std::make_unique<CudaPool>(be, d, true);
}
std::unique_ptr<Pool2dOp> make_avgpool2d(CudaBackend& be, const Pool2dDesc& d) {
  return std::make_unique<CudaPool>(be, d, false);
}

}  // namespace sln::cuda
