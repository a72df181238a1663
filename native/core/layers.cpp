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

Conv2dOp& ConvLayer::op(RunCtx& c) {
  return ops_.get(c.N, [&] {
    Conv2dDesc d = d_;
    d.N = c.N;
    return c.backend->conv2d(d);
  });
}

void ConvLayer::forward(RunCtx& c, const float* x, float* y) {
  Arena& a = *c.arena;
  op(c).forward(x, a.param(w_), d_.bias ? a.param(b_) : nullptr, y);
}

void ConvLayer::backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) {
  Arena& a = *c.arena;
  op(c).backward(x, a.param(w_), dy, dx, a.grad(w_), d_.bias ? a.grad(b_) : nullptr);
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

BatchNormOp& BatchNormLayer::op(RunCtx& c) {
  return ops_.get(c.N, [&] {
    BatchNormDesc d;
    d.N = c.N; d.C = in.C; d.H = in.H; d.W = in.W;
    return c.backend->batchnorm(d);
  });
}

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
    sync_batchnorm_forward(d, x, a.param(g_), a.param(b_), a.buffer(rm_), a.buffer(rv_), y, sync_mean_, sync_invstd_,
                           c.dist->bn_sum);
    return;
  }
  op(c).forward(x, a.param(g_), a.param(b_), a.buffer(rm_), a.buffer(rv_), y, c.training);
}

void BatchNormLayer::backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) {
  Arena& a = *c.arena;
  if (sync(c)) {
    BatchNormDesc d;
    d.N = c.N; d.C = in.C; d.H = in.H; d.W = in.W;
    sync_batchnorm_backward(d, x, a.param(g_), dy, sync_mean_, sync_invstd_, dx, a.grad(g_), a.grad(b_), c.dist->bn_sum);
    return;
  }
  op(c).backward(x, a.param(g_), dy, dx, a.grad(g_), a.grad(b_));
}

// ---------------------------------------------------------------- relu

ReluLayer::ReluLayer(const std::string& nm, Shape3 i) {
  name = nm;
  in = out = i;
}

ReluOp& ReluLayer::op(RunCtx& c) {
  return ops_.get(c.N, [&] {
    EltwiseDesc d;
    d.n = static_cast<size_t>(c.N) * in.size();
    return c.backend->relu(d);
  });
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

Pool2dOp& PoolLayer::op(RunCtx& c) {
  return ops_.get(c.N, [&] {
    Pool2dDesc d = d_;
    d.N = c.N;
    return max_ ? c.backend->maxpool2d(d) : c.backend->avgpool2d(d);
  });
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

LinearOp& LinearLayer::op(RunCtx& c) {
  return ops_.get(c.N, [&] {
    LinearDesc d = d_;
    d.N = c.N;
    return c.backend->linear(d);
  });
}

void LinearLayer::forward(RunCtx& c, const float* x, float* y) {
  Arena& a = *c.arena;
  op(c).forward(x, a.param(w_), d_.bias ? a.param(b_) : nullptr, y);
}

void LinearLayer::backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) {
  Arena& a = *c.arena;
  op(c).backward(x, a.param(w_), dy, dx, a.grad(w_), d_.bias ? a.grad(b_) : nullptr);
}

// ---------------------------------------------------------------- dropout

DropoutLayer::DropoutLayer(const std::string& nm, Shape3 i, float p, uint64_t salt) : p_(p), salt_(salt) {
  name = nm;
  in = out = i;
}

DropoutOp& DropoutLayer::op(RunCtx& c) {
  return ops_.get(c.N, [&] {
    DropoutDesc d;
    d.n = static_cast<size_t>(c.N) * in.size();
    d.p = p_;
    return c.backend->dropout(d);
  });
}

void DropoutLayer::forward(RunCtx& c, const float* x, float* y) {
  // a different stream per layer: mix the salt through one splitmix64 round
  uint64_t z = c.seed + (salt_ + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  op(c).forward(x, y, c.training, z ^ (z >> 31));
}

void DropoutLayer::backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) {
  if (dx) op(c).backward(dy, dx);
}

// ---------------------------------------------------------------- residual block

void ResidualBlock::add_main(std::unique_ptr<Layer> l) {
  SLN_CHECK_ARG(main_.empty() || main_.back()->out.size() == l->in.size(), name << ": main chain shapes do not chain");
  const bool alias = !main_.empty() && std::string(l->kind()) == "relu" &&
                     std::string(main_.back()->kind()) != "relu";
  main_alias_.push_back(alias ? main_alias_.back() : static_cast<int>(main_.size()));
  main_.push_back(std::move(l));
}

void ResidualBlock::add_shortcut(std::unique_ptr<Layer> l) { shortcut_.push_back(std::move(l)); }

void ResidualBlock::finish() {
  SLN_CHECK_ARG(!main_.empty() && std::string(main_.back()->kind()) != "relu",
                name << ": the main branch must end in a layer that does not read its output in backward");
  Shape3 m = main_out(), s = shortcut_out();
  SLN_CHECK_ARG(m.C == s.C && m.H == s.H && m.W == s.W,
                name << ": branches disagree: main " << m.C << "x" << m.H << "x" << m.W << ", shortcut " << s.C << "x"
                     << s.H << "x" << s.W);
  out = m;
}

void ResidualBlock::init(Arena& a, InitRng& rng) {
  for (auto& l : main_) l->init(a, rng);
  for (auto& l : shortcut_) l->init(a, rng);
}

void ResidualBlock::check_train_batch(int N) const {
  for (auto& l : main_) l->check_train_batch(N);
  for (auto& l : shortcut_) l->check_train_batch(N);
}

void ResidualBlock::trim(int keep) {
  for (auto& l : main_) l->trim(keep);
  for (auto& l : shortcut_) l->trim(keep);
  relu_.trim(keep);
  for (auto it = acts_.begin(); it != acts_.end();) it = (it->first == keep) ? std::next(it) : acts_.erase(it);
}

ResidualBlock::Acts& ResidualBlock::acts_for(Backend& be, int N) {
  auto it = acts_.find(N);
  if (it != acts_.end()) return it->second;
  Acts a;
  a.main.resize(main_.size());
  for (size_t i = 0; i + 1 < main_.size(); i++)
    if (main_alias_[i] == static_cast<int>(i))
      a.main[i] = Buffer(be, static_cast<size_t>(N) * main_[i]->out.size() * sizeof(float));
  a.shortcut.resize(shortcut_.size());
  for (size_t i = 0; i < shortcut_.size(); i++)
    a.shortcut[i] = Buffer(be, static_cast<size_t>(N) * shortcut_[i]->out.size() * sizeof(float));
  return acts_[N] = std::move(a);
}

// Eval: ping-pong between scratch slots 0/1 (main) and 2/3 (shortcut), by
// the parity of the buffer's owner (aliased ReLUs share their owner's slot).
float* ResidualBlock::main_buf(RunCtx& c, Acts* a, size_t i) {
  const int owner = main_alias_[i];
  if (a) return a->main[owner].f32();
  int rank = 0;   // number of distinct buffers before owner
  for (int j = 0; j < owner; j++) rank += main_alias_[j] == j;
  return c.scratch->get(rank % 2, static_cast<size_t>(c.N) * main_[owner]->out.size());
}

float* ResidualBlock::short_buf(RunCtx& c, Acts* a, size_t i) {
  if (a) return a->shortcut[i].f32();
  return c.scratch->get(2 + static_cast<int>(i % 2), static_cast<size_t>(c.N) * shortcut_[i]->out.size());
}

void ResidualBlock::forward(RunCtx& c, const float* x, float* y) {
  Acts* a = c.training ? &acts_for(*c.backend, c.N) : nullptr;
  const size_t L = main_.size();
  const float* cur = x;
  for (size_t i = 0; i < L; i++) {
    float* o = (i + 1 == L) ? y : main_buf(c, a, i);   // (N, main_[i]->out)
    main_[i]->forward(c, cur, o);
    cur = o;
  }
  const float* s = x;   // identity shortcut
  for (size_t i = 0; i < shortcut_.size(); i++) {
    float* o = short_buf(c, a, i);   // (N, shortcut_[i]->out)
    shortcut_[i]->forward(c, s, o);
    s = o;
  }
  const size_t n = static_cast<size_t>(c.N) * out.size();
  c.backend->add_inplace(y, s, n);
  ReluOp& r = relu_.get(c.N, [&] {
    EltwiseDesc d;
    d.n = n;
    return c.backend->relu(d);
  });
  r.forward(y, y);
}

void ResidualBlock::backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) {
  auto it = acts_.find(c.N);
  SLN_CHECK_ARG(c.training && it != acts_.end(), name << ": backward without a training forward of batch " << c.N);
  Acts* a = &it->second;
  const size_t n = static_cast<size_t>(c.N) * out.size();
  size_t most = std::max(in.size(), out.size());
  for (auto& l : main_) most = std::max(most, l->out.size());
  for (auto& l : shortcut_) most = std::max(most, l->out.size());
  most *= static_cast<size_t>(c.N);
  // slots 4: g = relu'(y) dy; 5/6: ping-pong inside a branch; 7: shortcut's dx
  float* g = c.scratch->get(4, n);   // (N, out)
  float* t0 = c.scratch->get(5, most);
  float* t1 = c.scratch->get(6, most);
  relu_.get(c.N, [&] {
    EltwiseDesc d;
    d.n = n;
    return c.backend->relu(d);
  }).backward(y, dy, g);
  auto chain_backward = [&](std::vector<std::unique_ptr<Layer>>& ls, auto out_of, float* dx_out) {
    const float* d = g;
    for (size_t i = ls.size(); i-- > 0;) {
      const float* xi = i == 0 ? x : out_of(i - 1);
      float* dxi = i == 0 ? dx_out : (d == t0 ? t1 : t0);
      ls[i]->backward(c, xi, out_of(i), d, dxi);
      d = dxi;
    }
  };
  const size_t L = main_.size();
  chain_backward(main_, [&](size_t i) -> const float* { return i + 1 == L ? y : main_buf(c, a, i); }, dx);
  if (!dx) {
    // first layer of the trunk: only the parameter gradients matter
    if (!shortcut_.empty())
      chain_backward(shortcut_, [&](size_t i) -> const float* { return short_buf(c, a, i); }, nullptr);
    return;
  }
  const size_t nx = static_cast<size_t>(c.N) * in.size();
  if (shortcut_.empty()) {
    c.backend->add_inplace(dx, g, nx);
  } else {
    float* ds = c.scratch->get(7, nx);   // (N, in)
    chain_backward(shortcut_, [&](size_t i) -> const float* { return short_buf(c, a, i); }, ds);
    c.backend->add_inplace(dx, ds, nx);
  }
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
