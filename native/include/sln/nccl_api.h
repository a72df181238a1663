// The C ABI of libselflabel_nccl.so (native/mpi/nccl.cpp): the GPU collectives
// of `--distributed --device cuda` (one GPU per rank). The library links NCCL
// (libnccl.so.2) and the CUDA runtime, not MPI: the unique id is made on rank 0
// by sln_nccl_unique_id and broadcast by the caller over MPI (mpiBcast). It is
// dlopened on demand like the CUDA and MPI libraries; scripts/build-nccl.sh
// builds it (`npm run build:nccl`).
//
// Status: compiled and linked in CI (test/distributed.test.ts), checked on one
// GPU by scripts/device-check-nccl.sh (a 1-rank communicator); NOT yet wired
// into training or the Sinkhorn (see docs/distributed.md).
//
// Rules as sln/mpi_api.h: never throws; 0 on success, else a one-line message
// naming the failing NCCL/CUDA call in err.
#pragma once
#include <cstddef>
#include <cstdint>

#define SLN_NCCL_ABI_VERSION 1
#define SLN_NCCL_UNIQUE_ID_BYTES 128

extern "C" {
enum sln_nccl_dtype { SLN_NCCL_F32 = 0, SLN_NCCL_F64 = 1 };
typedef int (*sln_nccl_abi_version_fn)(void);
// NCCL's version (e.g. 23007) and the CUDA device count, as text.
typedef int (*sln_nccl_describe_fn)(char* out, size_t out_len);
// ncclGetUniqueId into id (SLN_NCCL_UNIQUE_ID_BYTES bytes); call on rank 0 only.
typedef int (*sln_nccl_unique_id_fn)(unsigned char* id, char* err, size_t err_len);
// cudaSetDevice(device), ncclCommInitRank(size, id, rank); one communicator per process.
typedef int (*sln_nccl_init_fn)(const unsigned char* id, int rank, int size, int device, char* err, size_t err_len);
// In place, sum over the ranks, of count elements in device memory, on `stream`
// (a cudaStream_t; null = the default stream); returns after the stream synchronised.
typedef int (*sln_nccl_allreduce_fn)(void* dev, int64_t count, int dtype, void* stream, char* err, size_t err_len);
typedef int (*sln_nccl_finalize_fn)(char* err, size_t err_len);
}
