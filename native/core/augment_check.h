// The argument checks of sln::validate_augment, header-only so that
// libselflabel_cuda.so (sln_cuda_augment) runs the very same checks without a
// link dependency on the addon. Throws sln::Error (SLN_INVALID_ARGUMENT);
// checks everything before anything touches the output.
#pragma once
#include <cmath>

#include "sln/augment.h"
#include "sln/errors.h"

namespace sln {

inline void check_augment(const AugmentBatchDesc& d, const AugmentImage* images, const AugmentParams* params) {
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

}  // namespace sln
