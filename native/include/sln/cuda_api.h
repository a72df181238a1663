// The C ABI between the addon and libselflabel_cuda.so.
//
// The addon never links CUDA. When a run asks for the GPU it dlopen()s the
// library (after probing it once in a child process, because an incomplete
// cuDNN install can abort the process on its first call; see scripts and
// lib/cuda.ts), checks sln_cuda_abi_version() and then uses only the symbols
// below, looked up with dlsym. Both sides are built from the same headers by
// the same host compiler (g++), so C++ types (Backend, sinkhorn::Options/Result,
// AugmentBatchDesc) are passed by pointer; sln::Error has default visibility so
// exceptions thrown by the backend's methods are caught by type in the addon.
//
// Rules for every function here: never throws, never exits or aborts; on
// failure returns nonzero (or null) and writes a one-line message, naming the
// failing CUDA/cuDNN/cuBLAS call, into err (NUL-terminated, truncated to
// err_len). Methods of the Backend returned by sln_cuda_backend_create throw
// sln::Error like the CPU backend's.
#pragma once
#include <cstddef>
#include <cstdint>

#include "sln/augment.h"
#include "sln/ops.h"

namespace sln::sinkhorn {
struct Options;
struct Result;
}  // namespace sln::sinkhorn

// Bump SLN_CUDA_ABI_VERSION whenever anything the two sides share changes: a
// function's signature or meaning below, the sln::Backend interface (sln/ops.h:
// virtual methods, their order or contracts, op descriptors), or the layout of
// sinkhorn::Options/Result or AugmentBatchDesc/AugmentImage/AugmentParams. The
// loader refuses a library built for another version (no silent mismatch).
//   1: the first.
//   2: sln_cuda_sinkhorn takes the backend and device-resident logits;
//      Backend::infer / bf16_native (sln/ops.h) added.
//   3: sinkhorn::Shard::device_allreduce added; sln_cuda_sinkhorn honours
//      Options::shard (a row-sharded solve over NCCL, all-reduce mode).
//   4: the op descriptors carry a Layout; Backend::blocked_layouts / reorder
//      (sln/ops.h) added.
//   5: Conv2dDesc::bf16 (mixed-precision training; the CUDA backend refuses it).
//   6: BatchNormDesc::relu (a fused ReLU; the CUDA backend refuses it).
#define SLN_CUDA_ABI_VERSION 6

extern "C" {

// Returns SLN_CUDA_ABI_VERSION; the loader refuses a library with another.
typedef int (*sln_cuda_abi_version_fn)(void);

// Initialise the CUDA runtime, cuDNN and cuBLAS on `device` and describe them
// as one JSON object written into out:
//   {"ok":true,"device":"NVIDIA H100 80GB HBM3","index":0,"cc":"9.0",
//    "memoryBytes":85000000000,"freeBytes":...,"driver":13000,"runtime":13000,
//    "cudnn":92400,"cublas":130101,"devices":1}
//   {"ok":false,"error":"cudaGetDeviceCount: no CUDA-capable device is detected (100)"}
// Returns 0 when the device is usable.
typedef int (*sln_cuda_probe_fn)(int device, char* out, size_t out_len);

// A Backend on `device` (name() == "cuda"): device memory, one stream, cuDNN
// and cuBLAS handles bound to it. Null on failure (message in err).
typedef sln::Backend* (*sln_cuda_backend_create_fn)(int device, char* err, size_t err_len);
typedef void (*sln_cuda_backend_destroy_fn)(sln::Backend* backend);

// TF32 for the cuBLAS/cuDNN math of this backend (off by default; --tf32).
typedef int (*sln_cuda_set_tf32_fn)(sln::Backend* backend, int enabled, char* err, size_t err_len);

// The fused float64 Sinkhorn on the GPU, same contract as
// sinkhorn::solve_logits: z_device is the (N, K) logits in `backend`'s memory
// (from its alloc(), e.g. the model's label-pass store), read on the backend's
// stream after the work already queued there; the result comes back on the host.
// With opt->shard (exact = false, device_allreduce set): z_device holds this
// rank's n rows of the n_total, and the sums over rows cross the ranks through
// shard->device_allreduce (column sums and err every iteration, column maxima
// once) and shard->allreduce (a few host scalars: the cold start's minimum, the
// counts, the cost); labels and log_c come back for this rank's rows.
typedef int (*sln_cuda_sinkhorn_fn)(sln::Backend* backend, const float* z_device, int64_t n, int64_t k,
                                    const sln::sinkhorn::Options* opt, sln::sinkhorn::Result* out,
                                    char* err, size_t err_len);

// Batched augmentation on the GPU, same contract and parameters as
// sln::augment_batch: the source images (host, uint8) are uploaded once, the
// output (n, out_channels, out_h, out_w) is written to out_device, memory of
// `backend` (from its alloc()). Queued on the backend's stream.
typedef int (*sln_cuda_augment_fn)(sln::Backend* backend, const sln::AugmentBatchDesc* desc,
                                   const sln::AugmentImage* images, const sln::AugmentParams* params,
                                   float* out_device, char* err, size_t err_len);

// Exported names (dlsym):
//   sln_cuda_abi_version, sln_cuda_probe, sln_cuda_backend_create,
//   sln_cuda_backend_destroy, sln_cuda_set_tf32, sln_cuda_sinkhorn, sln_cuda_augment
}
