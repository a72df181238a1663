// Batched augmentation on the CPU (conventions in sln/augment.h), OpenMP over
// images. All scratch memory is allocated before the parallel region, so
// nothing inside it can throw. The formulas live in core/augment_math.h, shared
// with the CUDA kernel (native/cuda/augment.cu).
#include "sln/augment.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/augment_check.h"
#include "core/augment_math.h"
#include "cpu/cpu.h"
#include "sln/errors.h"

namespace sln {

namespace {

using namespace augment_math;  // triangle, kernel_size, precompute_coeffs, clamp01, gray_of, adjust_hue_px

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
  check_augment(d, images, params);  // core/augment_check.h, shared with the CUDA library
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
