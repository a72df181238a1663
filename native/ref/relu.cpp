// Float64 reference ReLU.
#include "ref/ref.h"

namespace sln::ref {

void relu_forward(size_t n, const double* x, double* y) {
  for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0;
}

// from the forward output, as torch's threshold_backward(dy, y, 0)
void relu_backward(size_t n, const double* y, const double* dy, double* dx) {
  for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0.0;
}

}  // namespace sln::ref
