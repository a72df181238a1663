// Softmax cross-entropy: own OpenMP loop over rows, stable log-sum-exp,
// batch loss accumulated in double.
#include <cmath>

#include "cpu/cpu.h"

namespace sln::cpu {

// logits, dlogits (N,K); labels (N) in [0,K), validated by the caller.
// dlogits = scale * (softmax - onehot) / N, or null for the loss alone.
double cross_entropy(const float* logits, const int32_t* labels, int N, int K, float* dlogits, float scale) {
  SLN_CHECK_ARG(N >= 1 && K >= 1, "cross_entropy: need N >= 1 and K >= 1, got (N,K) = (" << N << "," << K << ")");
  double loss = 0;
  const float g = scale / static_cast<float>(N);
#pragma omp parallel for schedule(static) reduction(+ : loss)
  for (int n = 0; n < N; n++) {
    const float* z = logits + static_cast<size_t>(n) * K;   // (K)
    float m = z[0];
    for (int k = 1; k < K; k++) m = z[k] > m ? z[k] : m;
    double s = 0;
    float* dz = dlogits ? dlogits + static_cast<size_t>(n) * K : nullptr;   // (K)
    for (int k = 0; k < K; k++) {
      float e = std::exp(z[k] - m);
      s += e;
      if (dz) dz[k] = e;
    }
    const int label = labels[n];
    loss += static_cast<double>(m) + std::log(s) - static_cast<double>(z[label]);
    if (dz) {
      const float f = static_cast<float>(g / s);
      for (int k = 0; k < K; k++) dz[k] *= f;
      dz[label] -= g;
    }
  }
  if (!std::isfinite(loss))
    SLN_FAIL(Range, "SLN_NONFINITE_LOSS", "cross_entropy: the loss is not finite (NaN or Inf in the logits?), (N,K) = ("
                                              << N << "," << K << ")");
  return loss / N;
}

}  // namespace sln::cpu
