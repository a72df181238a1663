// Float64 reference of torch.optim.SGD's step (dampening 0, nesterov off).
#include "ref/ref.h"

namespace sln::ref {

// w, g, buf (n)
void sgd_step(double* w, const double* g, double* buf, size_t n, double lr, double momentum,
              double weight_decay, bool first) {
  for (size_t i = 0; i < n; i++) {
    double gp = g[i] + weight_decay * w[i];
    buf[i] = first ? gp : momentum * buf[i] + gp;
    w[i] -= lr * buf[i];
  }
}

}  // namespace sln::ref
