// The addon's side of libselflabel_cuda.so (see sln/cuda_api.h and
// lib/cuda.ts): dlopen on demand, ABI check, every symbol looked up once.
//
// The library is loaded into this process only after lib/cuda.ts has probed
// it in a child process (an incomplete cuDNN can abort on its first call);
// cudaLoad() itself calls nothing in the library but sln_cuda_abi_version().
// The CUDA Backend is created lazily by the first cuda_backend() and lives
// until the process exits (never destroyed: CUDA's own teardown at exit must
// not race ours).
#pragma once
#include <mutex>
#include <string>

#include "sln/cuda_api.h"
#include "sln/ops.h"

namespace sln::addon {

struct CudaLib {
  std::string path;
  void* handle = nullptr;
  int abi = 0;
  sln_cuda_abi_version_fn abi_version = nullptr;
  sln_cuda_probe_fn probe = nullptr;
  sln_cuda_backend_create_fn backend_create = nullptr;
  sln_cuda_backend_destroy_fn backend_destroy = nullptr;
  sln_cuda_set_tf32_fn set_tf32 = nullptr;
  sln_cuda_sinkhorn_fn sinkhorn = nullptr;
  sln_cuda_augment_fn augment = nullptr;
};

// The loaded library, or null (nothing loaded yet).
const CudaLib* cuda_lib();
// The library, or throws sln::Error SLN_NO_DEVICE telling how to load it.
const CudaLib& cuda_lib_or_throw(const char* what);
// The CUDA backend of device 0 (created on first use); throws sln::Error
// SLN_NO_DEVICE when the library is not loaded or creation fails.
Backend& cuda_backend();

// Calls on a backend whose memory is not host memory (one stream, one cuDNN
// and cuBLAS handle) are serialised by one process-wide mutex; the CPU
// backend needs none (returns an unlocked lock).
std::unique_lock<std::mutex> lock_backend(Backend& b);
std::mutex& device_mutex();

}  // namespace sln::addon
