// Batched augmentation on the GPU (sln_cuda_augment): the contract and the
// order of operations of sln/augment.h, the arithmetic of the CPU path
// (native/cpu/augment.cpp) through the shared core/augment_math.h.
//
// Per call:
//   host  check_augment (the CPU's validation, header-only); the resample taps
//         and weights of every image with the CPU's precompute_coeffs (so they
//         are the CPU's bit for bit); one blob = [image meta | taps | weights |
//         pixels] packed into pinned staging memory and uploaded with ONE copy.
//   A     resample_kernel, one thread per output pixel: the separable PIL
//         filter in the CPU's order (horizontal sums per source row, then the
//         vertical sum of those, both in tap order, float), / 255, 1 -> 3
//         replicate, grayscale; written to out at the (possibly flipped) x. The
//         flip commutes with everything after it (per-pixel maps and a mean
//         over the whole image), so it is applied here.
//   B     jitter_normalize_kernel, one block per image: the jitter ops in the
//         image's order (contrast's mean as a block reduction in double), then
//         (x - mean[c]) / std[c].
// This file is compiled with --fmad=false (CMakeLists.txt) so that, like the
// CPU build, no product is fused into an FMA: each operation rounds as on the
// CPU. What can still differ from the CPU: the order of the double sum in the
// contrast mean (a last-bit difference in double, almost never visible after
// the float cast).
//
// Streams: everything is queued on the backend's stream; the staging memory is
// reused by the next call only after an event says its upload has finished.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/augment_check.h"
#include "core/augment_math.h"
#include "cuda/common.h"

namespace sln::cuda {

using namespace augment_math;

struct AugmentState {
  void* staging = nullptr;   // pinned host memory
  size_t staging_bytes = 0;
  cudaEvent_t uploaded = nullptr;   // recorded after the blob's upload
  bool pending = false;
  Buffer blob;                      // device copy of the blob
};

void AugmentStateDelete::operator()(AugmentState* s) const noexcept {
  if (!s) return;
  if (s->uploaded) {
    cudaEventSynchronize(s->uploaded);
    cudaEventDestroy(s->uploaded);
  }
  if (s->staging) cudaFreeHost(s->staging);
  s->blob.reset();
  delete s;
}

AugmentState& CudaBackend::augment_state() {
  if (!augment_) {
    augment_.reset(new AugmentState());
    SLN_CU(cudaEventCreateWithFlags(&augment_->uploaded, cudaEventDisableTiming), "augment (cuda) setup");
  }
  return *augment_;
}

namespace {

struct ImgMeta {
  unsigned long long src;   // byte offset of the image in the pixel section
  int H, W;
  int flip, gray;
  float f[4];               // brightness, contrast, saturation, hue
  int order[4];
};

struct Blob {
  const ImgMeta* meta;   // (n)
  const int* xs;         // (n, OW) first tap
  const int* xc;         // (n, OW) tap count
  const int* ys;         // (n, OH)
  const int* yc;         // (n, OH)
  const float* xw;       // (n, OW, kxm) weights
  const float* yw;       // (n, OH, kym)
  const uint8_t* px;     // pixels, image i at meta[i].src
};

__global__ void resample_kernel(Blob b, int C, int OC, int chw, int OH, int OW, int kxm, int kym, float* out) {
  const int i = blockIdx.y;
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= OH * OW) return;
  const int oy = j / OW, ox = j - oy * OW;
  const ImgMeta m = b.meta[i];
  const uint8_t* src = b.px + m.src;
  const size_t plane = static_cast<size_t>(m.H) * m.W;
  const int x0 = b.xs[static_cast<size_t>(i) * OW + ox], xn = b.xc[static_cast<size_t>(i) * OW + ox];
  const int y0 = b.ys[static_cast<size_t>(i) * OH + oy], yn = b.yc[static_cast<size_t>(i) * OH + oy];
  const float* wx = b.xw + (static_cast<size_t>(i) * OW + ox) * kxm;
  const float* wy = b.yw + (static_cast<size_t>(i) * OH + oy) * kym;
  float v[3] = {0.f, 0.f, 0.f};
  for (int c = 0; c < C; c++) {
    float acc = 0.f;
    for (int k = 0; k < yn; k++) {
      const int y = y0 + k;
      float t = 0.f;
      if (chw) {
        const uint8_t* p = src + c * plane + static_cast<size_t>(y) * m.W + x0;
        for (int q = 0; q < xn; q++) t += wx[q] * p[q];
      } else {
        const uint8_t* p = src + (static_cast<size_t>(y) * m.W + x0) * C + c;
        for (int q = 0; q < xn; q++) t += wx[q] * p[static_cast<size_t>(q) * C];
      }
      acc += wy[k] * t;
    }
    v[c] = acc;
  }
  if (C == 1 && OC == 3) v[1] = v[2] = v[0];
  const float inv255 = 1.f / 255.f;
  for (int c = 0; c < OC; c++) v[c] *= inv255;
  if (m.gray && OC == 3) v[0] = v[1] = v[2] = gray_of(v[0], v[1], v[2]);
  const int xo = m.flip ? OW - 1 - ox : ox;
  const size_t npx = static_cast<size_t>(OH) * OW;
  float* o = out + static_cast<size_t>(i) * OC * npx + static_cast<size_t>(oy) * OW + xo;
  for (int c = 0; c < OC; c++) o[c * npx] = v[c];
}

constexpr int kJitterThreads = 256;

struct Norm {
  float mean[3], inv_std[3];
};

__global__ void jitter_normalize_kernel(const ImgMeta* metas, int OC, int npx, Norm nm, float* out) {
  __shared__ double red[kJitterThreads];
  const int i = blockIdx.x, t = threadIdx.x;
  const ImgMeta m = metas[i];
  float* img = out + static_cast<size_t>(i) * OC * npx;   // (OC, npx)
  float* r = img;
  float* g = OC == 3 ? img + npx : img;
  float* bl = OC == 3 ? img + 2 * npx : img;
  for (int k = 0; k < 4; k++) {
    const int op = m.order[k];
    const float f = m.f[op];
    if (op == 0 && f != 1.f) {
      for (int j = t; j < npx; j += kJitterThreads)
        for (int c = 0; c < OC; c++) img[c * npx + j] = clamp01(f * img[c * npx + j]);
    } else if (op == 1 && f != 1.f) {
      double s = 0;
      for (int j = t; j < npx; j += kJitterThreads) s += OC == 3 ? gray_of(r[j], g[j], bl[j]) : img[j];
      red[t] = s;
      __syncthreads();
      for (int o = kJitterThreads / 2; o > 0; o >>= 1) {
        if (t < o) red[t] += red[t + o];
        __syncthreads();
      }
      const float mean = static_cast<float>(red[0] / npx);
      __syncthreads();   // everyone has read red[0] before it is reused
      for (int j = t; j < npx; j += kJitterThreads)
        for (int c = 0; c < OC; c++) img[c * npx + j] = clamp01(f * img[c * npx + j] + (1.f - f) * mean);
    } else if (op == 2 && f != 1.f && OC == 3) {
      for (int j = t; j < npx; j += kJitterThreads) {
        const float gr = gray_of(r[j], g[j], bl[j]);
        r[j] = clamp01(f * r[j] + (1.f - f) * gr);
        g[j] = clamp01(f * g[j] + (1.f - f) * gr);
        bl[j] = clamp01(f * bl[j] + (1.f - f) * gr);
      }
    } else if (op == 3 && f != 0.f && OC == 3) {
      for (int j = t; j < npx; j += kJitterThreads) {
        float a = r[j], b2 = g[j], c2 = bl[j];
        adjust_hue_px(a, b2, c2, f);
        r[j] = a;
        g[j] = b2;
        bl[j] = c2;
      }
    }
  }
  for (int j = t; j < npx; j += kJitterThreads)
    for (int c = 0; c < OC; c++) img[c * npx + j] = (img[c * npx + j] - nm.mean[c]) * nm.inv_std[c];
}

size_t align256(size_t x) { return (x + 255) / 256 * 256; }

}  // namespace

void augment_batch(CudaBackend& be, const AugmentBatchDesc& d, const AugmentImage* images, const AugmentParams* params,
                   float* out_device) {
  check_augment(d, images, params);
  if (d.n == 0) return;
  const int n = d.n, C = d.in_channels, OC = d.out_channels, OH = d.out_h, OW = d.out_w;
  SLN_CHECK_ARG(n <= 65535, "augment (cuda): at most 65535 images per call, got " << n);
  SLN_CHECK_ARG(static_cast<long long>(OH) * OW <= (1ll << 30), "augment (cuda): output " << OH << "x" << OW << " too large");
  auto lk = be.enter();

  std::vector<int> kx(n), ky(n);
  int kxm = 1, kym = 1;
  size_t px_bytes = 0;
  for (int i = 0; i < n; i++) {
    kx[i] = kernel_size((params[i].box[2] - params[i].box[0]) / OW);
    ky[i] = kernel_size((params[i].box[3] - params[i].box[1]) / OH);
    kxm = std::max(kxm, kx[i]);
    kym = std::max(kym, ky[i]);
    px_bytes += static_cast<size_t>(images[i].height) * images[i].width * C;
  }
  // blob sections
  const size_t o_meta = 0;
  const size_t o_xs = align256(o_meta + n * sizeof(ImgMeta));
  const size_t o_xc = align256(o_xs + static_cast<size_t>(n) * OW * sizeof(int));
  const size_t o_ys = align256(o_xc + static_cast<size_t>(n) * OW * sizeof(int));
  const size_t o_yc = align256(o_ys + static_cast<size_t>(n) * OH * sizeof(int));
  const size_t o_xw = align256(o_yc + static_cast<size_t>(n) * OH * sizeof(int));
  const size_t o_yw = align256(o_xw + static_cast<size_t>(n) * OW * kxm * sizeof(float));
  const size_t o_px = align256(o_yw + static_cast<size_t>(n) * OH * kym * sizeof(float));
  const size_t total = o_px + px_bytes;

  AugmentState& st = be.augment_state();
  const char* ctx = "augment (cuda)";
  if (st.pending) {   // the previous call's upload still reads the staging memory
    SLN_CU(cudaEventSynchronize(st.uploaded), ctx);
    st.pending = false;
  }
  if (st.staging_bytes < total) {
    if (st.staging) cudaFreeHost(st.staging);
    st.staging = nullptr;
    st.staging_bytes = 0;
    const size_t want = total + total / 4;
    SLN_CU(cudaHostAlloc(&st.staging, want, cudaHostAllocDefault), ctx << ": pinned staging of " << want << " bytes");
    st.staging_bytes = want;
  }
  uint8_t* h = static_cast<uint8_t*>(st.staging);
  auto* meta = reinterpret_cast<ImgMeta*>(h + o_meta);
  int* xs = reinterpret_cast<int*>(h + o_xs);
  int* xc = reinterpret_cast<int*>(h + o_xc);
  int* ys = reinterpret_cast<int*>(h + o_ys);
  int* yc = reinterpret_cast<int*>(h + o_yc);
  float* xw = reinterpret_cast<float*>(h + o_xw);
  float* yw = reinterpret_cast<float*>(h + o_yw);
  std::vector<float> tw(static_cast<size_t>(std::max(OW * kxm, OH * kym)));
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    const AugmentImage& im = images[i];
    const AugmentParams& p = params[i];
    precompute_coeffs(im.width, p.box[0], p.box[2], OW, kx[i], xs + static_cast<size_t>(i) * OW,
                      xc + static_cast<size_t>(i) * OW, tw.data());
    for (int o = 0; o < OW; o++)
      std::memcpy(xw + (static_cast<size_t>(i) * OW + o) * kxm, tw.data() + static_cast<size_t>(o) * kx[i],
                  sizeof(float) * kx[i]);
    precompute_coeffs(im.height, p.box[1], p.box[3], OH, ky[i], ys + static_cast<size_t>(i) * OH,
                      yc + static_cast<size_t>(i) * OH, tw.data());
    for (int o = 0; o < OH; o++)
      std::memcpy(yw + (static_cast<size_t>(i) * OH + o) * kym, tw.data() + static_cast<size_t>(o) * ky[i],
                  sizeof(float) * ky[i]);
    ImgMeta& m = meta[i];
    m.src = off;
    m.H = im.height;
    m.W = im.width;
    m.flip = p.flip ? 1 : 0;
    m.gray = p.gray ? 1 : 0;
    for (int k = 0; k < 4; k++) {
      m.f[k] = p.factors[k];
      m.order[k] = p.order[k];
    }
    const size_t bytes = static_cast<size_t>(im.height) * im.width * C;
    std::memcpy(h + o_px + off, im.data, bytes);
    off += bytes;
  }

  uint8_t* dev = static_cast<uint8_t*>(st.blob.reserve(be, total));
  SLN_CU(cudaMemcpyAsync(dev, h, total, cudaMemcpyHostToDevice, be.stream()), ctx << ": upload of " << total << " bytes");
  SLN_CU(cudaEventRecord(st.uploaded, be.stream()), ctx);
  st.pending = true;

  Blob b;
  b.meta = reinterpret_cast<const ImgMeta*>(dev + o_meta);
  b.xs = reinterpret_cast<const int*>(dev + o_xs);
  b.xc = reinterpret_cast<const int*>(dev + o_xc);
  b.ys = reinterpret_cast<const int*>(dev + o_ys);
  b.yc = reinterpret_cast<const int*>(dev + o_yc);
  b.xw = reinterpret_cast<const float*>(dev + o_xw);
  b.yw = reinterpret_cast<const float*>(dev + o_yw);
  b.px = dev + o_px;
  const int npx = OH * OW;
  dim3 grid((npx + 255) / 256, n);
  resample_kernel<<<grid, 256, 0, be.stream()>>>(b, C, OC, d.layout == PixelLayout::CHW ? 1 : 0, OH, OW, kxm, kym,
                                                 out_device);
  SLN_CU_LAUNCHED(ctx << " resample, n = " << n << ", out " << OC << "x" << OH << "x" << OW);
  Norm nm;
  for (int c = 0; c < 3; c++) {
    nm.mean[c] = c < OC ? d.mean[c] : 0.f;
    nm.inv_std[c] = c < OC ? 1.f / d.std[c] : 1.f;
  }
  jitter_normalize_kernel<<<n, kJitterThreads, 0, be.stream()>>>(b.meta, OC, npx, nm, out_device);
  SLN_CU_LAUNCHED(ctx << " jitter/normalize, n = " << n << ", out " << OC << "x" << OH << "x" << OW);
}

}  // namespace sln::cuda
