// CUDA backend internals: the checked-call macros, the CudaBackend class (one
// device, one stream, cuDNN + cuBLAS handles bound to it, a caching allocator)
// and the factories each op file defines. See docs/cuda-backend.md.
//
// Every CUDA / cuDNN / cuBLAS call goes through SLN_CU / SLN_CUDNN / SLN_CUBLAS:
// a failure throws sln::Error (kind Library, codes SLN_CUDA / SLN_CUDNN /
// SLN_CUBLAS) whose message names the call, the library's status string and the
// op's shapes. Nothing here exits or aborts.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "sln/augment.h"
#include "sln/errors.h"
#include "sln/ops.h"

namespace sln::cuda {

const char* cublas_status_name(cublasStatus_t s);

// ctx: stream expression naming the op and its shapes, e.g. "conv2d forward " << d_
#define SLN_CU(call, ctx)                                                                                   \
  do {                                                                                                      \
    cudaError_t sln_e_ = (call);                                                                            \
    if (sln_e_ != cudaSuccess) {                                                                            \
      if (sln_e_ == cudaErrorMemoryAllocation)                                                              \
        SLN_FAIL(OutOfMemory, "SLN_OUT_OF_MEMORY", #call " failed: " << cudaGetErrorString(sln_e_) << " in " << ctx); \
      SLN_FAIL(Library, "SLN_CUDA",                                                                         \
               #call " failed: " << cudaGetErrorString(sln_e_) << " (" << cudaGetErrorName(sln_e_) << " = "  \
                                 << static_cast<int>(sln_e_) << ") in " << ctx);                            \
    }                                                                                                       \
  } while (0)

#define SLN_CUDNN(call, ctx)                                                                                \
  do {                                                                                                      \
    cudnnStatus_t sln_s_ = (call);                                                                          \
    if (sln_s_ != CUDNN_STATUS_SUCCESS)                                                                     \
      SLN_FAIL(Library, "SLN_CUDNN",                                                                        \
               #call " failed: " << cudnnGetErrorString(sln_s_) << " (" << static_cast<int>(sln_s_) << ") in " << ctx); \
  } while (0)

#define SLN_CUBLAS(call, ctx)                                                                               \
  do {                                                                                                      \
    cublasStatus_t sln_s_ = (call);                                                                         \
    if (sln_s_ != CUBLAS_STATUS_SUCCESS)                                                                    \
      SLN_FAIL(Library, "SLN_CUBLAS",                                                                       \
               #call " failed: " << ::sln::cuda::cublas_status_name(sln_s_) << " (" << static_cast<int>(sln_s_) \
                                 << ") in " << ctx);                                                        \
  } while (0)

// After a kernel launch: launch errors (bad configuration, no kernel image for
// this GPU) surface here; errors during execution surface at the next sync.
#define SLN_CU_LAUNCHED(ctx) SLN_CU(cudaGetLastError(), ctx)

// Grid for a grid-stride loop over n elements.
inline unsigned grid_for(size_t n, unsigned threads = 256, unsigned max_blocks = 65535u * 8u) {
  size_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < max_blocks ? b : max_blocks);
}

// cuDNN sub-libraries that libcudnn.so.9 (the small dispatcher) loads on first
// use. When one is missing the dispatcher prints "Cannot load symbol" and
// aborts the process, so both the probe and backend creation check them first.
struct CudnnLibCheck {
  std::string dir;                    // folder libcudnn.so.* was loaded from ("" if unknown)
  std::vector<std::string> missing;   // sub-libraries found neither there nor by dlopen
};
CudnnLibCheck check_cudnn_sublibs();

struct AugmentState;  // augment.cu: pinned staging and its event
struct AugmentStateDelete {
  void operator()(AugmentState* s) const noexcept;  // augment.cu
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  const char* name() const override { return "cuda"; }
  void set_num_threads(int) override {}
  int num_threads() const override { return 1; }
  std::string describe() const override;

  std::unique_ptr<Conv2dOp> conv2d(const Conv2dDesc& d) override;
  std::unique_ptr<BatchNormOp> batchnorm(const BatchNormDesc& d) override;
  std::unique_ptr<ReluOp> relu(const EltwiseDesc& d) override;
  std::unique_ptr<Pool2dOp> maxpool2d(const Pool2dDesc& d) override;
  std::unique_ptr<Pool2dOp> avgpool2d(const Pool2dDesc& d) override;
  std::unique_ptr<LinearOp> linear(const LinearDesc& d) override;
  std::unique_ptr<DropoutOp> dropout(const DropoutDesc& d) override;
  double cross_entropy(const float* logits, const int32_t* labels, int N, int K, float* dlogits,
                       float scale) override;
  void sgd_step(float* w, const float* g, float* buf, size_t n, float lr, float momentum, float weight_decay,
                bool first) override;
  void add_inplace(float* y, const float* x, size_t n) override;

  bool host_memory() const override { return false; }
  void* alloc(size_t bytes) override;
  void release(void* p) noexcept override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void zero(void* p, size_t bytes) override;
  void synchronize() override;

  // ---- internals used by the op files ----
  // Every entry point takes the backend's lock (cuDNN/cuBLAS handles must not be
  // used by two threads at once) and makes its device current on the calling
  // thread (libuv pool threads start on device 0).
  std::unique_lock<std::recursive_mutex> enter();
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasHandle_t cublas() const { return cublas_; }
  bool tf32() const { return tf32_; }
  void set_tf32(bool on);
  AugmentState& augment_state();

 private:
  void* malloc_device(size_t bytes, size_t asked);
  void free_cached() noexcept;

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  bool tf32_ = false;
  std::recursive_mutex call_mu_;

  // Caching allocator: blocks are rounded up to a bucket size and kept in a
  // free list per size when released. All work runs on one stream, so a block
  // released by one op and handed to the next is used in stream order.
  std::mutex alloc_mu_;
  std::unordered_map<void*, size_t> live_;                // pointer -> bucket size
  std::unordered_map<size_t, std::vector<void*>> free_;   // bucket size -> cached blocks
  size_t live_bytes_ = 0, cached_bytes_ = 0;

  Buffer loss_rows_, loss_out_;   // cross_entropy scratch: (N) doubles, one double
  double* loss_host_ = nullptr;   // pinned, one double
  std::unique_ptr<AugmentState, AugmentStateDelete> augment_;
};

// Factories (one op file each).
std::unique_ptr<Conv2dOp> make_conv2d(CudaBackend& be, const Conv2dDesc& d);
std::unique_ptr<BatchNormOp> make_batchnorm(CudaBackend& be, const BatchNormDesc& d);
std::unique_ptr<ReluOp> make_relu(CudaBackend& be, const EltwiseDesc& d);
std::unique_ptr<Pool2dOp> make_maxpool2d(CudaBackend& be, const Pool2dDesc& d);
std::unique_ptr<Pool2dOp> make_avgpool2d(CudaBackend& be, const Pool2dDesc& d);
std::unique_ptr<LinearOp> make_linear(CudaBackend& be, const LinearDesc& d);
std::unique_ptr<DropoutOp> make_dropout(CudaBackend& be, const DropoutDesc& d);

// Kernel launchers (queued on `s`, no sync).
void launch_add_inplace(float* y, const float* x, size_t n, cudaStream_t s);
void launch_sgd_step(float* w, const float* g, float* buf, size_t n, float lr, float momentum, float weight_decay,
                     bool first, cudaStream_t s);
// row_loss (N) doubles, total (1) double: total = sum_n row_loss[n] in a fixed order.
void launch_cross_entropy(const float* logits, const int32_t* labels, int N, int K, float* dlogits, float scale,
                          double* row_loss, double* total, cudaStream_t s);

// sln_cuda_augment's body (augment.cu).
void augment_batch(CudaBackend& be, const AugmentBatchDesc& d, const AugmentImage* images,
                   const AugmentParams* params, float* out_device);

}  // namespace sln::cuda

namespace sln::sinkhorn {
struct Options;
struct Result;
}  // namespace sln::sinkhorn

namespace sln::cuda {
// sinkhorn.cu: the fused float64 solver (same contract as sinkhorn::solve_logits).
// z: (n, k) logits in device memory, read on `stream` (the backend's).
sinkhorn::Result sinkhorn_logits(cudaStream_t stream, const float* z_device, int64_t n, int64_t k,
                                 const sinkhorn::Options& opt);
}  // namespace sln::cuda
