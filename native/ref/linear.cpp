// Float64 naive linear (PyTorch nn.Linear: y = x w^T + b).
#include "ref/ref.h"

namespace sln::ref {

// x (N,in), w (out,in), b (out) or null, y (N,out)
void linear_forward(const LinearDesc& d, const double* x, const double* w, const double* b, double* y) {
  for (int n = 0; n < d.N; n++)
    for (int o = 0; o < d.out; o++) {
      double acc = b ? b[o] : 0.0;
      for (int i = 0; i < d.in; i++) acc += x[size_t(n) * d.in + i] * w[size_t(o) * d.in + i];
      y[size_t(n) * d.out + o] = acc;
    }
}

// dy (N,out) -> dx (N,in) or null, dw (out,in) or null, db (out) or null; all overwritten.
void linear_backward(const LinearDesc& d, const double* x, const double* w, const double* dy,
                     double* dx, double* dw, double* db) {
  if (dx)
    for (int n = 0; n < d.N; n++)
      for (int i = 0; i < d.in; i++) {
        double acc = 0.0;
        for (int o = 0; o < d.out; o++) acc += dy[size_t(n) * d.out + o] * w[size_t(o) * d.in + i];
        dx[size_t(n) * d.in + i] = acc;
      }
  if (dw)
    for (int o = 0; o < d.out; o++)
      for (int i = 0; i < d.in; i++) {
        double acc = 0.0;
        for (int n = 0; n < d.N; n++) acc += dy[size_t(n) * d.out + o] * x[size_t(n) * d.in + i];
        dw[size_t(o) * d.in + i] = acc;
      }
  if (db)
    for (int o = 0; o < d.out; o++) {
      double acc = 0.0;
      for (int n = 0; n < d.N; n++) acc += dy[size_t(n) * d.out + o];
      db[o] = acc;
    }
}

}  // namespace sln::ref
