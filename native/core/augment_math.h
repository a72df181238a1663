// Augmentation arithmetic shared by the CPU (native/cpu/augment.cpp) and the
// GPU (native/cuda/augment.cu) implementations of sln/augment.h, so both run the
// same formulas in the same operation order:
//   - PIL's resample coefficients (host only: the GPU path computes them on the
//     host with this function and uploads them, so its taps and weights are the
//     CPU's bit for bit);
//   - the per-pixel colour math (SLN_HD: called from CPU loops and CUDA kernels).
// No std:: calls in the SLN_HD functions (device code cannot call them);
// max/min are written as std::max/std::min are defined, so results are equal.
#pragma once
#include <cmath>

#include "core/hd.h"

namespace sln::augment_math {

// PIL's bilinear filter (Resample.c: bilinear_filter), support 1.
inline double triangle(double x) {
  if (x < 0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Number of taps PIL allocates for a given scale: ceil(support) * 2 + 1.
inline int kernel_size(double scale) {
  double filterscale = scale < 1.0 ? 1.0 : scale;
  return static_cast<int>(std::ceil(filterscale)) * 2 + 1;
}

// PIL's precompute_coeffs for one axis: for output index o, taps start[o] ..
// start[o] + count[o] - 1 with weights w[o * ksize + k] (sum 1).
inline void precompute_coeffs(int in_size, double in0, double in1, int out_size, int ksize, int* start,
                              int* count, float* w) {
  const double scale = (in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;
  const double ss = 1.0 / filterscale;
  for (int o = 0; o < out_size; o++) {
    const double center = in0 + (o + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as PIL's (int) cast
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    if (xmax > ksize) xmax = ksize;
    if (xmax < 0) xmax = 0;
    float* k = w + static_cast<size_t>(o) * ksize;
    double total = 0;  // weights computed in double, stored as float
    for (int x = 0; x < xmax; x++) total += triangle((x + xmin - center + 0.5) * ss);
    for (int x = 0; x < xmax; x++) {
      const double kx = triangle((x + xmin - center + 0.5) * ss);
      k[x] = static_cast<float>(total != 0 ? kx / total : 0.0);
    }
    start[o] = xmin;
    count[o] = xmax;
  }
}

SLN_HD inline float fmax_std(float a, float b) { return (a < b) ? b : a; }  // std::max(a, b)
SLN_HD inline float fmin_std(float a, float b) { return (b < a) ? b : a; }  // std::min(a, b)

SLN_HD inline float clamp01(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }

// PIL's convert("L") weights.
SLN_HD inline float gray_of(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }

// torchvision's _rgb2hsv / _hsv2rgb (tensor path), one pixel.
SLN_HD inline void adjust_hue_px(float& r, float& g, float& b, float hue) {
  const float maxc = fmax_std(r, fmax_std(g, b));
  const float minc = fmin_std(r, fmin_std(g, b));
  const bool eqc = maxc == minc;
  const float cr = maxc - minc;
  const float s = cr / (eqc ? 1.f : maxc);
  const float div = eqc ? 1.f : cr;
  const float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
  float h;
  if (maxc == r) h = bc - gc;
  else if (maxc == g) h = 2.f + rc - bc;
  else h = 4.f + gc - rc;
  // h / 6 is in [-1/6, 1): "(h / 6 + 1) mod 1" is one conditional add
  h = h / 6.f;
  if (h < 0.f) h += 1.f;
  const float v = maxc;
  // adjust_hue: (h + hue) mod 1 with Python's sign convention; h + hue is in [-0.5, 1.5)
  h += hue;
  if (h < 0.f) h += 1.f;
  else if (h >= 1.f) h -= 1.f;
  if (h >= 1.f || h < 0.f) h = 0.f;  // rounding at the boundary (h + 1 == 1 in float)
  float fi = floorf(h * 6.f);
  const float f = h * 6.f - fi;
  int i = static_cast<int>(fi) % 6;
  if (i < 0) i += 6;
  const float p = clamp01(v * (1.f - s));
  const float q = clamp01(v * (1.f - s * f));
  const float t = clamp01(v * (1.f - s * (1.f - f)));
  switch (i) {
    case 0: r = v; g = t; b = p; break;
    case 1: r = q; g = v; b = p; break;
    case 2: r = p; g = v; b = t; break;
    case 3: r = p; g = q; b = v; break;
    case 4: r = t; g = p; b = v; break;
    default: r = v; g = p; b = q; break;
  }
}

}  // namespace sln::augment_math
