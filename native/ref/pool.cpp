// Float64 reference max and average pooling (PyTorch: floor output size,
// padding never wins a max, average counts padding).
#include <algorithm>
#include <limits>

#include "ref/ref.h"

namespace sln::ref {

// x (N,C,H,W), y and argmax (N,C,OH,OW)
void maxpool2d_forward(const Pool2dDesc& d, const double* x, double* y, int64_t* argmax) {
  const int OH = d.OH(), OW = d.OW(), KH = d.KH(), KW = d.KW();
  for (int64_t nc = 0; nc < static_cast<int64_t>(d.N) * d.C; nc++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t bi = -1;
        for (int r = 0; r < KH; r++)
          for (int s = 0; s < KW; s++) {
            int ih = oh * d.stride - d.pad + r, iw = ow * d.stride - d.pad + s;
            if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
            int64_t k = (nc * d.H + ih) * d.W + iw;
            if (bi < 0 || x[k] > best) best = x[k], bi = k;   // first maximum wins ties
          }
        int64_t o = (nc * OH + oh) * OW + ow;
        y[o] = best;
        argmax[o] = bi;
      }
}

// dy (N,C,OH,OW), dx (N,C,H,W)
void maxpool2d_backward(const Pool2dDesc& d, const int64_t* argmax, const double* dy, double* dx) {
  const int64_t nx = static_cast<int64_t>(d.N) * d.C * d.H * d.W;
  const int64_t ny = static_cast<int64_t>(d.N) * d.C * d.OH() * d.OW();
  std::fill(dx, dx + nx, 0.0);
  for (int64_t o = 0; o < ny; o++) dx[argmax[o]] += dy[o];
}

// Divisor as torch's avg_pool2d with count_include_pad=True: the window clipped
// to the padded input [-pad, H+pad), padding included.
static int avg_divisor(const Pool2dDesc& d, int oh, int ow) {
  int h0 = oh * d.stride - d.pad, w0 = ow * d.stride - d.pad;
  int h1 = std::min(h0 + d.KH(), d.H + d.pad), w1 = std::min(w0 + d.KW(), d.W + d.pad);
  return (h1 - h0) * (w1 - w0);
}

// x (N,C,H,W), y (N,C,OH,OW)
void avgpool2d_forward(const Pool2dDesc& d, const double* x, double* y) {
  const int OH = d.OH(), OW = d.OW(), KH = d.KH(), KW = d.KW();
  for (int64_t nc = 0; nc < static_cast<int64_t>(d.N) * d.C; nc++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        double s = 0;
        for (int r = 0; r < KH; r++)
          for (int q = 0; q < KW; q++) {
            int ih = oh * d.stride - d.pad + r, iw = ow * d.stride - d.pad + q;
            if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
            s += x[(nc * d.H + ih) * d.W + iw];
          }
        y[(nc * OH + oh) * OW + ow] = s / avg_divisor(d, oh, ow);
      }
}

// dy (N,C,OH,OW), dx (N,C,H,W)
void avgpool2d_backward(const Pool2dDesc& d, const double* dy, double* dx) {
  const int OH = d.OH(), OW = d.OW(), KH = d.KH(), KW = d.KW();
  std::fill(dx, dx + static_cast<int64_t>(d.N) * d.C * d.H * d.W, 0.0);
  for (int64_t nc = 0; nc < static_cast<int64_t>(d.N) * d.C; nc++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        double g = dy[(nc * OH + oh) * OW + ow] / avg_divisor(d, oh, ow);
        for (int r = 0; r < KH; r++)
          for (int q = 0; q < KW; q++) {
            int ih = oh * d.stride - d.pad + r, iw = ow * d.stride - d.pad + q;
            if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
            dx[(nc * d.H + ih) * d.W + iw] += g;
          }
      }
}

}  // namespace sln::ref
