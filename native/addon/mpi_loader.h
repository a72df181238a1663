// The addon's side of libselflabel_mpi.so (see sln/mpi_api.h and
// lib/distributed/mpi.ts): dlopen on demand, ABI check, every symbol looked up
// once, each call serialised by one mutex. C++ callers get throwing wrappers;
// JS gets mpiLoad / mpiInit / mpiAllreduce / ... (mpi_loader.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "core/sinkhorn.h"
#include "sln/model.h"

namespace Napi {
class Env;
class Value;
}  // namespace Napi

namespace sln::addon {

// Whether MPI is loaded and initialised (mpiInit called), and this process's place.
bool mpi_ready();
int mpi_rank();
int mpi_size();

// Throwing wrappers (sln::Error code SLN_MPI naming the call; SLN_NO_MPI when not loaded/initialised).
// dtype / op: sln_mpi_dtype / sln_mpi_op.
void mpi_allreduce(void* buf, int64_t count, int dtype, int op);
void mpi_allgatherv(const void* send, int64_t send_bytes, void* recv, const std::vector<int64_t>& recv_bytes);

// options.shard = { nTotal, exact } of a Sinkhorn call: the Shard over MPI_COMM_WORLD
// (lives as long as the process). Throws a JS TypeError/RangeError for a bad value,
// sln::Error SLN_NO_MPI when MPI is not initialised.
const sinkhorn::Shard* parse_shard(Napi::Env env, const Napi::Value& v, const char* fn);

// The collectives of a distributed training step over MPI_COMM_WORLD (host
// memory: the CPU backend); sync_bn sets bn_sum. Live as long as the process.
// Throws sln::Error SLN_NO_MPI when MPI is not initialised.
const DistHooks* mpi_dist_hooks(bool sync_bn);

}  // namespace sln::addon
