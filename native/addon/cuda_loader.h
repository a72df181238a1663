// The addon's side of libselflabel_cuda.so (see sln/cuda_api.h and
// lib/cuda.ts): dlopen on demand, ABI check, every symbol looked up once
// (addon/dl_library.h).
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

#include "addon/dl_library.h"
#include "sln/cuda_api.h"
#include "sln/ops.h"

namespace sln::addon {

#define SLN_CUDA_FUNCTIONS(X)                                                                      \
  X(sln_cuda, probe) X(sln_cuda, backend_create) X(sln_cuda, backend_destroy) X(sln_cuda, set_tf32) \
  X(sln_cuda, sinkhorn) X(sln_cuda, augment)

struct CudaLib : DlLib {
  SLN_CUDA_FUNCTIONS(SLN_DL_MEMBER)
  explicit CudaLib(const DlOpen& dl) : DlLib(dl) { SLN_CUDA_FUNCTIONS(SLN_DL_LOOKUP) }
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
