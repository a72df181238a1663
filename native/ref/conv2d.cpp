// Float64 naive conv2d (PyTorch semantics: zero padding on all sides, output
// size floor((H + 2*pad - R) / stride) + 1, cross-correlation, no flip).
#include "ref/ref.h"

namespace sln::ref {

// Calls f(xi, wi) for every input element x[xi] (N,C,H,W) that the weight
// w[wi] (K,C,R,S) multiplies into output (n, k, oh, ow), in (c, r, s) order;
// taps that fall into the zero padding are skipped.
template <class F>
static void for_each_tap(const Conv2dDesc& d, int n, int k, int oh, int ow, F&& f) {
  for (int c = 0; c < d.C; c++)
    for (int r = 0; r < d.R; r++) {
      const int ih = oh * d.stride - d.pad + r;
      if (ih < 0 || ih >= d.H) continue;
      for (int s = 0; s < d.S; s++) {
        const int iw = ow * d.stride - d.pad + s;
        if (iw < 0 || iw >= d.W) continue;
        f(((size_t(n) * d.C + c) * d.H + ih) * d.W + iw, ((size_t(k) * d.C + c) * d.R + r) * d.S + s);
      }
    }
}

// x (N,C,H,W), w (K,C,R,S), b (K) or null, y (N,K,OH,OW)
void conv2d_forward(const Conv2dDesc& d, const double* x, const double* w, const double* b, double* y) {
  const int OH = d.OH(), OW = d.OW();
  for (int n = 0; n < d.N; n++)
    for (int k = 0; k < d.K; k++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          double acc = b ? b[k] : 0.0;
          for_each_tap(d, n, k, oh, ow, [&](size_t xi, size_t wi) { acc += x[xi] * w[wi]; });
          y[((size_t(n) * d.K + k) * OH + oh) * OW + ow] = acc;
        }
}

// dy (N,K,OH,OW) -> dx (N,C,H,W) or null, dw (K,C,R,S) or null, db (K) or null; all overwritten.
void conv2d_backward(const Conv2dDesc& d, const double* x, const double* w, const double* dy,
                     double* dx, double* dw, double* db) {
  const int OH = d.OH(), OW = d.OW();
  if (dx) for (size_t i = 0; i < size_t(d.N) * d.C * d.H * d.W; i++) dx[i] = 0.0;
  if (dw) for (size_t i = 0; i < size_t(d.K) * d.C * d.R * d.S; i++) dw[i] = 0.0;
  if (db) for (int k = 0; k < d.K; k++) db[k] = 0.0;
  for (int n = 0; n < d.N; n++)
    for (int k = 0; k < d.K; k++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          const double g = dy[((size_t(n) * d.K + k) * OH + oh) * OW + ow];
          if (db) db[k] += g;
          for_each_tap(d, n, k, oh, ow, [&](size_t xi, size_t wi) {
            if (dx) dx[xi] += g * w[wi];
            if (dw) dw[wi] += g * x[xi];
          });
        }
}

}  // namespace sln::ref
