// smallcnn (DESIGN.md): conv3x3(C->32) BN ReLU, conv3x3(32->32) BN ReLU, maxpool 2;
// conv3x3(32->64) BN ReLU, conv3x3(64->64) BN ReLU, maxpool 2;
// conv3x3(64->128) BN ReLU; global average pool -> 128.
// Names follow an nn.Sequential called `features`, then `avgpool`.
#include "core/layers.h"

namespace sln {

int build_smallcnn(Arena& a, const ModelSpec& s, std::vector<std::unique_ptr<Layer>>& trunk) {
  SLN_CHECK_ARG(s.input.H >= 4 && s.input.W >= 4,
                "smallcnn: input must be at least 4x4, got " << s.input.H << "x" << s.input.W);
  Shape3 cur = s.input;
  int idx = 0;
  auto conv_bn_relu = [&](int K) {
    auto conv = std::make_unique<ConvLayer>(a, "features." + std::to_string(idx++), cur, K, 3, 1, 1, false);
    cur = conv->out;
    auto bn = std::make_unique<BatchNormLayer>(a, "features." + std::to_string(idx++), cur);
    auto relu = std::make_unique<ReluLayer>("features." + std::to_string(idx++), cur);
    trunk.push_back(std::move(conv));
    trunk.push_back(std::move(bn));
    trunk.push_back(std::move(relu));
  };
  auto maxpool = [&] {
    auto p = std::make_unique<PoolLayer>("features." + std::to_string(idx++), cur, true, 2, 2, 2, 0);
    cur = p->out;
    trunk.push_back(std::move(p));
  };
  conv_bn_relu(32);
  conv_bn_relu(32);
  maxpool();
  conv_bn_relu(64);
  conv_bn_relu(64);
  maxpool();
  conv_bn_relu(128);
  auto gap = std::make_unique<PoolLayer>("avgpool", cur, false, cur.H, cur.W, 1, 0);
  cur = gap->out;
  trunk.push_back(std::move(gap));
  return static_cast<int>(cur.size());
}

}  // namespace sln
