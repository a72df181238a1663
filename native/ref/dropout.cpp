// Float64 reference dropout; the mask comes from sln::dropout_mask.
#include "ref/ref.h"

namespace sln::ref {

// mask, x, y (n): y = mask ? x / (1 - p) : 0
void dropout_forward(size_t n, double p, const uint8_t* mask, const double* x, double* y) {
  for (size_t i = 0; i < n; i++) y[i] = mask[i] ? x[i] / (1 - p) : 0.0;
}

void dropout_backward(size_t n, double p, const uint8_t* mask, const double* dy, double* dx) {
  for (size_t i = 0; i < n; i++) dx[i] = mask[i] ? dy[i] / (1 - p) : 0.0;
}

}  // namespace sln::ref
