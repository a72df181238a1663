// The addon's side of libselflabel_nccl.so (see sln/nccl_api.h and
// lib/distributed/nccl.ts): dlopen on demand, ABI check, every symbol looked up
// once, each call serialised by one mutex. `--distributed --device cuda` loads
// it after MPI and the CUDA library; rank 0 makes the unique id, MPI broadcasts
// it, every rank joins the communicator (ncclInit). C++ callers get the
// gradient hooks of a training step and the sharded Sinkhorn's device sums.
#pragma once
#include <cstdint>

#include "sln/model.h"
#include "sln/ops.h"

namespace sln::addon {

// Whether a communicator exists (ncclInit succeeded in this process).
bool nccl_ready();

// In place over the ranks, on device memory of the CUDA backend: dtype / op are
// sln_nccl_dtype / sln_nccl_op; stream a cudaStream_t (null: the default stream).
// Throws sln::Error SLN_NCCL naming the call, SLN_NO_NCCL without a communicator.
void nccl_allreduce(void* dev, int64_t count, int dtype, int op, void* stream);

// The collectives of a distributed training step on a device backend: the whole
// gradient arena summed over NCCL after the backend's queued work finished
// (Backend::synchronize; the all-reduce then synchronises its own stream before
// the SGD update is queued). No synchronised batch norm (bn_sum unset): the
// callers refuse --sync-bn on the GPU. Throws SLN_NO_NCCL without a communicator.
const DistHooks* nccl_dist_hooks(Backend& backend);

}  // namespace sln::addon
