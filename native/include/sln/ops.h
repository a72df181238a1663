// Op descriptors and the backend interface.
//
// Layout: activations are NCHW float32, contiguous, unless a descriptor says
// Layout::blocked16 (nChw16c: channel blocks of 16 innermost, C % 16 == 0, so
// the same number of floats; oneDNN's preferred layout on AVX-512). Only a
// backend whose blocked_layouts() is true gets blocked descriptors (the CPU);
// with H = W = 1 the two layouts are the same bytes. Weights use PyTorch's
// layouts: conv (Cout, Cin, kh, kw), linear (out, in).
//
// Gradient rule (written once, here): every backward() OVERWRITES its outputs
// (dx, dw, db, ...); nothing accumulates. Where the graph joins (several heads
// on one feature, a residual add) the model sums the branches itself. A null
// output pointer means "not needed" (for example dx of the first layer).
//
// Ops are objects created once per shape by a Backend. They may keep what
// their forward saved for their backward (batch-norm statistics, max-pool
// indices, dropout masks), so backward() must follow the forward() of the same
// batch. They may also keep library primitives and scratch memory, so creating
// them is slow and calling them is fast.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace sln {

enum class Layout : int32_t { plain = 0, blocked16 = 1 };

// Element (n, c, h, w) of an (N, C, H, W) activation in layout l.
inline size_t layout_index(Layout l, size_t n, size_t c, size_t h, size_t w, size_t C, size_t H, size_t W) {
  if (l == Layout::plain) return ((n * C + c) * H + h) * W + w;
  return (((n * (C / 16) + c / 16) * H + h) * W + w) * 16 + c % 16;
}

struct Conv2dDesc {
  int N = 1, C = 1, H = 1, W = 1;   // input (N, C, H, W)
  int K = 1;                        // output channels
  int R = 1, S = 1;                 // kernel height, width
  int stride = 1, pad = 0;
  bool bias = false;
  Layout src_layout = Layout::plain, dst_layout = Layout::plain;   // x and dx; y and dy
  // Mixed precision (--precision bf16): x, w and dy are rounded to bfloat16 for
  // the three convolutions, which accumulate in float32; y, dx, dw and db stay
  // float32 (the caller's buffers and the master weights do not change type).
  // Only where the backend computes bfloat16 (Backend::bf16_native or emulated).
  bool bf16 = false;
  int OH() const { return (H + 2 * pad - R) / stride + 1; }
  int OW() const { return (W + 2 * pad - S) / stride + 1; }
};

// Max or average pooling (average counts padding, as PyTorch's default
// count_include_pad=True; output size rounds down, PyTorch's ceil_mode=False).
// Global average pooling is kernel_h = H, kernel_w = W, stride 1.
// kernel_h/kernel_w = 0 (the default) mean "kernel", so a square kernel needs
// only `kernel`. Padding is at most half the kernel, as PyTorch requires.
struct Pool2dDesc {
  int N = 1, C = 1, H = 1, W = 1;
  int kernel = 2, stride = 2, pad = 0;
  int kernel_h = 0, kernel_w = 0;   // 0 = kernel
  Layout layout = Layout::plain;    // x, y, dx, dy
  int KH() const { return kernel_h > 0 ? kernel_h : kernel; }
  int KW() const { return kernel_w > 0 ? kernel_w : kernel; }
  int OH() const { return (H + 2 * pad - KH()) / stride + 1; }
  int OW() const { return (W + 2 * pad - KW()) / stride + 1; }
};

struct BatchNormDesc {
  int N = 1, C = 1, H = 1, W = 1;   // H = W = 1 for batchnorm1d
  float eps = 1e-5f;
  float momentum = 0.1f;            // running = (1 - m) * running + m * batch (unbiased var)
  Layout layout = Layout::plain;    // x, y, dx, dy
  // Fuse the ReLU that follows: y = max(0, bn(x)); backward then takes dy of
  // that y and masks it with y > 0, reading the y of the last training forward
  // (which the caller keeps intact until backward). CPU, blocked16 only: the
  // other ops refuse it (the model asks only there).
  bool relu = false;
};

struct LinearDesc {
  int N = 1, in = 1, out = 1;
  bool bias = true;
};

struct EltwiseDesc {
  size_t n = 0;                     // number of elements
};

struct DropoutDesc {
  size_t n = 0;
  float p = 0.5f;                   // probability of zeroing; survivors scaled by 1/(1-p)
};

class Conv2dOp {
 public:
  virtual ~Conv2dOp() = default;
  // x (N,C,H,W), w (K,C,R,S), b (K) or null, y (N,K,OH,OW)
  virtual void forward(const float* x, const float* w, const float* b, float* y) = 0;
  // dx (N,C,H,W) or null, dw (K,C,R,S), db (K) or null
  virtual void backward(const float* x, const float* w, const float* dy,
                        float* dx, float* dw, float* db) = 0;
};

class BatchNormOp {
 public:
  virtual ~BatchNormOp() = default;
  // training: normalise with batch statistics, update running_mean/var in place,
  // save the statistics for backward. eval: normalise with running statistics.
  virtual void forward(const float* x, const float* gamma, const float* beta,
                       float* running_mean, float* running_var, float* y, bool training) = 0;
  // after a training forward: dx (N,C,H,W), dgamma (C), dbeta (C)
  virtual void backward(const float* x, const float* gamma, const float* dy,
                        float* dx, float* dgamma, float* dbeta) = 0;
};

class ReluOp {
 public:
  virtual ~ReluOp() = default;
  virtual void forward(const float* x, float* y) = 0;   // in place allowed (x == y)
  // y is the forward output; dx may equal dy
  virtual void backward(const float* y, const float* dy, float* dx) = 0;
};

class Pool2dOp {
 public:
  virtual ~Pool2dOp() = default;
  virtual void forward(const float* x, float* y, bool training) = 0;
  virtual void backward(const float* dy, float* dx) = 0;   // after forward
};

class LinearOp {
 public:
  virtual ~LinearOp() = default;
  // x (N,in), w (out,in), b (out) or null, y (N,out)
  virtual void forward(const float* x, const float* w, const float* b, float* y) = 0;
  virtual void backward(const float* x, const float* w, const float* dy,
                        float* dx, float* dw, float* db) = 0;
};

class DropoutOp {
 public:
  virtual ~DropoutOp() = default;
  // training: zero with probability p using the seed, scale survivors; eval: copy.
  virtual void forward(const float* x, float* y, bool training, uint64_t seed) = 0;
  virtual void backward(const float* dy, float* dx) = 0;
};

// Eval-mode inference of a trunk that is a chain of conv (+ batch norm, folded
// into the conv) (+ ReLU) and pooling steps, in the backend's preferred layout
// from the first step to the last and optionally in bfloat16 (float32
// accumulation): the label pass's forward (Model::collect). Parameter pointers
// are in the backend's memory; refresh() re-reads them (after a training step
// or a state load), so the weights are folded and converted once per pass.
struct InferStep {
  bool pool = false;                 // false: a convolution step
  Conv2dDesc conv;                   // N ignored (InferDesc::N)
  const float* w = nullptr;          // (K, C, R, S)
  const float* b = nullptr;          // (K) or null
  // eval-mode batch norm after the conv (null gamma: none)
  const float* gamma = nullptr;
  const float* beta = nullptr;
  const float* mean = nullptr;
  const float* var = nullptr;
  float eps = 1e-5f;
  bool relu = false;
  bool pool_max = true;              // pool steps
  Pool2dDesc pool_desc;              // N ignored
};

struct InferDesc {
  int N = 1;
  bool bf16 = false;                 // bfloat16 activations and weights, float32 accumulation
  std::vector<InferStep> steps;
};

class InferOp {
 public:
  virtual ~InferOp() = default;
  virtual void refresh() = 0;
  // x (N, C, H, W) float32 -> y (N, C*H*W of the last step) float32, plain layout.
  virtual void forward(const float* x, float* y) = 0;
};

// libselflabel_cuda.so implements this interface behind a C ABI: a change to
// it (a virtual method added, removed, reordered or given another contract,
// an op descriptor's layout) needs SLN_CUDA_ABI_VERSION bumped in
// sln/cuda_api.h, where the rule and the versions' history are written, so
// that the loader refuses a library built against the old one. (The test-only
// addon calls it too, through the addon's backendHandle; it is always built
// from the same sources, so no version guards that.)
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual void set_num_threads(int n) = 0;
  virtual int num_threads() const = 0;
  // Human-readable description: library versions, ISA, threads.
  virtual std::string describe() const = 0;

  virtual std::unique_ptr<Conv2dOp> conv2d(const Conv2dDesc& d) = 0;
  virtual std::unique_ptr<BatchNormOp> batchnorm(const BatchNormDesc& d) = 0;
  virtual std::unique_ptr<ReluOp> relu(const EltwiseDesc& d) = 0;
  virtual std::unique_ptr<Pool2dOp> maxpool2d(const Pool2dDesc& d) = 0;
  virtual std::unique_ptr<Pool2dOp> avgpool2d(const Pool2dDesc& d) = 0;
  virtual std::unique_ptr<LinearOp> linear(const LinearDesc& d) = 0;
  virtual std::unique_ptr<DropoutOp> dropout(const DropoutDesc& d) = 0;

  // Softmax cross-entropy, mean over the batch. logits (N,K), labels (N) in [0,K).
  // Returns the loss; writes dlogits = scale * (softmax - onehot) / N.
  // Labels must already be validated by the caller.
  virtual double cross_entropy(const float* logits, const int32_t* labels, int N, int K,
                               float* dlogits, float scale) = 0;

  // torch.optim.SGD (dampening 0, nesterov off), over n contiguous parameters:
  //   g' = g + wd * w; buf = first ? g' : momentum * buf + g'; w -= lr * buf
  virtual void sgd_step(float* w, const float* g, float* buf, size_t n,
                        float lr, float momentum, float weight_decay, bool first) = 0;

  // y += x (residual joins, head-gradient sums)
  virtual void add_inplace(float* y, const float* x, size_t n) = 0;

  // The fused inference trunk (InferDesc), or null where this backend has none
  // (then the model runs its layers one by one). bf16_native(): the hardware
  // computes bfloat16 natively (AVX512-BF16 or AMX on the CPU).
  virtual std::unique_ptr<InferOp> infer(const InferDesc& d) { return nullptr; }
  // Whether conv, batch norm and pooling take Layout::blocked16 descriptors
  // (the model then keeps the trunk's activations blocked between them).
  virtual bool blocked_layouts() const { return false; }
  // Reorder an (N, C, H, W) activation between layouts (only called when
  // blocked_layouts() is true; src and dst do not overlap).
  virtual void reorder(const float* src, Layout from, float* dst, Layout to, int N, int C, int H, int W) {
    throw std::logic_error("this backend has no blocked layouts");
  }
  virtual bool bf16_native() const { return false; }

  // ---- Memory ------------------------------------------------------------
  // Every pointer given to this backend's ops lives in its memory space. The
  // defaults below are host memory (the CPU backend uses them as they are);
  // the CUDA backend overrides all of them (device memory from its caching
  // allocator, copies on its stream). Callers that own data in host memory
  // (images, labels, state dicts) go through upload()/download(); when
  // host_memory() is true those are plain memcpy and callers may skip them.
  //
  // Defined inline on purpose: libselflabel_cuda.so derives from Backend and
  // must not need symbols from the addon.
  virtual bool host_memory() const { return true; }
  // Uninitialised, 64-byte aligned; never null (throws sln::Error
  // SLN_OUT_OF_MEMORY saying how much was asked). bytes == 0 gives a valid
  // pointer that must still be released.
  virtual void* alloc(size_t bytes) {
    size_t n = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, n ? n : 64);
    if (!p) throw std::bad_alloc();
    return p;
  }
  virtual void release(void* p) noexcept { std::free(p); }
  virtual void upload(void* dst, const void* host_src, size_t bytes) { if (bytes) std::memcpy(dst, host_src, bytes); }
  virtual void download(void* host_dst, const void* src, size_t bytes) { if (bytes) std::memcpy(host_dst, src, bytes); }
  virtual void copy(void* dst, const void* src, size_t bytes) { if (bytes) std::memmove(dst, src, bytes); }
  virtual void zero(void* p, size_t bytes) { if (bytes) std::memset(p, 0, bytes); }
  // Wait until all work queued on this backend is done (no-op on the CPU).
  virtual void synchronize() {}
};

// Owned memory of one backend (RAII). Moves, never copies. resize() keeps
// nothing (contents are undefined afterwards unless zero-filled).
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& b, size_t bytes) : be_(&b), p_(b.alloc(bytes)), n_(bytes) {}
  ~Buffer() { reset(); }
  Buffer(Buffer&& o) noexcept : be_(o.be_), p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) { reset(); be_ = o.be_; p_ = o.p_; n_ = o.n_; o.p_ = nullptr; o.n_ = 0; }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void reset() noexcept { if (p_ && be_) be_->release(p_); p_ = nullptr; n_ = 0; }
  // Ensure at least `bytes` (grows only; contents undefined after a growth).
  void* reserve(Backend& b, size_t bytes) {
    if (be_ != &b || bytes > n_ || !p_) { reset(); be_ = &b; p_ = b.alloc(bytes); n_ = bytes; }
    return p_;
  }
  void* data() const { return p_; }
  float* f32() const { return static_cast<float*>(p_); }
  size_t bytes() const { return n_; }
  Backend* backend() const { return be_; }

 private:
  Backend* be_ = nullptr;
  void* p_ = nullptr;
  size_t n_ = 0;
};

// The CPU backend (oneDNN). Never returns null; throws sln::Error on failure.
Backend& cpu_backend();

}  // namespace sln
