// Downsampling of a trunk activation for the linear probes (lib/eval/probe.ts):
// the reference's probes (yukimasano/self-label eval_linear_probes.py) reduce
// every conv tap to ~9-10k dimensions with nn.MaxPool2d(k, stride, padding)
// before the linear classifier; DeepCluster's eval_linear.py uses AvgPool2d.
// Semantics are PyTorch's (ceil_mode=False):
//   max / avg: out = floor((H + 2 pad - k) / stride) + 1 per axis; max ignores
//     the padding, avg counts it (count_include_pad=True): divisor k*k.
//   adaptive-max / adaptive-avg (AdaptiveMaxPool2d / AdaptiveAvgPool2d): output
//     cell i covers [floor(i H / out), ceil((i + 1) H / out)).
//   none: a copy.
// Output layout (N, C, outH, outW), i.e. the flattening nn.Linear would see.
#pragma once
#include <string>

#include "sln/model.h"

namespace sln::probe {

struct PoolSpec {
  std::string kind = "none";  // none | max | avg | adaptive-max | adaptive-avg
  int kernel = 1, stride = 1, pad = 0;  // max / avg
  int out_h = 1, out_w = 1;             // adaptive-*
};

// Output shape; throws sln::Error (InvalidArgument) on a bad spec for `in`.
Shape3 pooled_shape(const Shape3& in, const PoolSpec& s);

// x (N, in) -> y (N, pooled_shape(in, s)).
void pool(const float* x, int N, const Shape3& in, const PoolSpec& s, float* y, int threads);

}  // namespace sln::probe
