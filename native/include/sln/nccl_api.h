// The C ABI of libselflabel_nccl.so (native/mpi/nccl.cpp): the GPU collectives
// of `--distributed --device cuda` (one GPU per rank). The library links NCCL
// (libnccl.so.2) and the CUDA runtime, not MPI: the unique id is made on rank 0
// by sln_nccl_unique_id and broadcast by the caller over MPI (mpiBcast). It is
// dlopened on demand like the CUDA and MPI libraries; scripts/build-nccl.sh
// builds it (`npm run build:nccl`).
//
// Used by `--distributed --device cuda` (native/addon/nccl_loader.cpp): the
// gradient arena's sum before each SGD update and the sharded CUDA Sinkhorn's
// per-iteration K-vector sums. Compiled and linked in CI
// (test/distributed.test.ts); scripts/device-check-nccl.sh runs it on a GPU
// machine (a 1-rank probe, and the multi-rank checks when there are >= 2 GPUs).
//
// Rules as sln/mpi_api.h: never throws; 0 on success, else a one-line message
// naming the failing NCCL/CUDA call in err.
#pragma once
#include <cstddef>
#include <cstdint>

//   1: the first.
//   2: sln_nccl_allreduce takes an op (sum, max, min).
#define SLN_NCCL_ABI_VERSION 2
#define SLN_NCCL_UNIQUE_ID_BYTES 128

extern "C" {
enum sln_nccl_dtype { SLN_NCCL_F32 = 0, SLN_NCCL_F64 = 1 };
enum sln_nccl_op { SLN_NCCL_SUM = 0, SLN_NCCL_MAX = 1, SLN_NCCL_MIN = 2 };
typedef int (*sln_nccl_abi_version_fn)(void);
// NCCL's version (e.g. 23007) and the CUDA device count, as text.
typedef int (*sln_nccl_describe_fn)(char* out, size_t out_len);
// ncclGetUniqueId into id (SLN_NCCL_UNIQUE_ID_BYTES bytes); call on rank 0 only.
typedef int (*sln_nccl_unique_id_fn)(unsigned char* id, char* err, size_t err_len);
// cudaSetDevice(device), ncclCommInitRank(size, id, rank); one communicator per process.
typedef int (*sln_nccl_init_fn)(const unsigned char* id, int rank, int size, int device, char* err, size_t err_len);
// In place, op (sln_nccl_op) over the ranks, of count elements in device memory,
// on `stream` (a cudaStream_t; null = the default stream), queued after the work
// already on it; returns after the stream synchronised.
typedef int (*sln_nccl_allreduce_fn)(void* dev, int64_t count, int dtype, int op, void* stream, char* err,
                                     size_t err_len);
typedef int (*sln_nccl_finalize_fn)(char* err, size_t err_len);
}
