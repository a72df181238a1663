// Probe downsampling (see probe_pool.h).
#include "core/probe_pool.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "sln/errors.h"

namespace sln::probe {

namespace {

bool adaptive(const PoolSpec& s) { return s.kind == "adaptive-max" || s.kind == "adaptive-avg"; }
bool is_max(const PoolSpec& s) { return s.kind == "max" || s.kind == "adaptive-max"; }

// Window [begin, end) of every output cell along one axis of length n.
void windows(const PoolSpec& s, int n, int out, std::vector<int>& b, std::vector<int>& e) {
  b.resize(out);
  e.resize(out);
  for (int i = 0; i < out; i++) {
    if (adaptive(s)) {
      b[i] = static_cast<int>((static_cast<long long>(i) * n) / out);
      e[i] = static_cast<int>((static_cast<long long>(i + 1) * n + out - 1) / out);
    } else {
      b[i] = i * s.stride - s.pad;   // may start in the padding
      e[i] = b[i] + s.kernel;
    }
  }
}

}  // namespace

Shape3 pooled_shape(const Shape3& in, const PoolSpec& s) {
  if (s.kind == "none") return in;
  if (adaptive(s)) {
    SLN_CHECK_ARG(s.out_h >= 1 && s.out_w >= 1 && s.out_h <= in.H && s.out_w <= in.W,
                  "probe pool: " << s.kind << " output " << s.out_h << "x" << s.out_w << " must lie in 1x1.."
                                 << in.H << "x" << in.W);
    return {in.C, s.out_h, s.out_w};
  }
  SLN_CHECK_ARG(s.kind == "max" || s.kind == "avg",
                "probe pool: kind must be none, max, avg, adaptive-max or adaptive-avg, got '" << s.kind << "'");
  SLN_CHECK_ARG(s.kernel >= 1 && s.stride >= 1 && s.pad >= 0 && 2 * s.pad <= s.kernel,
                "probe pool: kernel " << s.kernel << ", stride " << s.stride << ", pad " << s.pad
                                      << " (PyTorch needs kernel, stride >= 1 and pad <= kernel / 2)");
  const int oh = (in.H + 2 * s.pad - s.kernel) / s.stride + 1, ow = (in.W + 2 * s.pad - s.kernel) / s.stride + 1;
  SLN_CHECK_ARG(in.H + 2 * s.pad >= s.kernel && in.W + 2 * s.pad >= s.kernel,
                "probe pool: kernel " << s.kernel << " larger than the padded " << in.H << "x" << in.W << " map");
  return {in.C, oh, ow};
}

void pool(const float* x, int N, const Shape3& in, const PoolSpec& s, float* y, int threads) {
  const Shape3 out = pooled_shape(in, s);
  if (s.kind == "none") {
    std::memcpy(y, x, sizeof(float) * in.size() * static_cast<size_t>(N));
    return;
  }
  std::vector<int> hb, he, wb, we;
  windows(s, in.H, out.H, hb, he);
  windows(s, in.W, out.W, wb, we);
  const bool mx = is_max(s);
  const bool include_pad = !adaptive(s);   // avg: count_include_pad=True
  const long planes = static_cast<long>(N) * in.C;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (long pl = 0; pl < planes; pl++) {
    const float* src = x + static_cast<size_t>(pl) * in.H * in.W;
    float* dst = y + static_cast<size_t>(pl) * out.H * out.W;
    for (int i = 0; i < out.H; i++) {
      const int h0 = std::max(hb[i], 0), h1 = std::min(he[i], in.H);
      for (int j = 0; j < out.W; j++) {
        const int w0 = std::max(wb[j], 0), w1 = std::min(we[j], in.W);
        if (mx) {
          float m = -std::numeric_limits<float>::infinity();
          for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) m = std::max(m, src[h * in.W + w]);
          dst[i * out.W + j] = m;
        } else {
          double acc = 0;
          for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) acc += src[h * in.W + w];
          const int count = include_pad ? (he[i] - hb[i]) * (we[j] - wb[j]) : (h1 - h0) * (w1 - w0);
          dst[i * out.W + j] = static_cast<float>(acc / count);
        }
      }
    }
  }
}

}  // namespace sln::probe
