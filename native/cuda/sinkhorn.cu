// The fused float64 Sinkhorn-Knopp solver on the GPU: the algorithm of
// native/core/sinkhorn.h (same column shift against underflow, same stopping rule,
// same outputs), with the matrix resident on the device, one pass over it per
// iteration, and only the error (8 bytes) coming back per check.
//
// Per iteration (fused_pass): a fixed grid of kBlocks thread blocks, each owning a
// fixed range of rows. For a chunk of rows a warp per row computes dot = A[j,:] . r
// (lane-strided, shuffle-reduced in a fixed order), c_new[j] = (1/N)/dot, the error
// term and (on check passes) the argmax; then the block's threads, one column each,
// add A[j,k] * c_new[j] for the chunk's rows in row order into the block's column
// partials (shared memory when K fits, else global). The chunk's rows are re-read
// from L2, not from DRAM. reduce_r sums the kBlocks partials in block order. Every
// sum has a fixed order, so results are reproducible run to run.
//
// Row-sharded (Options::shard, `--distributed --device cuda`): each rank holds its
// own rows; the per-block partials are summed on the rank (reduce_sums), then the
// K column sums and err cross the ranks in one float64 all-reduce of K + 1 values
// per iteration over NCCL (Shard::device_allreduce, on this stream), and finish_r
// makes r from them: the all-reduce mode of native/core/sinkhorn.h (equal to the
// one-GPU solve up to reassociation). The column maxima go through one device
// max-all-reduce; the few host scalars (the cold start's minimum, a bad row, the
// counts, the cost) through Shard::allreduce (MPI).
//
// Exported as sln_cuda_sinkhorn (native/cuda/api.cpp). The logits are in device
// memory (the model's label-pass store); every kernel, copy and timing event runs
// on the backend's stream, with the solver's own cudaMalloc'd work buffers.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/sinkhorn.h"
#include "core/sinkhorn_checks.h"
#include "sln/errors.h"

namespace sln::cuda {

#define SLN_CUDA(call)                                                                               \
  do {                                                                                               \
    cudaError_t sln_e_ = (call);                                                                     \
    if (sln_e_ != cudaSuccess)                                                                       \
      SLN_FAIL(Library, "SLN_CUDA", "sinkhorn (cuda): " #call " failed: " << cudaGetErrorString(sln_e_) \
                                                                        << " (N=" << N << ", K=" << K << ")"); \
  } while (0)

namespace {

constexpr int kBlocks = 1024;     // fixed: does not depend on the GPU
constexpr int kThreads = 256;     // 8 warps
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = kWarps;    // rows per chunk: one per warp

template <class T>
struct DeviceBuffer {
  T* p = nullptr;
  ~DeviceBuffer() {
    if (p) cudaFree(p);
  }
};

// Timing events on the solver's stream (where every kernel here runs):
// read after the loop, so timing adds no synchronisation per iteration.
struct Events {
  std::vector<cudaEvent_t> v;
  ~Events() {
    for (cudaEvent_t e : v) cudaEventDestroy(e);
  }
};

__device__ inline double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;  // lane 0 holds the sum, always added in the same order
}

template <class T>
__device__ inline T stored_exp(double x) {
  const double cut = (sizeof(T) == 8) ? -708.3964185322641 : -87.33654475055310;  // log(min normal)
  if (x < cut) return T(0);
  double v = exp(x);
  T t = static_cast<T>(v);
  return (sizeof(T) == 4 && t < 1.17549435e-38f) ? T(0) : t;
}

// Row statistics: rowmax, lse = log sum exp(z), first non-finite row (atomicMin).
__global__ void row_stats(const float* __restrict__ z, int64_t N, int64_t K, double* rowmax, double* lse,
                          unsigned long long* bad) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * kWarps + warp; j < N; j += static_cast<int64_t>(gridDim.x) * kWarps) {
    const float* zr = z + j * K;
    double m = -INFINITY;
    bool ok = true;
    for (int64_t k = lane; k < K; k += 32) {
      double v = zr[k];
      if (!isfinite(v)) ok = false;
      m = fmax(m, v);
    }
    ok = __all_sync(0xffffffffu, ok);
    for (int o = 16; o > 0; o >>= 1) m = fmax(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (!ok) {
      if (lane == 0) atomicMin(bad, static_cast<unsigned long long>(j));
      continue;
    }
    double s = 0;
    for (int64_t k = lane; k < K; k += 32) s += exp(static_cast<double>(zr[k]) - m);
    s = warp_sum(s);
    if (lane == 0) {
      rowmax[j] = m;
      lse[j] = m + log(s);
    }
  }
}

// Column max of lambda*(z - rowmax): per-block partials (kBlocks, K), then colmax_reduce.
__global__ void colmax_partial(const float* __restrict__ z, int64_t N, int64_t K, double lambda, const double* rowmax,
                               double* part, int64_t rows_per_block) {
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * rows_per_block, j1 = min(N, j0 + rows_per_block);
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
    double m = -INFINITY;
    for (int64_t j = j0; j < j1; ++j) m = fmax(m, lambda * (static_cast<double>(z[j * K + k]) - rowmax[j]));
    part[static_cast<int64_t>(blockIdx.x) * K + k] = m;
  }
}

__global__ void colmax_reduce(const double* part, int nb, int64_t K, double* M) {
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < K; k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double m = -INFINITY;
    for (int b = 0; b < nb; ++b) m = fmax(m, part[b * K + k]);
    M[k] = m;
  }
}

// zlab[j] = z[j, labels[j]] (the cost's term; the logits stay on the device).
__global__ void gather_label_logits(const float* __restrict__ z, int64_t N, int64_t K, const int32_t* labels,
                                    double* zlab) {
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < N;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x)
    zlab[j] = static_cast<double>(z[j * K + labels[j]]);
}

// A = exp(lambda*(z - rowmax) - M) in T; c = the reference's start (see sinkhorn.cpp).
template <class T>
__global__ void build_matrix(const float* __restrict__ z, int64_t N, int64_t K, double lambda, const double* rowmax,
                             const double* M, T* A) {
  const int64_t total = N * K;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = i / K, k = i - j * K;
    A[i] = stored_exp<T>(lambda * (static_cast<double>(z[i]) - rowmax[j]) - M[k]);
  }
}

__global__ void init_c(int64_t N, double inv_n, double lambda, const double* rowmax, const double* lse, double min_ls,
                       double* c) {
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < N; j += static_cast<int64_t>(gridDim.x) * blockDim.x)
    c[j] = inv_n * exp(fmax(-lambda * (lse[j] - rowmax[j] - min_ls), -600.0));
}

// mode 0: colsum only (from the given c, the cold start); mode 1: c = (1/N)/(A r) then
// colsum (warm start and every iteration). check: also err terms and labels.
template <class T>
__global__ void fused_pass(const T* __restrict__ A, int64_t N, int64_t K, int64_t rows_per_block,
                           const double* __restrict__ r, double* c, double* part, double* err_part, int32_t* labels,
                           unsigned long long* bad, int mode, int check, double inv_n, int smem_cols) {
  extern __shared__ double sm[];
  double* colsum = smem_cols ? sm : part + static_cast<int64_t>(blockIdx.x) * K;  // (K) this block's partials
  __shared__ double cchunk[kChunk];
  __shared__ double errw[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) colsum[k] = 0;
  double err_acc = 0;  // lane 0 of each warp
  const int64_t j0 = static_cast<int64_t>(blockIdx.x) * rows_per_block, j1 = min(N, j0 + rows_per_block);
  __syncthreads();
  for (int64_t jc = j0; jc < j1; jc += kChunk) {
    const int64_t j = jc + warp;
    if (j < j1) {
      double cj = c[j];
      if (mode == 1) {
        const T* a = A + j * K;
        double s = 0;
        for (int64_t k = lane; k < K; k += 32) s += static_cast<double>(a[k]) * r[k];
        s = warp_sum(s);
        s = __shfl_sync(0xffffffffu, s, 0);
        double cn = inv_n / s;
        if (!(cn > 0) || isinf(cn)) {  // as the CPU pass: c_new left the float64 range
          if (lane == 0) atomicMin(bad, static_cast<unsigned long long>(j));
          cn = inv_n;  // keep going; the host reports the row
        }
        if (check) {
          double best = -1;
          int32_t bi = 0;
          for (int64_t k = lane; k < K; k += 32) {  // lane-local first maximum
            double v = static_cast<double>(a[k]) * r[k];
            if (v > best) {
              best = v;
              bi = static_cast<int32_t>(k);
            }
          }
          for (int o = 16; o > 0; o >>= 1) {  // global first maximum: larger value, then smaller index
            double ob = __shfl_xor_sync(0xffffffffu, best, o);
            int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ob > best || (ob == best && oi < bi)) {
              best = ob;
              bi = oi;
            }
          }
          if (lane == 0) {
            labels[j] = bi;
            err_acc += fabs(cj / cn - 1.0);
          }
        }
        cj = cn;
        if (lane == 0) c[j] = cn;
      }
      if (lane == 0) cchunk[warp] = cj;
    }
    __syncthreads();
    const int64_t rows = (j1 - jc < kChunk) ? (j1 - jc) : kChunk;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      double s = colsum[k];
      for (int64_t q = 0; q < rows; ++q) s += static_cast<double>(A[(jc + q) * K + k]) * cchunk[q];  // row order
      colsum[k] = s;
    }
    __syncthreads();
  }
  if (smem_cols)
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) part[static_cast<int64_t>(blockIdx.x) * K + k] = colsum[k];
  if (lane == 0) errw[warp] = err_acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double e = 0;
    for (int w = 0; w < kWarps; ++w) e += errw[w];
    err_part[blockIdx.x] = e;
  }
}

// r = (1/K) / sum_b part[b, k] (block order); err = sum_b err_part[b] (block 0, thread 0).
__global__ void reduce_r(const double* part, const double* err_part, int nb, int64_t K, double inv_k, double* r,
                         double* err) {
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < K; k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double s = 0;
    for (int b = 0; b < nb; ++b) s += part[b * K + k];
    r[k] = inv_k / s;
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    double e = 0;
    for (int b = 0; b < nb; ++b) e += err_part[b];
    *err = e;
  }
}

// Sharded solve: sums[k] = sum_b part[b, k] (block order), sums[K] = sum_b err_part[b];
// summed over the ranks next, then finish_r.
__global__ void reduce_sums(const double* part, const double* err_part, int nb, int64_t K, double* sums) {
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < K; k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double s = 0;
    for (int b = 0; b < nb; ++b) s += part[b * K + k];
    sums[k] = s;
  }
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    double e = 0;
    for (int b = 0; b < nb; ++b) e += err_part[b];
    sums[K] = e;
  }
}

// r = (1/K) / sums[k]; err = sums[K] (the global column sums and err).
__global__ void finish_r(const double* sums, int64_t K, double inv_k, double* r, double* err) {
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < K; k += static_cast<int64_t>(gridDim.x) * blockDim.x)
    r[k] = inv_k / sums[k];
  if (blockIdx.x == 0 && threadIdx.x == 0) *err = sums[K];
}

// cudaMalloc for the solver: out of memory (the estimate passed but the memory is
// fragmented, or another process took it meanwhile) is SLN_OUT_OF_MEMORY saying
// what was asked and what is free, as the backend's allocator reports it.
template <class T>
void device_alloc(T** p, size_t bytes, const char* what, int64_t N, int64_t K) {
  const cudaError_t e = cudaMalloc(p, bytes);
  if (e == cudaSuccess) return;
  cudaGetLastError();
  if (e == cudaErrorMemoryAllocation) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    SLN_FAIL(OutOfMemory, "SLN_OUT_OF_MEMORY",
             "sinkhorn (cuda): cudaMalloc of " << what << " (" << bytes / 1048576.0 << " MiB) failed: out of GPU memory, "
                                               << free_b / 1048576.0 << " MiB free of " << total_b / 1048576.0
                                               << " MiB (N=" << N << ", K=" << K << "); use --dtype f32 or fewer images");
  }
  SLN_FAIL(Library, "SLN_CUDA",
           "sinkhorn (cuda): cudaMalloc of " << what << " (" << bytes << " bytes) failed: " << cudaGetErrorString(e)
                                             << " (N=" << N << ", K=" << K << ")");
}

template <class T>
sinkhorn::Result solve_cuda(cudaStream_t st, const float* z, int64_t N, int64_t K, const sinkhorn::Options& o) {
  const sinkhorn::Shard* sh = o.shard;
  if (sh) {
    if (sh->exact)
      SLN_FAIL(Unsupported, "SLN_UNSUPPORTED", "sinkhorn (cuda): a row-sharded solve on the GPU runs in all-reduce mode "
                                               "(shard.exact = false); the block-ordered exact mode is the CPU solver's");
    if (!sh->device_allreduce || !sh->allreduce || !sh->allgather)
      SLN_FAIL(Unsupported, "SLN_NO_NCCL", "sinkhorn (cuda): a row-sharded solve needs the NCCL collectives (--distributed --device cuda)");
    SLN_CHECK_ARG(N >= 1 && N <= sh->n_total, "sinkhorn (cuda): this rank's rows (" << N << ") must be in [1, nTotal = " << sh->n_total << "]");
  }
  const int64_t NT = sh ? sh->n_total : N;   // rows over every rank
  sinkhorn::check_args(NT, K, o, "sinkhorn (cuda)");   // the CPU solver's checks (core/sinkhorn_checks.h)
  // this rank's first row (a sharded solve's rows are contiguous, in rank order)
  int64_t row0 = 0;
  if (sh) {
    std::vector<double> mine{static_cast<double>(N)}, all(sh->ranks);
    sh->allgather(mine.data(), 1, all.data(), std::vector<int64_t>(sh->ranks, 1));
    for (int q = 0; q < sh->rank; ++q) row0 += static_cast<int64_t>(all[q]);
  }
  // A row found bad on one rank stops every rank with the same message (the
  // smallest bad global row): no rank is left waiting in a collective.
  auto agree_bad = [&](unsigned long long local, unsigned long long none) -> unsigned long long {
    if (!sh) return local;
    double g = local == none ? std::numeric_limits<double>::infinity() : static_cast<double>(row0 + static_cast<int64_t>(local));
    sh->allreduce(&g, 1, 2);
    return std::isinf(g) ? none : static_cast<unsigned long long>(g);
  };
  const double lambda = o.lambda, inv_n = 1.0 / NT, inv_k = 1.0 / K;
  const int nb = static_cast<int>(std::min<int64_t>(N, kBlocks));
  const int64_t rows_per_block = (N + nb - 1) / nb;
  const uint64_t mat = static_cast<uint64_t>(N) * K * sizeof(T);
  size_t free_b = 0, total_b = 0;
  SLN_CUDA(cudaMemGetInfo(&free_b, &total_b));
  const uint64_t need = mat + static_cast<uint64_t>(N) * 40 + static_cast<uint64_t>(nb) * K * 8 * 2;
  if (need > free_b) {
    std::ostringstream os;
    os << "sinkhorn (cuda): the N x K = " << N << " x " << K << " matrix in " << (sizeof(T) == 8 ? "f64" : "f32")
       << " storage needs " << need / 1e9 << " GB of GPU memory but " << free_b / 1e9 << " GB is free; "
       << (sizeof(T) == 8 ? "use --dtype f32" : "use fewer images");
    throw Error(ErrorKind::OutOfMemory, "SLN_OUT_OF_MEMORY", os.str());
  }
  DeviceBuffer<T> A;
  DeviceBuffer<double> rowmax, lse, c, M, r, part, errp, err, zlab, sums;
  DeviceBuffer<int32_t> labels;
  DeviceBuffer<unsigned long long> bad;
  device_alloc(&A.p, mat, sizeof(T) == 8 ? "the (N, K) f64 matrix" : "the (N, K) f32 matrix", N, K);
  device_alloc(&rowmax.p, N * 8, "rowmax", N, K);
  device_alloc(&lse.p, N * 8, "lse", N, K);
  device_alloc(&c.p, N * 8, "c", N, K);
  device_alloc(&M.p, K * 8, "M", N, K);
  device_alloc(&r.p, K * 8, "r", N, K);
  device_alloc(&part.p, static_cast<size_t>(nb) * K * 8, "part", N, K);
  device_alloc(&errp.p, nb * 8, "errp", N, K);
  device_alloc(&err.p, 8, "err", N, K);
  device_alloc(&labels.p, N * 4, "labels", N, K);
  device_alloc(&bad.p, 8, "bad", N, K);
  device_alloc(&zlab.p, N * 8, "zlab", N, K);
  if (sh) device_alloc(&sums.p, (K + 1) * 8, "sums", N, K);
  // the column sums r comes from: this GPU's blocks alone, or all ranks' (NCCL)
  auto make_r = [&]() {
    const int g = static_cast<int>((K + kThreads - 1) / kThreads);
    if (!sh) {
      reduce_r<<<g, kThreads, 0, st>>>(part.p, errp.p, nb, K, inv_k, r.p, err.p);
      return;
    }
    reduce_sums<<<g, kThreads, 0, st>>>(part.p, errp.p, nb, K, sums.p);
    SLN_CUDA(cudaGetLastError());
    sh->device_allreduce(sums.p, K + 1, 0, st);
    finish_r<<<g, kThreads, 0, st>>>(sums.p, K, inv_k, r.p, err.p);
  };
  // every transfer on the backend's stream, after the work queued there (the
  // logits' forward); the host waits only where it reads
  auto to_host = [&](void* dst, const void* src, size_t bytes) {
    SLN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st));
    SLN_CUDA(cudaStreamSynchronize(st));
  };
  auto to_device = [&](void* dst, const void* src, size_t bytes) {
    SLN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st));
    SLN_CUDA(cudaStreamSynchronize(st));   // src is pageable host memory that goes away
  };
  const unsigned long long none = std::numeric_limits<unsigned long long>::max();
  to_device(bad.p, &none, 8);
  // Result's build_seconds, solve_seconds and median_iter_seconds (bench/gpu_sinkhorn.ts
  // reports them): marks[0] = start of the build, marks[1 + i] =
  // end of the build / iteration i.
  Events marks;
  auto mark = [&]() {
    marks.v.push_back(nullptr);
    SLN_CUDA(cudaEventCreate(&marks.v.back()));
    SLN_CUDA(cudaEventRecord(marks.v.back(), st));
  };
  mark();

  row_stats<<<nb, kThreads, 0, st>>>(z, N, K, rowmax.p, lse.p, bad.p);
  SLN_CUDA(cudaGetLastError());
  unsigned long long bad_row = none;
  to_host(&bad_row, bad.p, 8);
  bad_row = agree_bad(bad_row, none);
  if (bad_row != none)
    SLN_FAIL(Range, "SLN_NONFINITE_LOGITS",
             "sinkhorn: logits row " << bad_row << " (image " << bad_row << ") has a NaN or Inf; labels need finite logits");
  colmax_partial<<<nb, kThreads, 0, st>>>(z, N, K, lambda, rowmax.p, part.p, rows_per_block);
  colmax_reduce<<<(K + kThreads - 1) / kThreads, kThreads, 0, st>>>(part.p, nb, K, M.p);
  SLN_CUDA(cudaGetLastError());
  if (sh) sh->device_allreduce(M.p, K, 1, st);   // the column maxima over every rank's rows
  build_matrix<T><<<4 * kBlocks, kThreads, 0, st>>>(z, N, K, lambda, rowmax.p, M.p, A.p);
  SLN_CUDA(cudaGetLastError());
  std::vector<double> h_rowmax(N), h_lse(N), h_M(K);
  to_host(h_rowmax.data(), rowmax.p, N * 8);
  to_host(h_lse.data(), lse.p, N * 8);
  to_host(h_M.data(), M.p, K * 8);
  double min_ls = std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < N; ++j) min_ls = std::min(min_ls, h_lse[j] - h_rowmax[j]);
  if (sh) sh->allreduce(&min_ls, 1, 2);

  // fused_pass also has (kChunk + kWarps) doubles of static shared memory; the
  // sum of static and dynamic must stay within the 48 KB a launch gets without
  // opting in (else the launch fails for K just below 6144).
  const size_t smem = static_cast<size_t>(K) * 8;
  const size_t smem_static = static_cast<size_t>(kChunk + kWarps) * sizeof(double);
  const int smem_cols = smem + smem_static <= 48 * 1024 ? 1 : 0;
  const size_t dyn = smem_cols ? smem : 0;
  int mode0 = 0;
  init_c<<<nb, kThreads, 0, st>>>(N, inv_n, lambda, rowmax.p, lse.p, min_ls, c.p);
  if (o.warm_log_r) {  // r from the given log r (see sinkhorn.cpp), then c = (1/N)/(A r) in the first pass
    std::vector<double> hr(K);
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, o.warm_log_r[k] + h_M[k]);
    for (int64_t k = 0; k < K; ++k) hr[k] = std::exp(std::max(o.warm_log_r[k] + h_M[k] - mx, -600.0));
    to_device(r.p, hr.data(), K * 8);
    mode0 = 1;
  }
  fused_pass<T><<<nb, kThreads, dyn, st>>>(A.p, N, K, rows_per_block, r.p, c.p, part.p, errp.p, labels.p, bad.p, mode0, 0,
                                       inv_n, smem_cols);
  make_r();
  SLN_CUDA(cudaGetLastError());
  mark();

  sinkhorn::Result res;
  DeviceBuffer<double> r_used;
  device_alloc(&r_used.p, K * 8, "r_used", N, K);
  for (int it = 0;; ++it) {
    const int check = (it % 10 == 0) || (it == o.max_iters - 1);
    SLN_CUDA(cudaMemcpyAsync(r_used.p, r.p, K * 8, cudaMemcpyDeviceToDevice, st));
    fused_pass<T><<<nb, kThreads, dyn, st>>>(A.p, N, K, rows_per_block, r_used.p, c.p, part.p, errp.p, labels.p, bad.p, 1,
                                         check, inv_n, smem_cols);
    make_r();
    SLN_CUDA(cudaGetLastError());
    mark();
    res.iterations = it + 1;
    if (check) {
      to_host(&res.error, err.p, 8);  // the only per-check transfers
      to_host(&bad_row, bad.p, 8);
      bad_row = agree_bad(bad_row, none);
      if (bad_row != none)
        SLN_FAIL(Range, "SLN_SINKHORN_RANGE", "sinkhorn (cuda): the scaling of image " << bad_row << " left the float64 range at iteration " << it << "; lower lambda (--lamb)");
      if (res.error <= o.tol) {
        res.converged = true;
        break;
      }
    }
    if (it + 1 >= o.max_iters) break;
  }
  if (!res.converged) res.warning = sinkhorn::max_iters_warning(o, res.error);
  res.labels.resize(N);
  gather_label_logits<<<nb, kThreads, 0, st>>>(z, N, K, labels.p, zlab.p);
  SLN_CUDA(cudaGetLastError());
  to_host(res.labels.data(), labels.p, N * 4);
  std::vector<double> h_zlab(N);
  to_host(h_zlab.data(), zlab.p, N * 8);
  {
    SLN_CUDA(cudaEventSynchronize(marks.v.back()));
    auto secs = [&](size_t a, size_t b) {
      float ms = 0;
      SLN_CUDA(cudaEventElapsedTime(&ms, marks.v[a], marks.v[b]));
      return ms / 1e3;
    };
    res.build_seconds = secs(0, 1);
    res.solve_seconds = secs(1, marks.v.size() - 1);
    std::vector<double> iter_s;
    for (size_t i = 1; i + 1 < marks.v.size(); ++i) iter_s.push_back(secs(i, i + 1));
    std::nth_element(iter_s.begin(), iter_s.begin() + iter_s.size() / 2, iter_s.end());
    res.median_iter_seconds = iter_s.empty() ? 0 : iter_s[iter_s.size() / 2];  // as sinkhorn::median
  }
  std::vector<double> hr(K), hc(N);
  to_host(hr.data(), r_used.p, K * 8);
  to_host(hc.data(), c.p, N * 8);
  res.counts.assign(K, 0);
  double cost = 0;
  for (int64_t j = 0; j < N; ++j) {
    res.counts[res.labels[j]]++;
    cost += h_lse[j] - h_zlab[j];
  }
  if (sh) {   // over every rank's rows (counts are exact in float64)
    std::vector<double> v(K + 1);
    for (int64_t k = 0; k < K; ++k) v[k] = res.counts[k];
    v[K] = cost;
    sh->allreduce(v.data(), K + 1, 0);
    for (int64_t k = 0; k < K; ++k) res.counts[k] = static_cast<int32_t>(v[k]);
    cost = v[K];
  }
  res.cost = cost / NT;
  set_log_scalings(res, hr.data(), h_M.data(), K, hc.data(), N);
  return res;
}

}  // namespace

// sln_cuda_sinkhorn's body (api.cpp): same contract as sinkhorn::solve_logits,
// the logits in device memory, every kernel and copy on `stream`.
sinkhorn::Result sinkhorn_logits(cudaStream_t stream, const float* z, int64_t n, int64_t k, const sinkhorn::Options& opt) {
  return opt.storage == sinkhorn::Storage::F64 ? solve_cuda<double>(stream, z, n, k, opt)
                                               : solve_cuda<float>(stream, z, n, k, opt);
}

}  // namespace sln::cuda
