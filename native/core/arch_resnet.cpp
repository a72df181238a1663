// ResNet-18/50 in torchvision's layout (torchvision/models/resnet.py):
// conv1 bn1 relu maxpool layer1..layer4 avgpool, BasicBlock (18) or
// Bottleneck with the stride on the 3x3 conv (50), downsample = 1x1 conv +
// BN where the shape changes. State_dict keys equal torchvision's minus
// `fc.*` (our heads are top_layer*) and `*.num_batches_tracked` (not kept;
// see lib/pth.ts). Small-input variant (32 px images): conv1 is 3x3 stride 1
// pad 1 and there is no max pool; the names stay the same.
#include "core/layers.h"
#include "core/residual_block.h"

namespace sln {

namespace {

std::unique_ptr<ResidualBlock> make_block(Arena& a, const std::string& nm, Shape3 in, int planes, int stride,
                                          bool bottleneck) {
  const int expansion = bottleneck ? 4 : 1;
  auto b = std::make_unique<ResidualBlock>(nm, in);
  Shape3 cur = in;
  auto conv = [&](const char* n, int K, int k, int s, int pad) {
    auto l = std::make_unique<ConvLayer>(a, nm + "." + n, cur, K, k, s, pad, false);
    cur = l->out;
    b->add_main(std::move(l));
  };
  auto bn = [&](const char* n) { b->add_main(std::make_unique<BatchNormLayer>(a, nm + "." + n, cur)); };
  auto relu = [&] { b->add_main(std::make_unique<ReluLayer>(nm + ".relu", cur)); };
  if (bottleneck) {
    conv("conv1", planes, 1, 1, 0), bn("bn1"), relu();
    conv("conv2", planes, 3, stride, 1), bn("bn2"), relu();
    conv("conv3", planes * expansion, 1, 1, 0), bn("bn3");
  } else {
    conv("conv1", planes, 3, stride, 1), bn("bn1"), relu();
    conv("conv2", planes, 3, 1, 1), bn("bn2");
  }
  if (stride != 1 || in.C != planes * expansion) {
    auto dc = std::make_unique<ConvLayer>(a, nm + ".downsample.0", in, planes * expansion, 1, stride, 0, false);
    Shape3 d = dc->out;
    b->add_shortcut(std::move(dc));
    b->add_shortcut(std::make_unique<BatchNormLayer>(a, nm + ".downsample.1", d));
  }
  b->finish();
  return b;
}

}  // namespace

int build_resnet(Arena& a, const ModelSpec& s, std::vector<std::unique_ptr<Layer>>& trunk, int depth) {
  SLN_CHECK_ARG(depth == 18 || depth == 50, "resnet: depth must be 18 or 50, got " << depth);
  const bool bottleneck = depth == 50;
  const int blocks[4] = {2, 2, 2, 2};
  const int blocks50[4] = {3, 4, 6, 3};
  const bool small = s.small_input == 1;
  Shape3 cur = s.input;
  auto conv1 = small ? std::make_unique<ConvLayer>(a, "conv1", cur, 64, 3, 1, 1, false)
                     : std::make_unique<ConvLayer>(a, "conv1", cur, 64, 7, 2, 3, false);
  cur = conv1->out;
  trunk.push_back(std::move(conv1));
  trunk.push_back(std::make_unique<BatchNormLayer>(a, "bn1", cur));
  trunk.push_back(std::make_unique<ReluLayer>("relu", cur));
  if (!small) {
    auto mp = std::make_unique<PoolLayer>("maxpool", cur, true, 3, 3, 2, 1);
    cur = mp->out;
    trunk.push_back(std::move(mp));
  }
  for (int layer = 0; layer < 4; layer++) {
    const int planes = 64 << layer;
    const int n = bottleneck ? blocks50[layer] : blocks[layer];
    for (int i = 0; i < n; i++) {
      const int stride = (layer > 0 && i == 0) ? 2 : 1;
      auto b = make_block(a, "layer" + std::to_string(layer + 1) + "." + std::to_string(i), cur, planes, stride,
                          bottleneck);
      cur = b->out;
      trunk.push_back(std::move(b));
    }
  }
  // AdaptiveAvgPool2d((1, 1)) = the mean over the whole map
  auto gap = std::make_unique<PoolLayer>("avgpool", cur, false, cur.H, cur.W, 1, 0);
  cur = gap->out;
  trunk.push_back(std::move(gap));
  return static_cast<int>(cur.size());
}

}  // namespace sln
