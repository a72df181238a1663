// The residual block layer (torchvision's BasicBlock / Bottleneck), built from
// the layers of core/layers.h by arch_resnet.cpp.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/layers.h"

namespace sln {

// A residual block as torchvision's BasicBlock / Bottleneck:
//   y = relu(main(x) + shortcut(x)),  shortcut = identity when empty.
// main is a chain (conv, bn, relu, ..., conv, bn); its last layer writes
// straight into y, the add and the final ReLU run in place on y. A ReLU inside
// the chain runs in place on the preceding layer's output (the batch norm
// before it does not read its own output in backward). Training keeps the
// chain's activations per batch size; eval uses the model's scratch slots.
// Backward: g = relu'(y) * dy, then dx = main^T g + shortcut^T g (or + g).
class ResidualBlock final : public Layer {
 public:
  ResidualBlock(const std::string& nm, Shape3 i) {
    name = nm;
    in = out = i;
  }
  // Sublayers are added in the reference's registration order (conv1, bn1,
  // ..., downsample.0, downsample.1) so the arena order equals state_dict's.
  void add_main(std::unique_ptr<Layer> l);
  void add_shortcut(std::unique_ptr<Layer> l);
  Shape3 main_out() const { return main_.empty() ? in : main_.back()->out; }
  Shape3 shortcut_out() const { return shortcut_.empty() ? in : shortcut_.back()->out; }
  void finish();   // checks the two branches agree; sets out

  const char* kind() const override { return "residual"; }
  // blocked through the whole block (both branches, the add and the ReLU)
  // when every channel count allows it; otherwise plain
  Layout input_layout(Layout arriving, bool blocked_ok) const override;
  void set_layouts(Layout in_l, bool blocked_ok) override;
  void set_bf16(bool on) override {
    for (auto& l : main_) l->set_bf16(on);
    for (auto& l : shortcut_) l->set_bf16(on);
  }
  void init(Arena& a, InitRng& rng) override;
  void check_train_batch(int N) const override;
  void forward(RunCtx& c, const float* x, float* y) override;
  void backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) override;
  void trim(int keep) override;

 private:
  struct Acts {
    std::vector<Buffer> main, shortcut;   // per sublayer output, backend memory (relus alias)
  };
  Acts& acts_for(Backend& be, int N);
  // output buffer of main_[i] / shortcut_[i] in this call
  float* main_buf(RunCtx& c, Acts* a, size_t i);
  float* short_buf(RunCtx& c, Acts* a, size_t i);
  ReluOp& relu_op(RunCtx& c);

  std::vector<std::unique_ptr<Layer>> main_, shortcut_;
  std::vector<int> main_alias_;   // main_alias_[i] = index whose buffer main_[i] writes (in-place ReLU)
  OpCache<ReluOp> relu_;
  std::map<int, Acts> acts_;
};

}  // namespace sln
