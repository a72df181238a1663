// Layer classes of the trunk (conv, batch norm, ReLU, pooling, linear, dropout;
// the residual block is in residual_block.h) and the deterministic init stream.
// Each layer owns the op it needs, created per batch size and cached (OpLayer);
// arch_*.cpp builders assemble them into a trunk with PyTorch names.
//
// Gradient rule (sln/ops.h): backward overwrites dx and the parameter
// gradients. The only joins are the heads (summed by Model) and the residual
// add (summed by ResidualBlock with Backend::add_inplace).
#pragma once
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sln/errors.h"
#include "sln/model.h"

namespace sln {

// splitmix64 stream + Box-Muller: the same numbers on every platform (the
// standard library's normal_distribution is implementation-defined).
class InitRng {
 public:
  explicit InitRng(uint64_t seed) : s_(seed ^ 0x9e3779b97f4a7c15ULL) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }   // [0,1)
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 1.0 - uniform(), u2 = uniform();   // u1 in (0,1]
    double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2 * M_PI * u2);
    has_spare_ = true;
    return r * std::cos(2 * M_PI * u2);
  }
  // Same numbers as n calls of normal(), computed in parallel: the k-th
  // uniform after the current state is a pure function of (state, k), so each
  // Box-Muller pair is independent. (Large layers: AlexNet's 37.7M-weight
  // Linear took seconds serially.)
  void fill_normal(float* p, size_t n, double std) {
    size_t i = 0;
    if (n > 0 && has_spare_) {
      p[0] = static_cast<float>(normal() * std);
      i = 1;
    }
    const size_t m = n - i, pairs = (m + 1) / 2;
    const uint64_t base = s_;
    auto uniform_at = [base](uint64_t k) {   // the k-th uniform() from `base`
      uint64_t z = base + (k + 1) * 0x9e3779b97f4a7c15ULL;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      return ((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
    };
    float* q = p + i;
#pragma omp parallel for schedule(static)
    for (long j = 0; j < static_cast<long>(pairs); j++) {
      const double u1 = 1.0 - uniform_at(2 * j), u2 = uniform_at(2 * j + 1);
      const double r = std::sqrt(-2.0 * std::log(u1));
      q[2 * j] = static_cast<float>(r * std::cos(2 * M_PI * u2) * std);
      if (static_cast<size_t>(2 * j + 1) < m) q[2 * j + 1] = static_cast<float>(r * std::sin(2 * M_PI * u2) * std);
    }
    s_ = base + 2 * pairs * 0x9e3779b97f4a7c15ULL;
    if (m % 2 == 1) {   // the last pair's second number is the next spare
      const double u1 = 1.0 - uniform_at(2 * (pairs - 1)), u2 = uniform_at(2 * (pairs - 1) + 1);
      spare_ = std::sqrt(-2.0 * std::log(u1)) * std::sin(2 * M_PI * u2);
      has_spare_ = true;
    }
  }

 private:
  uint64_t s_;
  bool has_spare_ = false;
  double spare_ = 0;
};

// Ops are created per batch size and cached; trim() bounds the cache.
template <typename Op>
class OpCache {
 public:
  template <typename Make>
  Op& get(int N, Make make) {
    auto it = ops_.find(N);
    if (it != ops_.end()) return *it->second;
    auto op = make();
    Op& ref = *op;
    ops_[N] = std::move(op);
    return ref;
  }
  void trim(int keep) {
    for (auto it = ops_.begin(); it != ops_.end();) it = (it->first == keep) ? std::next(it) : ops_.erase(it);
  }

 private:
  std::map<int, std::unique_ptr<Op>> ops_;
};

// A layer that runs one backend op: op(c) creates it for c's batch size on first
// use (make_op) and caches it; trim() drops the other batch sizes' ops.
template <typename Op>
class OpLayer : public Layer {
 public:
  void trim(int keep) override { ops_.trim(keep); }

 protected:
  Op& op(RunCtx& c) {
    return ops_.get(c.N, [&] { return make_op(c); });
  }
  virtual std::unique_ptr<Op> make_op(const RunCtx& c) = 0;

 private:
  OpCache<Op> ops_;
};

// The backend op of a descriptor (one overload per weighted op).
inline std::unique_ptr<Conv2dOp> make_backend_op(Backend& be, const Conv2dDesc& d) { return be.conv2d(d); }
inline std::unique_ptr<LinearOp> make_backend_op(Backend& be, const LinearDesc& d) { return be.linear(d); }

// conv2d and linear: a weight, an optional bias (d_.bias) and one op that reads
// both (forward(x, w, b, y), backward(x, w, dy, dx, dw, db)).
template <typename Op, typename Desc>
class WeightedLayer : public OpLayer<Op> {
 public:
  void forward(RunCtx& c, const float* x, float* y) override {
    Arena& a = *c.arena;
    this->op(c).forward(x, a.param(w_), d_.bias ? a.param(b_) : nullptr, y);
  }
  void backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) override {
    Arena& a = *c.arena;
    this->op(c).backward(x, a.param(w_), dy, dx, a.grad(w_), d_.bias ? a.grad(b_) : nullptr);
  }

 protected:
  std::unique_ptr<Op> make_op(const RunCtx& c) override {
    Desc d = d_;
    d.N = c.N;
    return make_backend_op(*c.backend, d);
  }
  Desc d_;
  size_t w_ = 0, b_ = 0;
};

class ConvLayer final : public WeightedLayer<Conv2dOp, Conv2dDesc> {
 public:
  bool infer_step(Arena& a, std::vector<InferStep>& steps) override;
  ConvLayer(Arena& a, const std::string& nm, Shape3 i, int K, int k, int stride, int pad, bool bias);
  const char* kind() const override { return "conv2d"; }
  Layout input_layout(Layout arriving, bool) const override { return arriving; }
  void set_layouts(Layout in_l, bool blocked_ok) override;
  void set_bf16(bool on) override { d_.bf16 = on; }
  void init(Arena& a, InitRng& rng) override;
};

class BatchNormLayer final : public OpLayer<BatchNormOp> {
 public:
  bool infer_step(Arena& a, std::vector<InferStep>& steps) override;
  BatchNormLayer(Arena& a, const std::string& nm, Shape3 i);
  const char* kind() const override { return "batchnorm2d"; }
  Layout input_layout(Layout arriving, bool) const override { return arriving; }
  void set_layouts(Layout in_l, bool) override { in_layout = out_layout = in_l; }
  void init(Arena& a, InitRng& rng) override;
  void check_train_batch(int N) const override;
  void forward(RunCtx& c, const float* x, float* y) override;
  void backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) override;
  // the CPU's nChw16c batch norm applies the ReLU after it (BatchNormDesc::relu)
  bool fuse_relu(bool on) override { return fuse_ = on && in_layout == Layout::blocked16; }
  void trim(int keep) override {
    OpLayer<BatchNormOp>::trim(keep);
    unfused_.trim(keep);
  }

 private:
  std::unique_ptr<BatchNormOp> make_op(const RunCtx& c) override;
  BatchNormOp& bn_op(RunCtx& c);      // the fused op, or the plain one under RunCtx::no_fuse
  bool fused(const RunCtx& c) const { return fuse_ && !c.no_fuse; }
  bool sync(const RunCtx& c) const;   // --sync-bn in a distributed training step
  bool fuse_ = false;
  OpCache<BatchNormOp> unfused_;      // fuse_ under RunCtx::no_fuse
  size_t g_ = 0, b_ = 0, rm_ = 0, rv_ = 0;
  std::vector<double> sync_mean_, sync_invstd_;   // saved by a synchronised forward
};

// ReLU; forward may run in place (x == y), backward reads only y.
class ReluLayer final : public OpLayer<ReluOp> {
 public:
  bool infer_step(Arena& a, std::vector<InferStep>& steps) override;
  ReluLayer(const std::string& nm, Shape3 i);
  const char* kind() const override { return "relu"; }
  Layout input_layout(Layout arriving, bool) const override { return arriving; }   // elementwise
  void set_layouts(Layout in_l, bool) override { in_layout = out_layout = in_l; }
  void forward(RunCtx& c, const float* x, float* y) override;
  void backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) override;

 private:
  std::unique_ptr<ReluOp> make_op(const RunCtx& c) override;
};

// Max or average pooling, kernel kh x kw (global average: kh = H, kw = W,
// stride 1, which is also AdaptiveAvgPool2d((1, 1)) for any input size).
class PoolLayer final : public OpLayer<Pool2dOp> {
 public:
  bool infer_step(Arena& a, std::vector<InferStep>& steps) override;
  PoolLayer(const std::string& nm, Shape3 i, bool max, int kh, int kw, int stride, int pad);
  const char* kind() const override { return max_ ? "maxpool2d" : "avgpool2d"; }
  Layout input_layout(Layout arriving, bool) const override { return arriving; }
  // a 1x1 output is the same bytes in both layouts: say plain (no reorder after a global pool)
  void set_layouts(Layout in_l, bool) override {
    in_layout = in_l;
    out_layout = out.H == 1 && out.W == 1 ? Layout::plain : in_l;
  }
  void forward(RunCtx& c, const float* x, float* y) override;
  void backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) override;

 private:
  std::unique_ptr<Pool2dOp> make_op(const RunCtx& c) override;
  bool max_;
  Pool2dDesc d_;
};

// nn.Linear on the flattened input (C*H*W, torch's x.view(N, -1) of NCHW).
// Init as the reference: weight normal(0, 0.01), bias 0.
class LinearLayer final : public WeightedLayer<LinearOp, LinearDesc> {
 public:
  LinearLayer(Arena& a, const std::string& nm, Shape3 i, int out, bool bias = true);
  const char* kind() const override { return "linear"; }
  void init(Arena& a, InitRng& rng) override;
};

// nn.Dropout(p): active only in training mode. The mask seed is the step seed
// mixed with `salt` (the layer's position), so two dropout layers of one step
// draw different masks and a step is reproducible from the model seed.
class DropoutLayer final : public OpLayer<DropoutOp> {
 public:
  DropoutLayer(const std::string& nm, Shape3 i, float p, uint64_t salt);
  const char* kind() const override { return "dropout"; }
  void forward(RunCtx& c, const float* x, float* y) override;
  void backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) override;

 private:
  std::unique_ptr<DropoutOp> make_op(const RunCtx& c) override;
  float p_;
  uint64_t salt_;
};

// Builders: append the trunk of one architecture (PyTorch names) and return
// the feature width the heads read. One file each (arch_<name>.cpp).
int build_smallcnn(Arena& a, const ModelSpec& s, std::vector<std::unique_ptr<Layer>>& trunk);
int build_alexnet(Arena& a, const ModelSpec& s, std::vector<std::unique_ptr<Layer>>& trunk);
int build_resnet(Arena& a, const ModelSpec& s, std::vector<std::unique_ptr<Layer>>& trunk, int depth);

}  // namespace sln
