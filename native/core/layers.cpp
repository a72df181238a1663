// Layer implementations (see core/layers.h) and the model's scratch slots.
#include "core/layers.h"
#include "core/sync_batchnorm.h"

namespace sln {

// ---------------------------------------------------------------- scratch

float* Scratch::get(int slot, size_t n) {
  SLN_CHECK_ARG(slot >= 0 && slot < kSlots, "scratch: slot " << slot << " out of range");
  SLN_CHECK_ARG(be_ != nullptr, "scratch: no backend bound");
  return static_cast<float*>(bufs_[slot].reserve(*be_, n * sizeof(float)));
}

void Scratch::clear() {
  for (auto& b : bufs_) b.reset();
}

// ---------------------------------------------------------------- conv

ConvLayer::ConvLayer(Arena& a, const std::string& nm, Shape3 i, int K, int k, int stride, int pad, bool bias) {
  name = nm;
  in = i;
  d_.C = i.C; d_.H = i.H; d_.W = i.W; d_.K = K; d_.R = d_.S = k; d_.stride = stride; d_.pad = pad; d_.bias = bias;
  SLN_CHECK_ARG(d_.OH() >= 1 && d_.OW() >= 1 && i.H + 2 * pad >= k && i.W + 2 * pad >= k,
                nm << ": input " << i.C << "x" << i.H << "x" << i.W << " is too small for a " << k << "x" << k
                   << " conv (stride " << stride << ", pad " << pad << ")");
  out = {K, d_.OH(), d_.OW()};
  w_ = a.add(nm + ".weight", {K, i.C, k, k}, true);
  if (bias) b_ = a.add(nm + ".bias", {K}, true);
}

void ConvLayer::init(Arena& a, InitRng& rng) {
  // reference (self-label models) and torchvision's kaiming_normal_(fan_out, relu):
  // normal(0, sqrt(2 / (kh * kw * out_channels))); bias 0
  double n = static_cast<double>(d_.R) * d_.S * d_.K;
  rng.fill_normal(a.host_param(w_), static_cast<size_t>(d_.K) * d_.C * d_.R * d_.S, std::sqrt(2.0 / n));
  if (d_.bias) std::fill_n(a.host_param(b_), d_.K, 0.f);
}

void ConvLayer::set_layouts(Layout in_l, bool blocked_ok) {
  in_layout = d_.src_layout = in_l;
  out_layout = d_.dst_layout = blocked_ok && d_.K % 16 == 0 ? Layout::blocked16 : Layout::plain;
}

// ---------------------------------------------------------------- batch norm

BatchNormLayer::BatchNormLayer(Arena& a, const std::string& nm, Shape3 i) {
  name = nm;
  in = out = i;
  g_ = a.add(nm + ".weight", {i.C}, true);
  b_ = a.add(nm + ".bias", {i.C}, true);
  rm_ = a.add(nm + ".running_mean", {i.C}, false);
  rv_ = a.add(nm + ".running_var", {i.C}, false);
}

void BatchNormLayer::init(Arena& a, InitRng&) {
  std::fill_n(a.host_param(g_), in.C, 1.f);
  std::fill_n(a.host_param(b_), in.C, 0.f);
  std::fill_n(a.host_buffer(rm_), in.C, 0.f);
  std::fill_n(a.host_buffer(rv_), in.C, 1.f);
}

void BatchNormLayer::check_train_batch(int N) const {
  // PyTorch: "Expected more than 1 value per channel when training"
  SLN_CHECK_ARG(static_cast<long>(N) * in.H * in.W > 1,
                "trainStep: batch norm in training mode needs more than 1 value per channel (batch of "
                    << N << ", " << name << " sees " << in.H << "x" << in.W << " per image)");
}

std::unique_ptr<BatchNormOp> BatchNormLayer::make_op(const RunCtx& c) {
  BatchNormDesc d;
  d.N = c.N; d.C = in.C; d.H = in.H; d.W = in.W;
  d.layout = in_layout;
  d.relu = fused(c);
  return c.backend->batchnorm(d);
}

BatchNormOp& BatchNormLayer::bn_op(RunCtx& c) {
  if (fuse_ && c.no_fuse) return unfused_.get(c.N, [&] { return make_op(c); });
  return op(c);
}

// A plain view of an activation for code that reads NCHW only (the
// synchronised batch norm): a host copy when the layer's layout is blocked.
namespace {
class Plain {
 public:
  Plain(RunCtx& c, Layout l, Shape3 s, const float* p) : c_(c), l_(l), s_(s), p_(const_cast<float*>(p)) {}
  const float* in() {
    if (l_ == Layout::plain || !p_) return p_;
    tmp_.resize(static_cast<size_t>(c_.N) * s_.size());
    c_.backend->reorder(p_, l_, tmp_.data(), Layout::plain, c_.N, s_.C, s_.H, s_.W);
    return tmp_.data();
  }
  float* out() {
    if (l_ == Layout::plain || !p_) return p_;
    tmp_.resize(static_cast<size_t>(c_.N) * s_.size());
    return tmp_.data();
  }
  void finish() {
    if (l_ != Layout::plain && p_) c_.backend->reorder(tmp_.data(), Layout::plain, p_, l_, c_.N, s_.C, s_.H, s_.W);
  }

 private:
  RunCtx& c_;
  Layout l_;
  Shape3 s_;
  float* p_;
  std::vector<float> tmp_;
};
}  // namespace

bool BatchNormLayer::sync(const RunCtx& c) const {
  if (!c.training || !c.dist || !c.dist->bn_sum) return false;
  if (!c.backend->host_memory())
    SLN_FAIL(Unsupported, "SLN_UNSUPPORTED", "--sync-bn: synchronised batch norm runs on the CPU backend only (" << name << ")");
  return true;
}

void BatchNormLayer::forward(RunCtx& c, const float* x, float* y) {
  Arena& a = *c.arena;
  if (sync(c)) {
    BatchNormDesc d;
    d.N = c.N; d.C = in.C; d.H = in.H; d.W = in.W;
    Plain px(c, in_layout, in, x), py(c, in_layout, in, y);
    sync_batchnorm_forward(d, px.in(), a.param(g_), a.param(b_), a.buffer(rm_), a.buffer(rv_), py.out(), sync_mean_,
                           sync_invstd_, c.dist->bn_sum);
    py.finish();
    if (fused(c))   // the fused ReLU, elementwise (any layout; host memory)
      for (size_t i = 0, n = static_cast<size_t>(c.N) * in.size(); i < n; i++) y[i] = std::max(y[i], 0.f);
    return;
  }
  bn_op(c).forward(x, a.param(g_), a.param(b_), a.buffer(rm_), a.buffer(rv_), y, c.training);
}

void BatchNormLayer::backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) {
  Arena& a = *c.arena;
  if (sync(c)) {
    BatchNormDesc d;
    d.N = c.N; d.C = in.C; d.H = in.H; d.W = in.W;
    std::vector<float> masked;   // the fused ReLU's backward: dy where y > 0
    if (fused(c)) {
      masked.resize(static_cast<size_t>(c.N) * in.size());
      for (size_t i = 0; i < masked.size(); i++) masked[i] = y[i] > 0.f ? dy[i] : 0.f;
      dy = masked.data();
    }
    Plain px(c, in_layout, in, x), pdy(c, in_layout, in, dy), pdx(c, in_layout, in, dx);
    sync_batchnorm_backward(d, px.in(), a.param(g_), pdy.in(), sync_mean_, sync_invstd_, dx ? pdx.out() : nullptr,
                            a.grad(g_), a.grad(b_), c.dist->bn_sum);
    pdx.finish();
    return;
  }
  bn_op(c).backward(x, a.param(g_), dy, dx, a.grad(g_), a.grad(b_));
}

// ---------------------------------------------------------------- relu

ReluLayer::ReluLayer(const std::string& nm, Shape3 i) {
  name = nm;
  in = out = i;
}

std::unique_ptr<ReluOp> ReluLayer::make_op(const RunCtx& c) {
  EltwiseDesc d;
  d.n = static_cast<size_t>(c.N) * in.size();
  return c.backend->relu(d);
}

void ReluLayer::forward(RunCtx& c, const float* x, float* y) { op(c).forward(x, y); }

void ReluLayer::backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) {
  if (dx) op(c).backward(y, dy, dx);
}

// ---------------------------------------------------------------- pooling

PoolLayer::PoolLayer(const std::string& nm, Shape3 i, bool max, int kh, int kw, int stride, int pad) : max_(max) {
  name = nm;
  in = i;
  d_.C = i.C; d_.H = i.H; d_.W = i.W;
  d_.kernel = kh; d_.kernel_h = kh; d_.kernel_w = kw; d_.stride = stride; d_.pad = pad;
  SLN_CHECK_ARG(i.H + 2 * pad >= kh && i.W + 2 * pad >= kw && d_.OH() >= 1 && d_.OW() >= 1,
                nm << ": input " << i.H << "x" << i.W << " is too small for pooling " << kh << "x" << kw << "/"
                   << stride);
  out = {i.C, d_.OH(), d_.OW()};
}

std::unique_ptr<Pool2dOp> PoolLayer::make_op(const RunCtx& c) {
  Pool2dDesc d = d_;
  d.N = c.N;
  d.layout = in_layout;
  return max_ ? c.backend->maxpool2d(d) : c.backend->avgpool2d(d);
}

void PoolLayer::forward(RunCtx& c, const float* x, float* y) { op(c).forward(x, y, c.training); }

void PoolLayer::backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) {
  if (dx) op(c).backward(dy, dx);
}

// ---------------------------------------------------------------- linear

LinearLayer::LinearLayer(Arena& a, const std::string& nm, Shape3 i, int outf, bool bias) {
  name = nm;
  in = i;
  d_.in = static_cast<int>(i.size());
  d_.out = outf;
  d_.bias = bias;
  out = {outf, 1, 1};
  w_ = a.add(nm + ".weight", {outf, d_.in}, true);
  if (bias) b_ = a.add(nm + ".bias", {outf}, true);
}

void LinearLayer::init(Arena& a, InitRng& rng) {
  rng.fill_normal(a.host_param(w_), static_cast<size_t>(d_.out) * d_.in, 0.01);
  if (d_.bias) std::fill_n(a.host_param(b_), d_.out, 0.f);
}

// ---------------------------------------------------------------- dropout

DropoutLayer::DropoutLayer(const std::string& nm, Shape3 i, float p, uint64_t salt) : p_(p), salt_(salt) {
  name = nm;
  in = out = i;
}

std::unique_ptr<DropoutOp> DropoutLayer::make_op(const RunCtx& c) {
  DropoutDesc d;
  d.n = static_cast<size_t>(c.N) * in.size();
  d.p = p_;
  return c.backend->dropout(d);
}

void DropoutLayer::forward(RunCtx& c, const float* x, float* y) {
  // a different stream per layer: mix the salt through one splitmix64 round
  uint64_t z = c.seed + (salt_ + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  // element i of the mask is splitmix64_at(z, i) (core/dropout_mask.h), a function
  // of z + (i + 1) * gamma: starting the stream at z + off * gamma gives elements
  // off, off + 1, ...: a rank's images get the masks of their global positions
  z += static_cast<uint64_t>(c.row_offset) * static_cast<uint64_t>(in.size()) * 0x9E3779B97F4A7C15ull;
  op(c).forward(x, y, c.training, z);
}

void DropoutLayer::backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) {
  if (dx) op(c).backward(dy, dx);
}

// ---------------------------------------------------------------- fused inference steps

bool ConvLayer::infer_step(Arena& a, std::vector<InferStep>& steps) {
  InferStep s;
  s.conv = d_;
  s.w = a.param(w_);
  s.b = d_.bias ? a.param(b_) : nullptr;
  steps.push_back(s);
  return true;
}

bool BatchNormLayer::infer_step(Arena& a, std::vector<InferStep>& steps) {
  if (steps.empty() || steps.back().pool || steps.back().gamma || steps.back().relu) return false;
  InferStep& s = steps.back();
  s.gamma = a.param(g_);
  s.beta = a.param(b_);
  s.mean = a.buffer(rm_);
  s.var = a.buffer(rv_);
  s.eps = BatchNormDesc().eps;   // the eps the layer's op uses
  return true;
}

bool ReluLayer::infer_step(Arena&, std::vector<InferStep>& steps) {
  if (steps.empty() || steps.back().pool || steps.back().relu) return false;
  steps.back().relu = true;
  return true;
}

bool PoolLayer::infer_step(Arena&, std::vector<InferStep>& steps) {
  if (steps.empty()) return false;
  InferStep s;
  s.pool = true;
  s.pool_max = max_;
  s.pool_desc = d_;
  steps.push_back(s);
  return true;
}

}  // namespace sln
