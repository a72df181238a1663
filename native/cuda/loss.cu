// Softmax cross-entropy, mean over the batch (the CPU's native/cpu/loss.cpp):
// per row n, m = max_k z, e_k = exp(z_k - m) (float), s = sum_k e_k (double),
//   loss_n  = m + log(s) - z[label]                 (double)
//   dz_k    = e_k * float(g / s) - (k == label) g   with g = scale / N (float)
// One block per row; the row's max and sum are block reductions. The batch
// loss is then summed in a fixed order by one block (deterministic run to
// run); the backend copies it to the host and divides by N. A label outside
// [0, K) gives a NaN loss (reported as SLN_NONFINITE_LOSS), never a stray read.
#include "cuda/common.h"

namespace sln::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void ce_rows_kernel(const float* __restrict__ logits, const int32_t* __restrict__ labels, int K,
                               float* dlogits, float g, double* row_loss) {
  __shared__ float smax[kThreads];
  __shared__ double ssum[kThreads];
  const int n = blockIdx.x, t = threadIdx.x;
  const float* z = logits + static_cast<size_t>(n) * K;   // (K)
  float m = -INFINITY;
  for (int k = t; k < K; k += kThreads) m = fmaxf(m, z[k]);
  smax[t] = m;
  __syncthreads();
  for (int o = kThreads / 2; o > 0; o >>= 1) {
    if (t < o) smax[t] = fmaxf(smax[t], smax[t + o]);
    __syncthreads();
  }
  m = smax[0];
  float* dz = dlogits ? dlogits + static_cast<size_t>(n) * K : nullptr;   // (K)
  double s = 0;
  for (int k = t; k < K; k += kThreads) {
    const float e = expf(z[k] - m);
    s += e;
    if (dz) dz[k] = e;
  }
  ssum[t] = s;
  __syncthreads();
  for (int o = kThreads / 2; o > 0; o >>= 1) {
    if (t < o) ssum[t] += ssum[t + o];
    __syncthreads();
  }
  s = ssum[0];
  // Labels are validated by the caller; one out of range must still not read
  // outside the row (an illegal address would poison the CUDA context), so it
  // makes the row's loss NaN, which the backend reports as a non-finite loss.
  int label = labels[n];
  const bool valid = label >= 0 && label < K;
  if (!valid) label = -1;
  if (t == 0) row_loss[n] = valid ? static_cast<double>(m) + log(s) - static_cast<double>(z[label]) : nan("");
  if (dz) {
    const float f = static_cast<float>(static_cast<double>(g) / s);
    for (int k = t; k < K; k += kThreads) {
      float v = __fmul_rn(dz[k], f);
      if (k == label) v = __fsub_rn(v, g);
      dz[k] = v;
    }
  }
}

__global__ void sum_rows_kernel(const double* row_loss, int N, double* total) {
  __shared__ double s[kThreads];
  const int t = threadIdx.x;
  double a = 0;
  for (int n = t; n < N; n += kThreads) a += row_loss[n];
  s[t] = a;
  __syncthreads();
  for (int o = kThreads / 2; o > 0; o >>= 1) {
    if (t < o) s[t] += s[t + o];
    __syncthreads();
  }
  if (t == 0) *total = s[0];
}

}  // namespace

void launch_cross_entropy(const float* logits, const int32_t* labels, int N, int K, float* dlogits, float scale,
                          double* row_loss, double* total, cudaStream_t s) {
  const float g = scale / static_cast<float>(N);
  ce_rows_kernel<<<N, kThreads, 0, s>>>(logits, labels, K, dlogits, g, row_loss);
  sum_rows_kernel<<<1, kThreads, 0, s>>>(row_loss, N, total);
}

}  // namespace sln::cuda
