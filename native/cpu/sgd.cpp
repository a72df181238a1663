// torch.optim.SGD step: own OpenMP loop (dampening 0, nesterov off).
#include "cpu/cpu.h"

namespace sln::cpu {

// w, g, buf (n): g' = g + wd * w; buf = first ? g' : momentum * buf + g'; w -= lr * buf
void sgd_step(float* w, const float* g, float* buf, size_t n, float lr, float momentum, float weight_decay,
              bool first) {
  if (first) {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < static_cast<long>(n); i++) {
      const float b = g[i] + weight_decay * w[i];
      buf[i] = b;
      w[i] -= lr * b;
    }
  } else {
#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < static_cast<long>(n); i++) {
      const float b = momentum * buf[i] + (g[i] + weight_decay * w[i]);
      buf[i] = b;
      w[i] -= lr * b;
    }
  }
}

}  // namespace sln::cpu
