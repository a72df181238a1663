// The C ABI between the addon and libselflabel_mpi.so (native/mpi/mpi.cpp).
//
// The addon never links MPI. `--distributed` runs (lib/distributed) dlopen()
// the library on demand (RTLD_GLOBAL: OpenMPI's own plugins resolve libmpi's
// symbols through the global scope), check sln_mpi_abi_version() and then use
// only the symbols below. A single-machine user needs neither the library nor
// MPI. The library is built against the system MPI by scripts/build-mpi.sh
// (`npm run build:mpi`), with mpicxx.
//
// Rules for every function: never throws; returns 0 on success, nonzero on
// failure with a one-line message (naming the MPI call and its error string)
// in err (NUL-terminated, truncated to err_len). Collectives must be called by
// every rank in the same order; the addon serialises the calls (MPI is
// initialised with MPI_THREAD_SERIALIZED: calls come from the libuv pool).
// Byte counts above 2^31 - 1 are refused (MPI counts are int).
#pragma once
#include <cstddef>
#include <cstdint>

#define SLN_MPI_ABI_VERSION 1

extern "C" {

enum sln_mpi_dtype { SLN_MPI_F32 = 0, SLN_MPI_F64 = 1, SLN_MPI_I32 = 2, SLN_MPI_I64 = 3 };
enum sln_mpi_op { SLN_MPI_SUM = 0, SLN_MPI_MAX = 1, SLN_MPI_MIN = 2 };

typedef int (*sln_mpi_abi_version_fn)(void);
// MPI's version strings (MPI_Get_library_version), callable before init.
typedef int (*sln_mpi_describe_fn)(char* out, size_t out_len);
// MPI_Init_thread(MPI_THREAD_SERIALIZED) once; rank and size of MPI_COMM_WORLD.
// `launched` is set to 1 when the process was started by mpirun/mpiexec (an
// OpenMPI/PMIx environment variable is present), 0 for a singleton.
typedef int (*sln_mpi_init_fn)(int* rank, int* size, int* launched, char* err, size_t err_len);
// In place: buf (count elements of dtype) = op over the ranks.
typedef int (*sln_mpi_allreduce_fn)(void* buf, int64_t count, int dtype, int op, char* err, size_t err_len);
// Every rank sends send_bytes (which may differ per rank); recv receives
// all ranks' bytes in rank order; recv_bytes[r] (size entries) are the sizes.
typedef int (*sln_mpi_allgatherv_fn)(const void* send, int64_t send_bytes, void* recv, const int64_t* recv_bytes,
                                     char* err, size_t err_len);
typedef int (*sln_mpi_bcast_fn)(void* buf, int64_t bytes, int root, char* err, size_t err_len);
typedef int (*sln_mpi_barrier_fn)(char* err, size_t err_len);
// MPI_Abort(MPI_COMM_WORLD, code): ends every rank (does not return on success).
typedef int (*sln_mpi_abort_fn)(int code);
typedef int (*sln_mpi_finalize_fn)(char* err, size_t err_len);
}
