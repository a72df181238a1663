// libselflabel_mpi.so: the addon's window onto the system MPI (see
// sln/mpi_api.h for the contract). Built with mpicxx by scripts/build-mpi.sh,
// never linked into the addon; only plain C types cross the boundary.
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "sln/mpi_api.h"

#define SLN_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

void put(char* err, size_t len, const char* what, int rc) {
  if (!err || len == 0) return;
  char s[MPI_MAX_ERROR_STRING] = {0};
  int n = 0;
  if (rc != MPI_SUCCESS) MPI_Error_string(rc, s, &n);
  snprintf(err, len, "%s failed: %s (MPI error %d)", what, s[0] ? s : "unknown error", rc);
}

bool too_big(int64_t bytes, char* err, size_t len, const char* what) {
  if (bytes >= 0 && bytes <= INT_MAX) return false;
  if (err && len) snprintf(err, len, "%s: %lld bytes is more than one MPI call moves (2^31 - 1)", what, (long long)bytes);
  return true;
}

MPI_Datatype dtype_of(int d) {
  switch (d) {
    case SLN_MPI_F32: return MPI_FLOAT;
    case SLN_MPI_F64: return MPI_DOUBLE;
    case SLN_MPI_I32: return MPI_INT32_T;
    case SLN_MPI_I64: return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}
size_t dsize(int d) { return d == SLN_MPI_F32 || d == SLN_MPI_I32 ? 4 : 8; }

MPI_Op op_of(int o) {
  switch (o) {
    case SLN_MPI_SUM: return MPI_SUM;
    case SLN_MPI_MAX: return MPI_MAX;
    case SLN_MPI_MIN: return MPI_MIN;
  }
  return MPI_OP_NULL;
}

}  // namespace

SLN_EXPORT int sln_mpi_abi_version(void) { return SLN_MPI_ABI_VERSION; }

SLN_EXPORT int sln_mpi_describe(char* out, size_t out_len) {
  char v[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int n = 0;
  MPI_Get_library_version(v, &n);
  for (int i = 0; i < n; ++i)
    if (v[i] == '\n' || v[i] == '\r') v[i] = ' ';
  int major = 0, minor = 0;
  MPI_Get_version(&major, &minor);
  snprintf(out, out_len, "MPI %d.%d, %s", major, minor, v);
  return 0;
}

SLN_EXPORT int sln_mpi_init(int* rank, int* size, int* launched, char* err, size_t err_len) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) {
      put(err, err_len, "MPI_Init_thread", rc);
      return 1;
    }
    if (provided < MPI_THREAD_SERIALIZED) {
      snprintf(err, err_len, "MPI_Init_thread: this MPI provides thread level %d, MPI_THREAD_SERIALIZED (%d) is needed",
               provided, MPI_THREAD_SERIALIZED);
      return 1;
    }
    // Errors come back as return codes (the addon throws them); a dead peer is
    // handled by mpirun, which ends the job.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, size);
  *launched = (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK")) ? 1 : 0;
  return 0;
}

SLN_EXPORT int sln_mpi_allreduce(void* buf, int64_t count, int dtype, int op, char* err, size_t err_len) {
  MPI_Datatype t = dtype_of(dtype);
  MPI_Op o = op_of(op);
  if (t == MPI_DATATYPE_NULL || o == MPI_OP_NULL) {
    snprintf(err, err_len, "sln_mpi_allreduce: unknown dtype %d or op %d", dtype, op);
    return 1;
  }
  if (too_big(count * static_cast<int64_t>(dsize(dtype)), err, err_len, "MPI_Allreduce")) return 1;
  int rc = MPI_Allreduce(MPI_IN_PLACE, buf, static_cast<int>(count), t, o, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) {
    put(err, err_len, "MPI_Allreduce", rc);
    return 1;
  }
  return 0;
}

SLN_EXPORT int sln_mpi_allgatherv(const void* send, int64_t send_bytes, void* recv, const int64_t* recv_bytes,
                                  char* err, size_t err_len) {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<int> counts(size), displs(size);
  int64_t off = 0;
  for (int r = 0; r < size; ++r) {
    if (too_big(recv_bytes[r], err, err_len, "MPI_Allgatherv") || too_big(off, err, err_len, "MPI_Allgatherv")) return 1;
    counts[r] = static_cast<int>(recv_bytes[r]);
    displs[r] = static_cast<int>(off);
    off += recv_bytes[r];
  }
  if (too_big(off, err, err_len, "MPI_Allgatherv") || too_big(send_bytes, err, err_len, "MPI_Allgatherv")) return 1;
  int rc = MPI_Allgatherv(send, static_cast<int>(send_bytes), MPI_BYTE, recv, counts.data(), displs.data(), MPI_BYTE,
                          MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) {
    put(err, err_len, "MPI_Allgatherv", rc);
    return 1;
  }
  return 0;
}

SLN_EXPORT int sln_mpi_bcast(void* buf, int64_t bytes, int root, char* err, size_t err_len) {
  if (too_big(bytes, err, err_len, "MPI_Bcast")) return 1;
  int rc = MPI_Bcast(buf, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) {
    put(err, err_len, "MPI_Bcast", rc);
    return 1;
  }
  return 0;
}

SLN_EXPORT int sln_mpi_barrier(char* err, size_t err_len) {
  int rc = MPI_Barrier(MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) {
    put(err, err_len, "MPI_Barrier", rc);
    return 1;
  }
  return 0;
}

SLN_EXPORT int sln_mpi_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }

SLN_EXPORT int sln_mpi_finalize(char* err, size_t err_len) {
  int inited = 0, fin = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&fin);
  if (!inited || fin) return 0;
  int rc = MPI_Finalize();
  if (rc != MPI_SUCCESS) {
    put(err, err_len, "MPI_Finalize", rc);
    return 1;
  }
  return 0;
}
