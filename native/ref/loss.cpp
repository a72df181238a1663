// Float64 reference softmax cross-entropy, mean over the batch.
#include <algorithm>
#include <cmath>

#include "ref/ref.h"

namespace sln::ref {

// logits, dlogits (N,K); labels (N). dlogits = scale * (softmax - onehot) / N; null = skip.
double cross_entropy(const double* logits, const int32_t* labels, int N, int K, double* dlogits, double scale) {
  double loss = 0;
  for (int n = 0; n < N; n++) {
    const double* z = logits + static_cast<size_t>(n) * K;
    double m = *std::max_element(z, z + K);
    double s = 0;
    for (int k = 0; k < K; k++) s += std::exp(z[k] - m);
    double lse = m + std::log(s);
    loss += lse - z[labels[n]];
    if (dlogits)
      for (int k = 0; k < K; k++)
        dlogits[static_cast<size_t>(n) * K + k] = scale * (std::exp(z[k] - lse) - (k == labels[n] ? 1.0 : 0.0)) / N;
  }
  return loss / N;
}

}  // namespace sln::ref
