// libselflabel_nccl.so: see sln/nccl_api.h.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>
#include <cstring>

#include "sln/nccl_api.h"

#define SLN_EXPORT extern "C" __attribute__((visibility("default")))

static_assert(sizeof(ncclUniqueId) == SLN_NCCL_UNIQUE_ID_BYTES, "ncclUniqueId size");

namespace {
ncclComm_t g_comm = nullptr;

bool cuda_ok(cudaError_t e, const char* what, char* err, size_t len) {
  if (e == cudaSuccess) return true;
  snprintf(err, len, "%s failed: %s (%d)", what, cudaGetErrorString(e), static_cast<int>(e));
  return false;
}
bool nccl_ok(ncclResult_t r, const char* what, char* err, size_t len) {
  if (r == ncclSuccess) return true;
  snprintf(err, len, "%s failed: %s (%d)", what, ncclGetErrorString(r), static_cast<int>(r));
  return false;
}
}  // namespace

SLN_EXPORT int sln_nccl_abi_version(void) { return SLN_NCCL_ABI_VERSION; }

SLN_EXPORT int sln_nccl_describe(char* out, size_t out_len) {
  int v = 0, n = 0;
  ncclGetVersion(&v);
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaSuccess)
    snprintf(out, out_len, "NCCL %d.%d.%d, %d CUDA device(s)", v / 10000, (v / 100) % 100, v % 100, n);
  else
    snprintf(out, out_len, "NCCL %d.%d.%d, no usable CUDA device: %s", v / 10000, (v / 100) % 100, v % 100,
             cudaGetErrorString(e));
  return 0;
}

SLN_EXPORT int sln_nccl_unique_id(unsigned char* id, char* err, size_t err_len) {
  ncclUniqueId u;
  if (!nccl_ok(ncclGetUniqueId(&u), "ncclGetUniqueId", err, err_len)) return 1;
  memcpy(id, &u, sizeof u);
  return 0;
}

SLN_EXPORT int sln_nccl_init(const unsigned char* id, int rank, int size, int device, char* err, size_t err_len) {
  if (g_comm) {
    snprintf(err, err_len, "sln_nccl_init: a communicator exists already");
    return 1;
  }
  if (!cuda_ok(cudaSetDevice(device), "cudaSetDevice", err, err_len)) return 1;
  ncclUniqueId u;
  memcpy(&u, id, sizeof u);
  if (!nccl_ok(ncclCommInitRank(&g_comm, size, u, rank), "ncclCommInitRank", err, err_len)) {
    g_comm = nullptr;
    return 1;
  }
  return 0;
}

SLN_EXPORT int sln_nccl_allreduce(void* dev, int64_t count, int dtype, int op, void* stream, char* err,
                                  size_t err_len) {
  if (!g_comm) {
    snprintf(err, err_len, "sln_nccl_allreduce: no communicator (sln_nccl_init first)");
    return 1;
  }
  if (dtype != SLN_NCCL_F32 && dtype != SLN_NCCL_F64) {
    snprintf(err, err_len, "sln_nccl_allreduce: unknown dtype %d", dtype);
    return 1;
  }
  if (op != SLN_NCCL_SUM && op != SLN_NCCL_MAX && op != SLN_NCCL_MIN) {
    snprintf(err, err_len, "sln_nccl_allreduce: unknown op %d", op);
    return 1;
  }
  const ncclRedOp_t rop = op == SLN_NCCL_SUM ? ncclSum : op == SLN_NCCL_MAX ? ncclMax : ncclMin;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (!nccl_ok(ncclAllReduce(dev, dev, static_cast<size_t>(count), dtype == SLN_NCCL_F32 ? ncclFloat32 : ncclFloat64,
                             rop, g_comm, s),
               "ncclAllReduce", err, err_len))
    return 1;
  return cuda_ok(cudaStreamSynchronize(s), "cudaStreamSynchronize", err, err_len) ? 0 : 1;
}

SLN_EXPORT int sln_nccl_finalize(char* err, size_t err_len) {
  if (!g_comm) return 0;
  ncclResult_t r = ncclCommDestroy(g_comm);
  g_comm = nullptr;
  return nccl_ok(r, "ncclCommDestroy", err, err_len) ? 0 : 1;
}
