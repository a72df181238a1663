// The Model's private parts shared by its implementation files (core/model.cpp,
// core/label_state.cpp): the heads and the per-batch-size plans.
#pragma once
#include <vector>

#include "core/layers.h"
#include "sln/model.h"

namespace sln {

struct Model::Head {
  std::string name;
  int K = 0;
  size_t w = 0, b = 0;
  OpCache<LinearOp> ops;
  LinearOp& op(RunCtx& c, int D) {
    return ops.get(c.N, [&] {
      LinearDesc d;
      d.N = c.N; d.in = D; d.out = K; d.bias = true;
      return c.backend->linear(d);
    });
  }
};

// Activations of one batch size and mode, in the backend's memory. Training
// keeps every layer's output for backward; eval only ping-pongs between two
// buffers. On a backend whose memory is not host memory the batch's images and
// labels are uploaded into `images` / `labels` (on the CPU they are used in place).
struct Model::Plan {
  int N = 0;
  bool training = false;
  std::vector<Buffer> acts;                    // training: one per trunk layer (N, out_i)
  Buffer ping, pong;                           // eval, max activation size
  Buffer grad_a, grad_b;                       // backward ping-pong, max activation size
  std::vector<Buffer> logits, dlogits;         // per head (N, K_h)
  Buffer dfeat, dfeat_tmp;                     // (N, D)
  Buffer images;                               // (N, C, H, W) device backends; on the CPU only
                                               // for train_step_fill (allocated there)
  std::vector<Buffer> labels;                  // per head (N) int32, device backends only
  const float* features = nullptr;             // (N, D) after run_trunk
  std::vector<Buffer> reord;                   // per trunk layer: its input reordered (Model::reorder_in_)
  Buffer grad_c;                               // backward: a gradient reordered between layouts
  Buffer feat_plain;                           // the features reordered to plain (features_layout_ blocked)
};

// Index of the first NaN/Inf in images (N, in), checked on the host: throws
// naming the image (`what`: the calling API).
void check_images(const float* images, int N, const Shape3& in, const char* what, int threads);

}  // namespace sln
