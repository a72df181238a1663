// conv2d on cuDNN's legacy convolution API (still in cuDNN 9: cudnn_cnn.h):
// cudnnConvolutionForward + cudnnAddTensor for the bias, and
// cudnnConvolutionBackwardData / BackwardFilter / BackwardBias. Cross-
// correlation (PyTorch's convolution), NCHW float32, dilation 1, one group.
//
// Algorithms are picked once per op with cuDNN's heuristics
// (cudnnGet*Algorithm_v7, no trial runs): the first successful algorithm whose
// results are deterministic and whose workspace fits kMaxWorkspace, else the
// first successful one that fits. The workspace is one buffer of the largest of
// the three, from the backend's allocator. They are picked again when the
// backend's TF32 setting changes: TF32 off = the heuristics are asked under
// CUDNN_FMA_MATH and tensor-op results are skipped (no TF32, as PyTorch with
// allow_tf32 = False) and every pass runs under CUDNN_FMA_MATH; on = asked under
// CUDNN_DEFAULT_MATH, each pass runs with the math type its chosen result reports
// (set on the descriptor before each call, as PyTorch does).
#include <sstream>

#include "cuda/common.h"
#include "sln/shape_checks.h"

namespace sln::cuda {

namespace {

constexpr size_t kMaxWorkspace = size_t(512) << 20;

// Without TF32, results that need tensor-op math are skipped (as PyTorch does
// for float32 with allow_tf32 = False).
template <class Perf>
const Perf* choose(const Perf* perf, int n, bool tf32) {
  auto usable = [&](const Perf& p) {
    return p.status == CUDNN_STATUS_SUCCESS && p.memory <= kMaxWorkspace &&
           (tf32 || (p.mathType != CUDNN_TENSOR_OP_MATH && p.mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION));
  };
  for (int i = 0; i < n; i++)
    if (usable(perf[i]) && perf[i].determinism == CUDNN_DETERMINISTIC) return &perf[i];
  for (int i = 0; i < n; i++)
    if (usable(perf[i])) return &perf[i];
  return nullptr;
}

class CudaConv2d final : public Conv2dOp {
 public:
  CudaConv2d(CudaBackend& be, const Conv2dDesc& d) : be_(be), d_(d) {
    check_conv2d(d);
    auto lk = be_.enter();
    try {
      SLN_CUDNN(cudnnCreateTensorDescriptor(&x_), "conv2d " << d_);
      SLN_CUDNN(cudnnCreateTensorDescriptor(&y_), "conv2d " << d_);
      SLN_CUDNN(cudnnCreateTensorDescriptor(&b_), "conv2d " << d_);
      SLN_CUDNN(cudnnCreateFilterDescriptor(&w_), "conv2d " << d_);
      SLN_CUDNN(cudnnCreateConvolutionDescriptor(&conv_), "conv2d " << d_);
      SLN_CUDNN(cudnnSetTensor4dDescriptor(x_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d.N, d.C, d.H, d.W), "conv2d " << d_);
      SLN_CUDNN(cudnnSetTensor4dDescriptor(y_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, d.N, d.K, d.OH(), d.OW()),
                "conv2d " << d_);
      SLN_CUDNN(cudnnSetTensor4dDescriptor(b_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, d.K, 1, 1), "conv2d " << d_);
      SLN_CUDNN(cudnnSetFilter4dDescriptor(w_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, d.K, d.C, d.R, d.S), "conv2d " << d_);
      SLN_CUDNN(cudnnSetConvolution2dDescriptor(conv_, d.pad, d.pad, d.stride, d.stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT),
                "conv2d " << d_);
      int n = 0, c = 0, h = 0, w = 0;
      SLN_CUDNN(cudnnGetConvolution2dForwardOutputDim(conv_, x_, w_, &n, &c, &h, &w), "conv2d " << d_);
      if (n != d.N || c != d.K || h != d.OH() || w != d.OW())
        SLN_FAIL(Internal, "SLN_INTERNAL", "conv2d " << d_ << ": cuDNN output (" << n << "," << c << "," << h << "," << w
                                                     << ") differs from ours (" << d.N << "," << d.K << "," << d.OH()
                                                     << "," << d.OW() << ")");
      pick();
    } catch (...) {
      destroy();
      throw;
    }
  }
  ~CudaConv2d() override { destroy(); }

  // x (N,C,H,W), w (K,C,R,S), b (K) or null, y (N,K,OH,OW)
  void forward(const float* x, const float* w, const float* b, float* y) override {
    SLN_CHECK_ARG(x && w && y, "conv2d forward " << d_ << ": x, w and y must not be null");
    SLN_CHECK_ARG(d_.bias == (b != nullptr),
                  "conv2d forward " << d_ << ": b must be given exactly when the descriptor has bias");
    auto lk = be_.enter();
    if (tf32_ != be_.tf32()) pick();
    const float one = 1.f, zero = 0.f;
    SLN_CUDNN(cudnnSetConvolutionMathType(conv_, fwd_math_), "conv2d forward " << d_);
    SLN_CUDNN(cudnnConvolutionForward(be_.cudnn(), &one, x_, x, w_, w, conv_, fwd_, ws_.data(), ws_.bytes(), &zero, y_, y),
              "conv2d forward " << d_ << " algo " << static_cast<int>(fwd_));
    if (b) SLN_CUDNN(cudnnAddTensor(be_.cudnn(), &one, b_, b, &one, y_, y), "conv2d forward bias " << d_);
  }

  // dy (N,K,OH,OW) -> dx (N,C,H,W) or null, dw (K,C,R,S) or null, db (K) or null; overwritten.
  void backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db) override {
    SLN_CHECK_ARG(x && w && dy, "conv2d backward " << d_ << ": x, w and dy must not be null");
    SLN_CHECK_ARG(d_.bias || !db, "conv2d backward " << d_ << ": db requested but the descriptor has no bias");
    auto lk = be_.enter();
    if (tf32_ != be_.tf32()) pick();
    const float one = 1.f, zero = 0.f;
    if (db) SLN_CUDNN(cudnnConvolutionBackwardBias(be_.cudnn(), &one, y_, dy, &zero, b_, db), "conv2d backward bias " << d_);
    if (dw) {
      SLN_CUDNN(cudnnSetConvolutionMathType(conv_, bwd_filter_math_), "conv2d backward filter " << d_);
      SLN_CUDNN(cudnnConvolutionBackwardFilter(be_.cudnn(), &one, x_, x, y_, dy, conv_, bwd_filter_, ws_.data(), ws_.bytes(),
                                               &zero, w_, dw),
                "conv2d backward filter " << d_ << " algo " << static_cast<int>(bwd_filter_));
    }
    if (dx) {
      SLN_CUDNN(cudnnSetConvolutionMathType(conv_, bwd_data_math_), "conv2d backward data " << d_);
      SLN_CUDNN(cudnnConvolutionBackwardData(be_.cudnn(), &one, w_, w, y_, dy, conv_, bwd_data_, ws_.data(), ws_.bytes(),
                                             &zero, x_, dx),
                "conv2d backward data " << d_ << " algo " << static_cast<int>(bwd_data_));
    }
  }

 private:
  // The algorithm choose() picks from cuDNN's ranked list, and the math type to run it with.
  template <class Perf, class Algo>
  void take(const Perf* perf, int n, bool tf32, const char* what, Algo& algo, cudnnMathType_t& math) const {
    const Perf* p = choose(perf, n, tf32);
    if (!p) SLN_FAIL(Unsupported, "SLN_CUDNN", "conv2d " << d_ << ": cuDNN has no " << what << " algorithm for this shape");
    algo = p->algo;
    math = tf32 ? p->mathType : CUDNN_FMA_MATH;
  }

  void pick() {
    const bool tf32 = be_.tf32();
    cudnnHandle_t h = be_.cudnn();
    SLN_CUDNN(cudnnSetConvolutionMathType(conv_, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH), "conv2d " << d_);
    int n = 0;
    {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      SLN_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(h, x_, w_, conv_, y_, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf),
                "conv2d " << d_);
      take(perf, n, tf32, "forward", fwd_, fwd_math_);
    }
    {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      SLN_CUDNN(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, w_, y_, conv_, x_, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n,
                                                            perf),
                "conv2d " << d_);
      take(perf, n, tf32, "backward-data", bwd_data_, bwd_data_math_);
    }
    {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      SLN_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, x_, y_, conv_, w_, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                              &n, perf),
                "conv2d " << d_);
      take(perf, n, tf32, "backward-filter", bwd_filter_, bwd_filter_math_);
    }
    // exact sizes for the chosen algorithms (the perf entries are estimates)
    size_t a = 0, b = 0, c = 0;
    SLN_CUDNN(cudnnSetConvolutionMathType(conv_, fwd_math_), "conv2d " << d_);
    SLN_CUDNN(cudnnGetConvolutionForwardWorkspaceSize(h, x_, w_, conv_, y_, fwd_, &a), "conv2d " << d_);
    SLN_CUDNN(cudnnSetConvolutionMathType(conv_, bwd_data_math_), "conv2d " << d_);
    SLN_CUDNN(cudnnGetConvolutionBackwardDataWorkspaceSize(h, w_, y_, conv_, x_, bwd_data_, &b), "conv2d " << d_);
    SLN_CUDNN(cudnnSetConvolutionMathType(conv_, bwd_filter_math_), "conv2d " << d_);
    SLN_CUDNN(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, x_, y_, conv_, w_, bwd_filter_, &c), "conv2d " << d_);
    size_t ws = a > b ? a : b;
    ws = ws > c ? ws : c;
    if (ws > ws_.bytes() || !ws_.data()) ws_.reserve(be_, ws);
    tf32_ = tf32;
  }

  void destroy() noexcept {
    if (x_) cudnnDestroyTensorDescriptor(x_);
    if (y_) cudnnDestroyTensorDescriptor(y_);
    if (b_) cudnnDestroyTensorDescriptor(b_);
    if (w_) cudnnDestroyFilterDescriptor(w_);
    if (conv_) cudnnDestroyConvolutionDescriptor(conv_);
    x_ = y_ = b_ = nullptr;
    w_ = nullptr;
    conv_ = nullptr;
  }

  CudaBackend& be_;
  Conv2dDesc d_;
  cudnnTensorDescriptor_t x_ = nullptr, y_ = nullptr, b_ = nullptr;  // (N,C,H,W), (N,K,OH,OW), (1,K,1,1)
  cudnnFilterDescriptor_t w_ = nullptr;                              // (K,C,R,S)
  cudnnConvolutionDescriptor_t conv_ = nullptr;
  cudnnConvolutionFwdAlgo_t fwd_{};
  cudnnConvolutionBwdDataAlgo_t bwd_data_{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter_{};
  cudnnMathType_t fwd_math_ = CUDNN_FMA_MATH, bwd_data_math_ = CUDNN_FMA_MATH, bwd_filter_math_ = CUDNN_FMA_MATH;
  bool tf32_ = false;
  Buffer ws_;   // workspace, the largest of the three algorithms'
};

}  // namespace

std::unique_ptr<Conv2dOp> make_conv2d(CudaBackend& be, const Conv2dDesc& d) { return std::make_unique<CudaConv2d>(be, d); }

}  // namespace sln::cuda
