// Batched augmentation on the CPU (conventions in sln/augment.h), OpenMP over
// images. All scratch memory is allocated before the parallel region, so
// nothing inside it can throw.
#include "sln/augment.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu.h"
#include "sln/errors.h"

namespace sln {

namespace {

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
void precompute_coeffs(int in_size, double in0, double in1, int out_size, int ksize, int* start,
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

inline float clamp01(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }

inline float gray_of(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }

// torchvision's _rgb2hsv / _hsv2rgb (tensor path), one pixel.
inline void adjust_hue_px(float& r, float& g, float& b, float hue) {
  const float maxc = std::max(r, std::max(g, b));
  const float minc = std::min(r, std::min(g, b));
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
  float fi = std::floor(h * 6.f);
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

struct Scratch {
  std::vector<int> xs, xc, ys, yc;  // tap starts and counts
  std::vector<float> xw, yw;        // tap weights
  std::vector<float> tmp;           // (rows, out_w, C) horizontal pass
  std::vector<float> img;           // (out_h, out_w, 3) working image
};

// Resample one image into img (out_h, out_w, C) in [0, 255] (not yet /255).
void resample(const uint8_t* data, int H, int W, int C, int px_stride, PixelLayout layout,
              const double box[4], int out_h, int out_w, Scratch& s, float* img) {
  const int kx = kernel_size((box[2] - box[0]) / out_w);
  const int ky = kernel_size((box[3] - box[1]) / out_h);
  precompute_coeffs(W, box[0], box[2], out_w, kx, s.xs.data(), s.xc.data(), s.xw.data());
  precompute_coeffs(H, box[1], box[3], out_h, ky, s.ys.data(), s.yc.data(), s.yw.data());
  int y_begin = H, y_end = 0;
  for (int o = 0; o < out_h; o++) {
    if (s.yc[o] == 0) continue;
    y_begin = std::min(y_begin, s.ys[o]);
    y_end = std::max(y_end, s.ys[o] + s.yc[o]);
  }
  if (y_end < y_begin) y_end = y_begin;
  float* tmp = s.tmp.data();  // (y_end - y_begin, out_w, C)
  const size_t plane = static_cast<size_t>(H) * W;
  for (int y = y_begin; y < y_end; y++) {
    float* trow = tmp + static_cast<size_t>(y - y_begin) * out_w * C;
    for (int o = 0; o < out_w; o++) {
      const float* w = s.xw.data() + static_cast<size_t>(o) * kx;
      const int x0 = s.xs[o], n = s.xc[o];
      if (layout == PixelLayout::HWC && C == 3) {  // the common case: three accumulators, one pass over the taps
        const uint8_t* p = data + (static_cast<size_t>(y) * W + x0) * px_stride;
        float a0 = 0.f, a1 = 0.f, a2 = 0.f;
        for (int k = 0; k < n; k++, p += px_stride) {
          a0 += w[k] * p[0];
          a1 += w[k] * p[1];
          a2 += w[k] * p[2];
        }
        trow[o * 3] = a0;
        trow[o * 3 + 1] = a1;
        trow[o * 3 + 2] = a2;
        continue;
      }
      for (int c = 0; c < C; c++) {
        float acc = 0.f;
        if (layout == PixelLayout::HWC) {
          const uint8_t* p = data + (static_cast<size_t>(y) * W + x0) * px_stride + c;
          for (int k = 0; k < n; k++) acc += w[k] * p[static_cast<size_t>(k) * px_stride];
        } else {
          const uint8_t* p = data + c * plane + static_cast<size_t>(y) * W + x0;
          for (int k = 0; k < n; k++) acc += w[k] * p[k];
        }
        trow[o * C + c] = acc;
      }
    }
  }
  const size_t row = static_cast<size_t>(out_w) * C;
  for (int o = 0; o < out_h; o++) {
    float* dst = img + static_cast<size_t>(o) * row;
    std::fill(dst, dst + row, 0.f);
    const float* w = s.yw.data() + static_cast<size_t>(o) * ky;
    for (int k = 0; k < s.yc[o]; k++) {
      const float* src = tmp + static_cast<size_t>(s.ys[o] + k - y_begin) * row;
      const float wk = w[k];
      for (size_t j = 0; j < row; j++) dst[j] += wk * src[j];
    }
  }
}

void size_scratch(Scratch& s, int H, int out_h, int out_w, int C, int kx, int ky) {
  s.xs.resize(out_w); s.xc.resize(out_w); s.xw.resize(static_cast<size_t>(out_w) * kx);
  s.ys.resize(out_h); s.yc.resize(out_h); s.yw.resize(static_cast<size_t>(out_h) * ky);
  s.tmp.resize(static_cast<size_t>(H) * out_w * C);
  s.img.resize(static_cast<size_t>(out_h) * out_w * 3);
}

}  // namespace

void validate_augment(const AugmentBatchDesc& d, const AugmentImage* images, const AugmentParams* params) {
  SLN_CHECK_ARG(d.n >= 0, "augment: n must be >= 0, got " << d.n);
  SLN_CHECK_ARG(d.in_channels == 1 || d.in_channels == 3, "augment: in_channels must be 1 or 3, got " << d.in_channels);
  SLN_CHECK_ARG(d.out_channels == d.in_channels || (d.in_channels == 1 && d.out_channels == 3),
                "augment: out_channels " << d.out_channels << " from in_channels " << d.in_channels
                                         << " (allowed: equal, or 1 -> 3)");
  SLN_CHECK_ARG(d.out_h >= 1 && d.out_w >= 1 && d.out_h <= 8192 && d.out_w <= 8192,
                "augment: output size " << d.out_h << "x" << d.out_w << " out of range [1, 8192]");
  for (int c = 0; c < d.out_channels; c++)
    SLN_CHECK_ARG(std::isfinite(d.mean[c]) && std::isfinite(d.std[c]) && d.std[c] > 0,
                  "augment: mean/std[" << c << "] = " << d.mean[c] << "/" << d.std[c] << " (std must be > 0)");
  for (int i = 0; i < d.n; i++) {
    const AugmentImage& im = images[i];
    const AugmentParams& p = params[i];
    SLN_CHECK_ARG(im.data != nullptr && im.height >= 1 && im.width >= 1,
                  "augment: image " << i << " has size " << im.height << "x" << im.width);
    const double* b = p.box;
    SLN_CHECK_ARG(std::isfinite(b[0]) && std::isfinite(b[1]) && std::isfinite(b[2]) && std::isfinite(b[3]) &&
                      b[0] >= 0 && b[1] >= 0 && b[2] <= im.width && b[3] <= im.height && b[0] < b[2] &&
                      b[1] < b[3],
                  "augment: image " << i << " box (" << b[0] << ", " << b[1] << ", " << b[2] << ", " << b[3]
                                    << ") is not inside its " << im.width << "x" << im.height
                                    << " image (need 0 <= x0 < x1 <= W, 0 <= y0 < y1 <= H)");
    bool seen[4] = {false, false, false, false};
    for (int k = 0; k < 4; k++) {
      SLN_CHECK_ARG(p.order[k] < 4 && !seen[p.order[k]], "augment: image " << i << " order is not a permutation of 0..3");
      seen[p.order[k]] = true;
    }
    const float* f = p.factors;
    SLN_CHECK_ARG(std::isfinite(f[0]) && std::isfinite(f[1]) && std::isfinite(f[2]) && std::isfinite(f[3]) &&
                      f[0] >= 0 && f[1] >= 0 && f[2] >= 0 && f[3] >= -0.5f && f[3] <= 0.5f,
                  "augment: image " << i << " jitter factors (" << f[0] << ", " << f[1] << ", " << f[2] << ", "
                                    << f[3] << ") out of range (b, c, s >= 0; hue in [-0.5, 0.5])");
  }
}

void augment_batch(const AugmentBatchDesc& d, const AugmentImage* images, const AugmentParams* params,
                   float* out) {
  validate_augment(d, images, params);
  if (d.n == 0) return;
  const int C = d.in_channels, OC = d.out_channels, OH = d.out_h, OW = d.out_w;
  int maxH = 1, kx = 1, ky = 1;
  for (int i = 0; i < d.n; i++) {
    maxH = std::max(maxH, images[i].height);
    kx = std::max(kx, kernel_size((params[i].box[2] - params[i].box[0]) / OW));
    ky = std::max(ky, kernel_size((params[i].box[3] - params[i].box[1]) / OH));
  }
  int nthreads = d.threads > 0 ? d.threads : cpu::threads();
  nthreads = std::max(1, std::min(nthreads, d.n));
  std::vector<Scratch> scratch(nthreads);
  for (auto& s : scratch) size_scratch(s, maxH, OH, OW, C, kx, ky);
  const size_t npx = static_cast<size_t>(OH) * OW;

#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
  for (int i = 0; i < d.n; i++) {
    Scratch& s = scratch[omp_get_thread_num()];
    const AugmentImage& im = images[i];
    const AugmentParams& p = params[i];
    float* img = s.img.data();  // (OH, OW, WC) in [0, 1]
    resample(im.data, im.height, im.width, C, C, d.layout, p.box, OH, OW, s, img);
    int WC = C;
    if (C == 1 && OC == 3) {  // replicate, back to front so it can be in place
      for (size_t j = npx; j-- > 0;) img[3 * j] = img[3 * j + 1] = img[3 * j + 2] = img[j];
      WC = 3;
    }
    const float inv255 = 1.f / 255.f;
    for (size_t j = 0; j < npx * WC; j++) img[j] *= inv255;
    if (p.gray && WC == 3) {
      for (size_t j = 0; j < npx; j++) {
        float* q = img + 3 * j;
        q[0] = q[1] = q[2] = gray_of(q[0], q[1], q[2]);
      }
    }
    for (int k = 0; k < 4; k++) {
      const int op = p.order[k];
      const float f = p.factors[op];
      if (op == 0 && f != 1.f) {
        for (size_t j = 0; j < npx * WC; j++) img[j] = clamp01(f * img[j]);
      } else if (op == 1 && f != 1.f) {
        double sum = 0;
        if (WC == 3) {
          for (size_t j = 0; j < npx; j++) sum += gray_of(img[3 * j], img[3 * j + 1], img[3 * j + 2]);
        } else {
          for (size_t j = 0; j < npx; j++) sum += img[j];
        }
        const float m = static_cast<float>(sum / npx);
        for (size_t j = 0; j < npx * WC; j++) img[j] = clamp01(f * img[j] + (1.f - f) * m);
      } else if (op == 2 && f != 1.f && WC == 3) {
        for (size_t j = 0; j < npx; j++) {
          float* q = img + 3 * j;
          const float g = gray_of(q[0], q[1], q[2]);
          for (int c = 0; c < 3; c++) q[c] = clamp01(f * q[c] + (1.f - f) * g);
        }
      } else if (op == 3 && f != 0.f && WC == 3) {
        for (size_t j = 0; j < npx; j++) adjust_hue_px(img[3 * j], img[3 * j + 1], img[3 * j + 2], f);
      }
    }
    float* o = out + static_cast<size_t>(i) * OC * npx;  // (OC, OH, OW)
    for (int c = 0; c < OC; c++) {
      const float mean = d.mean[c], inv_std = 1.f / d.std[c];
      float* oc = o + c * npx;
      for (int y = 0; y < OH; y++) {
        const float* src = img + static_cast<size_t>(y) * OW * WC + c;
        float* dst = oc + static_cast<size_t>(y) * OW;
        if (p.flip) {
          for (int x = 0; x < OW; x++) dst[OW - 1 - x] = (src[x * WC] - mean) * inv_std;
        } else {
          for (int x = 0; x < OW; x++) dst[x] = (src[x * WC] - mean) * inv_std;
        }
      }
    }
  }
}

void resize_u8(const uint8_t* src, int h, int w, int src_stride, int channels, uint8_t* dst, int out_h,
               int out_w) {
  SLN_CHECK_ARG(h >= 1 && w >= 1 && out_h >= 1 && out_w >= 1,
                "resize: sizes " << h << "x" << w << " -> " << out_h << "x" << out_w << " must be >= 1");
  SLN_CHECK_ARG(channels >= 1 && channels <= 4 && src_stride >= channels,
                "resize: channels " << channels << " with stride " << src_stride);
  const double box[4] = {0, 0, static_cast<double>(w), static_cast<double>(h)};
  const int kx = kernel_size(static_cast<double>(w) / out_w), ky = kernel_size(static_cast<double>(h) / out_h);
  Scratch s;
  size_scratch(s, h, out_h, out_w, channels, kx, ky);
  std::vector<float> img(static_cast<size_t>(out_h) * out_w * channels);
  resample(src, h, w, channels, src_stride, PixelLayout::HWC, box, out_h, out_w, s, img.data());
  for (size_t j = 0; j < img.size(); j++) {
    const float v = std::nearbyint(img[j]);
    dst[j] = static_cast<uint8_t>(v < 0.f ? 0.f : (v > 255.f ? 255.f : v));
  }
}

}  // namespace sln
