// AlexNet exactly as the reference's models/alexnet.py (BN variant):
// features = [conv(K, k, stride, pad) BN ReLU | MaxPool(3, 2)] per CFG,
// classifier = Dropout(0.5) Linear(256*6*6, 4096) ReLU Dropout(0.5)
// Linear(4096, 4096) ReLU; the heads read the 4096-d output. Convs have a
// bias (nn.Conv2d's default). Names: features.<i>, classifier.<i>.
#include "core/layers.h"

namespace sln {

namespace {
struct ConvCfg {
  int K, k, stride, pad;   // (number of filters, kernel size, stride, pad); K = 0 = 'M'
};
// the reference's CFG
const std::vector<ConvCfg> kBig = {{96, 11, 4, 2}, {0, 0, 0, 0}, {256, 5, 1, 2}, {0, 0, 0, 0}, {384, 3, 1, 1},
                                   {384, 3, 1, 1}, {256, 3, 1, 1}, {0, 0, 0, 0}};
const std::vector<ConvCfg> kSmall = {{64, 11, 4, 2}, {0, 0, 0, 0}, {192, 5, 1, 2}, {0, 0, 0, 0}, {384, 3, 1, 1},
                                     {256, 3, 1, 1}, {256, 3, 1, 1}, {0, 0, 0, 0}};
}  // namespace

int build_alexnet(Arena& a, const ModelSpec& s, std::vector<std::unique_ptr<Layer>>& trunk) {
  SLN_CHECK_ARG(s.arch_spec == "big" || s.arch_spec == "small",
                "alexnet: archspec must be 'big' or 'small', got '" << s.arch_spec << "'");
  const auto& cfg = s.arch_spec == "big" ? kBig : kSmall;
  // the reference flattens with x.view(N, 256 * 6 * 6): the input must give a
  // 6x6 map (224 px, as the reference trains on, does; so do 224..227)
  {
    int h = s.input.H, w = s.input.W;
    for (const auto& c : cfg) {
      if (c.K) h = (h + 2 * c.pad - c.k) / c.stride + 1, w = (w + 2 * c.pad - c.k) / c.stride + 1;
      else h = (h - 3) / 2 + 1, w = (w - 3) / 2 + 1;
      if (h < 1 || w < 1) break;
    }
    SLN_CHECK_ARG(h == 6 && w == 6, "alexnet: input " << s.input.H << "x" << s.input.W
                                                      << " does not give the 6x6 feature map the reference's classifier "
                                                         "expects (256*6*6 inputs); use 224x224 images");
  }
  Shape3 cur = s.input;
  int idx = 0;
  auto nm = [&](const char* seq) { return std::string(seq) + "." + std::to_string(idx++); };
  for (const auto& c : cfg) {
    if (c.K == 0) {
      auto p = std::make_unique<PoolLayer>(nm("features"), cur, true, 3, 3, 2, 0);
      cur = p->out;
      trunk.push_back(std::move(p));
      continue;
    }
    auto conv = std::make_unique<ConvLayer>(a, nm("features"), cur, c.K, c.k, c.stride, c.pad, true);
    cur = conv->out;
    trunk.push_back(std::move(conv));
    trunk.push_back(std::make_unique<BatchNormLayer>(a, nm("features"), cur));
    trunk.push_back(std::make_unique<ReluLayer>(nm("features"), cur));
  }
  idx = 0;
  const uint64_t salt0 = trunk.size();
  auto dropout = [&] {
    trunk.push_back(std::make_unique<DropoutLayer>(nm("classifier"), cur, 0.5f, salt0 + idx));
  };
  auto linear_relu = [&](int outf) {
    auto l = std::make_unique<LinearLayer>(a, nm("classifier"), cur, outf, true);
    cur = l->out;
    trunk.push_back(std::move(l));
    trunk.push_back(std::make_unique<ReluLayer>(nm("classifier"), cur));
  };
  dropout();
  linear_relu(4096);
  dropout();
  linear_relu(4096);
  return static_cast<int>(cur.size());
}

}  // namespace sln
