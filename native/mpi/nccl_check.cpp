// scripts/device-check-nccl.sh's probe of libselflabel_nccl.so on a GPU
// machine (no Node.js, no MPI needed): dlopen, ABI check, a 1-rank
// communicator on device 0, an
// all-reduce of known float32 and float64 vectors, the sums checked exactly.
// Prints one line per check; exit 0 when all passed.
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "sln/nccl_api.h"

#define SYM(name) reinterpret_cast<name##_fn>(dlsym(h, #name))

int main(int argc, char** argv) {
  const char* path = argc > 1 ? argv[1] : "build-mpi/libselflabel_nccl.so";
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) return printf("FAIL dlopen %s: %s\n", path, dlerror()), 1;
  auto abi = SYM(sln_nccl_abi_version);
  auto describe = SYM(sln_nccl_describe);
  auto uid = SYM(sln_nccl_unique_id);
  auto init = SYM(sln_nccl_init);
  auto allreduce = SYM(sln_nccl_allreduce);
  auto fin = SYM(sln_nccl_finalize);
  if (!abi || !describe || !uid || !init || !allreduce || !fin) return printf("FAIL missing symbols\n"), 1;
  if (abi() != SLN_NCCL_ABI_VERSION) return printf("FAIL abi %d\n", abi()), 1;
  char d[256];
  describe(d, sizeof d);
  printf("ok   describe: %s\n", d);
  unsigned char id[SLN_NCCL_UNIQUE_ID_BYTES];
  char err[512] = {0};
  if (uid(id, err, sizeof err)) return printf("FAIL %s\n", err), 1;
  if (init(id, 0, 1, 0, err, sizeof err)) return printf("FAIL %s\n", err), 1;
  printf("ok   ncclCommInitRank (1 rank, device 0)\n");
  const int n = 1 << 20;
  std::vector<float> f(n);
  std::vector<double> g(n);
  for (int i = 0; i < n; i++) f[i] = static_cast<float>(i % 977) * 0.5f, g[i] = i * 0.25;
  float* df = nullptr;
  double* dg = nullptr;
  cudaMalloc(&df, n * sizeof(float));
  cudaMalloc(&dg, n * sizeof(double));
  cudaMemcpy(df, f.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(dg, g.data(), n * sizeof(double), cudaMemcpyHostToDevice);
  if (allreduce(df, n, SLN_NCCL_F32, SLN_NCCL_SUM, nullptr, err, sizeof err)) return printf("FAIL %s\n", err), 1;
  if (allreduce(dg, n, SLN_NCCL_F64, SLN_NCCL_SUM, nullptr, err, sizeof err)) return printf("FAIL %s\n", err), 1;
  std::vector<float> f2(n);
  std::vector<double> g2(n);
  cudaMemcpy(f2.data(), df, n * sizeof(float), cudaMemcpyDeviceToHost);
  cudaMemcpy(g2.data(), dg, n * sizeof(double), cudaMemcpyDeviceToHost);
  // one rank: the sum is the input itself, bit for bit
  bool same = memcmp(f.data(), f2.data(), n * sizeof(float)) == 0 && memcmp(g.data(), g2.data(), n * sizeof(double)) == 0;
  printf("%s allreduce f32 + f64 of %d elements (1 rank: output == input)\n", same ? "ok  " : "FAIL", n);
  if (fin(err, sizeof err)) return printf("FAIL %s\n", err), 1;
  printf("ok   ncclCommDestroy\n");
  return same ? 0 : 1;
}
