// The CUDA backend object: device, stream, cuDNN/cuBLAS handles, the caching
// allocator, host<->device copies, and the small ops that need no op object.
#include <dlfcn.h>
#include <link.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <sstream>

#include "cuda/common.h"

namespace sln::cuda {

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}

// ---- cuDNN sub-library check ------------------------------------------------

namespace {

int find_cudnn_cb(struct dl_phdr_info* info, size_t, void* data) {
  const char* name = info->dlpi_name;
  if (name && std::strstr(name, "/libcudnn.so")) {
    std::string s(name);
    *static_cast<std::string*>(data) = s.substr(0, s.rfind('/'));
    return 1;
  }
  return 0;
}

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

CudnnLibCheck check_cudnn_sublibs() {
  // What cuDNN 9's dispatcher loads for the legacy convolution / batch-norm API
  // (libcudnn_adv is RNN/attention only, not used here).
  static const char* const kSubLibs[] = {"libcudnn_graph", "libcudnn_ops", "libcudnn_cnn", "libcudnn_heuristic",
                                         "libcudnn_engines_precompiled", "libcudnn_engines_runtime_compiled"};
  CudnnLibCheck r;
  dl_iterate_phdr(find_cudnn_cb, &r.dir);
  const std::string suffix = ".so." + std::to_string(CUDNN_MAJOR);
  for (const char* lib : kSubLibs) {
    const std::string file = std::string(lib) + suffix;
    if (!r.dir.empty() && file_exists(r.dir + "/" + file)) continue;
    // Not beside the dispatcher: the dispatcher would still find it on the
    // library path. dlopen says whether it can be found (and is loadable).
    if (void* h = dlopen(file.c_str(), RTLD_LAZY | RTLD_LOCAL)) {
      dlclose(h);
      continue;
    }
    r.missing.push_back(file);
  }
  return r;
}

// ---- the backend ------------------------------------------------------------

CudaBackend::CudaBackend(int device) : device_(device) {
  int count = 0;
  SLN_CU(cudaGetDeviceCount(&count), "creating the CUDA backend");
  if (device < 0 || device >= count)
    SLN_FAIL(InvalidArgument, "SLN_INVALID_ARGUMENT",
             "cuda: device " << device << " does not exist (" << count << " CUDA device(s))");
  CudnnLibCheck libs = check_cudnn_sublibs();
  if (!libs.missing.empty()) {
    std::ostringstream os;
    os << "cuda: cuDNN is incomplete: ";
    for (size_t i = 0; i < libs.missing.size(); i++) os << (i ? ", " : "") << libs.missing[i];
    os << " not found" << (libs.dir.empty() ? "" : " beside " + libs.dir + "/libcudnn.so." + std::to_string(CUDNN_MAJOR))
       << "; install the complete cuDNN 9 (pip install nvidia-cudnn-cu13) or add its lib folder to LD_LIBRARY_PATH";
    throw Error(ErrorKind::Library, "SLN_CUDNN_MISSING", os.str());
  }
  try {
    SLN_CU(cudaSetDevice(device), "creating the CUDA backend on device " << device);
    SLN_CU(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating the CUDA backend");
    SLN_CUDNN(cudnnCreate(&cudnn_), "creating the CUDA backend");
    SLN_CUDNN(cudnnSetStream(cudnn_, stream_), "creating the CUDA backend");
    SLN_CUBLAS(cublasCreate(&cublas_), "creating the CUDA backend");
    SLN_CUBLAS(cublasSetStream(cublas_, stream_), "creating the CUDA backend");
    SLN_CUBLAS(cublasSetPointerMode(cublas_, CUBLAS_POINTER_MODE_HOST), "creating the CUDA backend");
    set_tf32(false);
    SLN_CU(cudaMallocHost(&loss_host_, sizeof(double)), "creating the CUDA backend");
  } catch (...) {
    if (loss_host_) cudaFreeHost(loss_host_);
    if (cublas_) cublasDestroy(cublas_);
    if (cudnn_) cudnnDestroy(cudnn_);
    if (stream_) cudaStreamDestroy(stream_);
    throw;
  }
}

CudaBackend::~CudaBackend() {
  cudaSetDevice(device_);
  cudaStreamSynchronize(stream_);
  augment_.reset();   // its buffers go back to the allocator before it is emptied
  loss_rows_.reset();
  loss_out_.reset();
  if (loss_host_) cudaFreeHost(loss_host_);
  {
    std::lock_guard<std::mutex> lk(alloc_mu_);
    for (auto& kv : live_) cudaFree(kv.first);   // blocks the caller never released
    live_.clear();
  }
  free_cached();
  cublasDestroy(cublas_);
  cudnnDestroy(cudnn_);
  cudaStreamDestroy(stream_);
}

std::unique_lock<std::recursive_mutex> CudaBackend::enter() {
  std::unique_lock<std::recursive_mutex> lk(call_mu_);
  SLN_CU(cudaSetDevice(device_), "cuda backend on device " << device_);
  return lk;
}

void CudaBackend::set_tf32(bool on) {
  auto lk = enter();
  // TF32 off: cuBLAS default math (no TF32 for FP32 gemm); convolutions use
  // CUDNN_FMA_MATH (the op files read tf32() when they pick algorithms).
  SLN_CUBLAS(cublasSetMathMode(cublas_, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
             "set_tf32(" << on << ")");
  tf32_ = on;
}

std::string CudaBackend::describe() const {
  std::ostringstream os;
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, device_) == cudaSuccess)
    os << p.name << " (device " << device_ << ", cc " << p.major << "." << p.minor << ", "
       << (p.totalGlobalMem >> 20) << " MiB)";
  else
    os << "CUDA device " << device_;
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);
  size_t cudnn_v = cudnnGetVersion();
  int cublas_v = 0;
  cublasGetVersion(cublas_, &cublas_v);
  os << ", CUDA runtime " << rt / 1000 << "." << (rt % 1000) / 10 << ", driver " << drv / 1000 << "."
     << (drv % 1000) / 10 << ", cuDNN " << cudnn_v / 10000 << "." << (cudnn_v % 10000) / 100 << "." << cudnn_v % 100
     << ", cuBLAS " << cublas_v / 10000 << "." << (cublas_v % 10000) / 100 << "." << cublas_v % 100 << ", TF32 "
     << (tf32_ ? "on" : "off");
  return os.str();
}

// ---- memory -------------------------------------------------------------------

namespace {
size_t bucket_size(size_t bytes) {
  constexpr size_t kSmall = 1u << 20, kSmallStep = 512, kLargeStep = 2u << 20;
  if (bytes == 0) return kSmallStep;
  if (bytes <= kSmall) return (bytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  return (bytes + kLargeStep - 1) / kLargeStep * kLargeStep;
}
}  // namespace

void CudaBackend::free_cached() noexcept {
  std::lock_guard<std::mutex> lk(alloc_mu_);
  for (auto& kv : free_)
    for (void* p : kv.second) cudaFree(p);
  free_.clear();
  cached_bytes_ = 0;
}

void* CudaBackend::malloc_device(size_t bytes, size_t asked) {
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaSuccess) return p;
  cudaGetLastError();  // reset the runtime's last-error state after the failed call
  if (e != cudaErrorMemoryAllocation)
    SLN_FAIL(Library, "SLN_CUDA", "cudaMalloc(" << bytes << " bytes) failed: " << cudaGetErrorString(e));
  // free every cached block and try once more
  cudaStreamSynchronize(stream_);
  free_cached();
  e = cudaMalloc(&p, bytes);
  if (e == cudaSuccess) return p;
  cudaGetLastError();
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  SLN_FAIL(OutOfMemory, "SLN_OUT_OF_MEMORY",
           "cuda: out of GPU memory: asked for " << asked << " bytes (" << asked / 1048576.0 << " MiB), "
                                                << free_b / 1048576.0 << " MiB free of " << total_b / 1048576.0
                                                << " MiB on device " << device_ << " (" << live_bytes_ / 1048576.0
                                                << " MiB held by this backend); use a smaller --batch-size");
}

void* CudaBackend::alloc(size_t bytes) {
  const size_t b = bucket_size(bytes);
  {
    std::lock_guard<std::mutex> lk(alloc_mu_);
    auto it = free_.find(b);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= b;
      live_[p] = b;
      live_bytes_ += b;
      return p;
    }
  }
  std::lock_guard<std::recursive_mutex> call(call_mu_);
  SLN_CU(cudaSetDevice(device_), "alloc(" << bytes << ")");
  void* p = malloc_device(b, bytes);
  std::lock_guard<std::mutex> lk(alloc_mu_);
  live_[p] = b;
  live_bytes_ += b;
  return p;
}

void CudaBackend::release(void* p) noexcept {
  if (!p) return;
  std::lock_guard<std::mutex> lk(alloc_mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return;  // not ours (or released twice): ignore rather than corrupt the cache
  const size_t b = it->second;
  live_.erase(it);
  live_bytes_ -= b;
  try {
    free_[b].push_back(p);
    cached_bytes_ += b;
  } catch (...) {
    cudaFree(p);  // no memory for the list: give the block back instead
  }
}

void CudaBackend::upload(void* dst, const void* host_src, size_t bytes) {
  if (!bytes) return;
  auto lk = enter();
  // From pageable memory the call returns once the source has been staged, so
  // the caller may reuse host_src immediately.
  SLN_CU(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_), "upload of " << bytes << " bytes");
}

void CudaBackend::download(void* host_dst, const void* src, size_t bytes) {
  if (!bytes) return;
  auto lk = enter();
  SLN_CU(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download of " << bytes << " bytes");
  SLN_CU(cudaStreamSynchronize(stream_), "download of " << bytes << " bytes");
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (!bytes || dst == src) return;
  auto lk = enter();
  SLN_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "copy of " << bytes << " bytes");
}

void CudaBackend::zero(void* p, size_t bytes) {
  if (!bytes) return;
  auto lk = enter();
  SLN_CU(cudaMemsetAsync(p, 0, bytes, stream_), "zero of " << bytes << " bytes");
}

void CudaBackend::synchronize() {
  auto lk = enter();
  SLN_CU(cudaStreamSynchronize(stream_), "synchronize");
}

// ---- ops ----------------------------------------------------------------------

// blocked_layouts() is false here: the model never asks for Layout::blocked16
static void plain_only(Layout l, const char* op) {
  SLN_CHECK_ARG(l == Layout::plain, op << ": the CUDA backend takes NCHW activations only");
}
std::unique_ptr<Conv2dOp> CudaBackend::conv2d(const Conv2dDesc& d) {
  plain_only(d.src_layout, "conv2d");
  plain_only(d.dst_layout, "conv2d");
  SLN_CHECK_ARG(!d.bf16, "conv2d: mixed-precision (bf16) training is CPU-only; use --precision f32 with --gpu");
  return make_conv2d(*this, d);
}
std::unique_ptr<BatchNormOp> CudaBackend::batchnorm(const BatchNormDesc& d) {
  plain_only(d.layout, "batchnorm");
  SLN_CHECK_ARG(!d.relu, "batchnorm: the CUDA backend has no fused ReLU");
  return make_batchnorm(*this, d);
}
std::unique_ptr<ReluOp> CudaBackend::relu(const EltwiseDesc& d) { return make_relu(*this, d); }
std::unique_ptr<Pool2dOp> CudaBackend::maxpool2d(const Pool2dDesc& d) {
  plain_only(d.layout, "maxpool2d");
  return make_maxpool2d(*this, d);
}
std::unique_ptr<Pool2dOp> CudaBackend::avgpool2d(const Pool2dDesc& d) {
  plain_only(d.layout, "avgpool2d");
  return make_avgpool2d(*this, d);
}
std::unique_ptr<LinearOp> CudaBackend::linear(const LinearDesc& d) { return make_linear(*this, d); }
std::unique_ptr<DropoutOp> CudaBackend::dropout(const DropoutDesc& d) { return make_dropout(*this, d); }

double CudaBackend::cross_entropy(const float* logits, const int32_t* labels, int N, int K, float* dlogits,
                                  float scale) {
  SLN_CHECK_ARG(N >= 1 && K >= 1, "cross_entropy: need N >= 1 and K >= 1, got (N,K) = (" << N << "," << K << ")");
  auto lk = enter();
  double* rows = static_cast<double*>(loss_rows_.reserve(*this, static_cast<size_t>(N) * sizeof(double)));
  double* total = static_cast<double*>(loss_out_.reserve(*this, sizeof(double)));
  launch_cross_entropy(logits, labels, N, K, dlogits, scale, rows, total, stream_);
  SLN_CU_LAUNCHED("cross_entropy (N,K) = (" << N << "," << K << ")");
  SLN_CU(cudaMemcpyAsync(loss_host_, total, sizeof(double), cudaMemcpyDeviceToHost, stream_),
         "cross_entropy (N,K) = (" << N << "," << K << ")");
  SLN_CU(cudaStreamSynchronize(stream_), "cross_entropy (N,K) = (" << N << "," << K << ")");
  const double loss = *loss_host_;
  if (!std::isfinite(loss))
    SLN_FAIL(Range, "SLN_NONFINITE_LOSS", "cross_entropy: the loss is not finite (NaN or Inf in the logits, or a label outside [0, K)?), (N,K) = ("
                                              << N << "," << K << ")");
  return loss / N;
}

void CudaBackend::sgd_step(float* w, const float* g, float* buf, size_t n, float lr, float momentum,
                           float weight_decay, bool first) {
  if (!n) return;
  auto lk = enter();
  launch_sgd_step(w, g, buf, n, lr, momentum, weight_decay, first, stream_);
  SLN_CU_LAUNCHED("sgd_step n = " << n);
}

void CudaBackend::add_inplace(float* y, const float* x, size_t n) {
  if (!n) return;
  auto lk = enter();
  launch_add_inplace(y, x, n, stream_);
  SLN_CU_LAUNCHED("add_inplace n = " << n);
}

}  // namespace sln::cuda
