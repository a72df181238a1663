// Model: arena, layers, the smallcnn builder, train_step and forward.
#include "sln/model.h"

#include <algorithm>
#include <cmath>

#include "sln/errors.h"

namespace sln {

// ---------------------------------------------------------------- arena

size_t Arena::add(const std::string& name, std::vector<int> shape, bool is_param) {
  SLN_CHECK_ARG(params_.empty() && buffers_.empty(), "arena: add after finalize");
  SLN_CHECK_ARG(find(name) == nullptr, "arena: duplicate tensor name " << name);
  size_t n = 1;
  for (int s : shape) n *= static_cast<size_t>(s);
  TensorEntry e;
  e.name = name;
  e.shape = std::move(shape);
  e.size = n;
  e.is_param = is_param;
  size_t& cursor = is_param ? n_params_ : n_buffers_;
  e.offset = cursor;
  // 16-float alignment keeps every tensor on a 64-byte line for vector loads
  cursor += (n + 15) & ~size_t(15);
  entries_.push_back(e);
  return e.offset;
}

void Arena::finalize() {
  params_.assign(n_params_, 0.f);
  grads_.assign(n_params_, 0.f);
  momentum_.assign(n_params_, 0.f);
  buffers_.assign(n_buffers_, 0.f);
}

const TensorEntry* Arena::find(const std::string& name) const {
  for (auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

// Index of the first NaN/Inf in x[0, n), or n when all are finite.
static size_t first_nonfinite(const float* x, size_t n, int threads) {
  size_t first = n;
#pragma omp parallel for reduction(min : first) schedule(static) num_threads(threads)
  for (long i = 0; i < static_cast<long>(n); i++)
    if (!std::isfinite(x[i]) && static_cast<size_t>(i) < first) first = static_cast<size_t>(i);
  return first;
}

static void check_images(const float* images, int N, const Shape3& in, const char* what, int threads) {
  size_t per = in.size();
  size_t bad = first_nonfinite(images, per * N, threads);
  if (bad < per * N)
    SLN_FAIL(Range, "SLN_NONFINITE_INPUT", what << ": image " << bad / per << " of the batch holds NaN or Inf (value "
                                               << bad % per << " of " << per << "); nothing was changed");
}

// ---------------------------------------------------------------- init RNG

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
  void fill_normal(float* p, size_t n, double std) {
    for (size_t i = 0; i < n; i++) p[i] = static_cast<float>(normal() * std);
  }

 private:
  uint64_t s_;
  bool has_spare_ = false;
  double spare_ = 0;
};

// ---------------------------------------------------------------- layers

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

class ConvLayer final : public Layer {
 public:
  ConvLayer(Arena& a, const std::string& nm, Shape3 i, int K, int k, int stride, int pad, bool bias) {
    name = nm;
    in = i;
    d_.C = i.C; d_.H = i.H; d_.W = i.W; d_.K = K; d_.R = d_.S = k; d_.stride = stride; d_.pad = pad; d_.bias = bias;
    SLN_CHECK_ARG(d_.OH() >= 1 && d_.OW() >= 1, nm << ": input " << i.C << "x" << i.H << "x" << i.W
                                                   << " is too small for a " << k << "x" << k << " conv");
    out = {K, d_.OH(), d_.OW()};
    w_ = a.add(nm + ".weight", {K, i.C, k, k}, true);
    if (bias) b_ = a.add(nm + ".bias", {K}, true);
  }
  const char* kind() const override { return "conv2d"; }
  void init(Arena& a, InitRng& rng) {
    // reference (self-label models): normal(0, sqrt(2 / (kh * kw * out_channels)))
    double n = static_cast<double>(d_.R) * d_.S * d_.K;
    rng.fill_normal(a.param(w_), static_cast<size_t>(d_.K) * d_.C * d_.R * d_.S, std::sqrt(2.0 / n));
    if (d_.bias) std::fill_n(a.param(b_), d_.K, 0.f);
  }
  Conv2dOp& op(RunCtx& c) {
    return ops_.get(c.N, [&] {
      Conv2dDesc d = d_;
      d.N = c.N;
      return c.backend->conv2d(d);
    });
  }
  void forward(RunCtx& c, const float* x, float* y) override {
    Arena& a = *c.arena;
    op(c).forward(x, a.param(w_), d_.bias ? a.param(b_) : nullptr, y);
  }
  void backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) override {
    Arena& a = *c.arena;
    op(c).backward(x, a.param(w_), dy, dx, a.grad(w_), d_.bias ? a.grad(b_) : nullptr);
  }
  void trim(int keep) override { ops_.trim(keep); }

 private:
  Conv2dDesc d_;
  size_t w_ = 0, b_ = 0;
  OpCache<Conv2dOp> ops_;
};

class BatchNormLayer final : public Layer {
 public:
  BatchNormLayer(Arena& a, const std::string& nm, Shape3 i) {
    name = nm;
    in = out = i;
    g_ = a.add(nm + ".weight", {i.C}, true);
    b_ = a.add(nm + ".bias", {i.C}, true);
    rm_ = a.add(nm + ".running_mean", {i.C}, false);
    rv_ = a.add(nm + ".running_var", {i.C}, false);
  }
  const char* kind() const override { return "batchnorm2d"; }
  void init(Arena& a) {
    std::fill_n(a.param(g_), in.C, 1.f);
    std::fill_n(a.param(b_), in.C, 0.f);
    std::fill_n(a.buffer(rm_), in.C, 0.f);
    std::fill_n(a.buffer(rv_), in.C, 1.f);
  }
  BatchNormOp& op(RunCtx& c) {
    return ops_.get(c.N, [&] {
      BatchNormDesc d;
      d.N = c.N; d.C = in.C; d.H = in.H; d.W = in.W;
      return c.backend->batchnorm(d);
    });
  }
  void forward(RunCtx& c, const float* x, float* y) override {
    Arena& a = *c.arena;
    op(c).forward(x, a.param(g_), a.param(b_), a.buffer(rm_), a.buffer(rv_), y, c.training);
  }
  void backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) override {
    Arena& a = *c.arena;
    op(c).backward(x, a.param(g_), dy, dx, a.grad(g_), a.grad(b_));
  }
  void trim(int keep) override { ops_.trim(keep); }

 private:
  size_t g_ = 0, b_ = 0, rm_ = 0, rv_ = 0;
  OpCache<BatchNormOp> ops_;
};

class ReluLayer final : public Layer {
 public:
  ReluLayer(const std::string& nm, Shape3 i) {
    name = nm;
    in = out = i;
  }
  const char* kind() const override { return "relu"; }
  ReluOp& op(RunCtx& c) {
    return ops_.get(c.N, [&] {
      EltwiseDesc d;
      d.n = static_cast<size_t>(c.N) * in.size();
      return c.backend->relu(d);
    });
  }
  void forward(RunCtx& c, const float* x, float* y) override { op(c).forward(x, y); }
  void backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) override {
    if (dx) op(c).backward(y, dy, dx);
  }
  void trim(int keep) override { ops_.trim(keep); }

 private:
  OpCache<ReluOp> ops_;
};

class PoolLayer final : public Layer {
 public:
  // global: average over the whole H x W (kernel = H, requires H == W)
  PoolLayer(const std::string& nm, Shape3 i, bool max, int kernel, int stride, int pad)
      : max_(max) {
    name = nm;
    in = i;
    d_.C = i.C; d_.H = i.H; d_.W = i.W; d_.kernel = kernel; d_.stride = stride; d_.pad = pad;
    SLN_CHECK_ARG(d_.OH() >= 1 && d_.OW() >= 1, nm << ": input " << i.H << "x" << i.W << " is too small for pooling "
                                                   << kernel << "/" << stride);
    out = {i.C, d_.OH(), d_.OW()};
  }
  const char* kind() const override { return max_ ? "maxpool2d" : "avgpool2d"; }
  Pool2dOp& op(RunCtx& c) {
    return ops_.get(c.N, [&] {
      Pool2dDesc d = d_;
      d.N = c.N;
      return max_ ? c.backend->maxpool2d(d) : c.backend->avgpool2d(d);
    });
  }
  void forward(RunCtx& c, const float* x, float* y) override { op(c).forward(x, y, c.training); }
  void backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) override {
    if (dx) op(c).backward(dy, dx);
  }
  void trim(int keep) override { ops_.trim(keep); }

 private:
  bool max_;
  Pool2dDesc d_;
  OpCache<Pool2dOp> ops_;
};

// ---------------------------------------------------------------- heads

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

// Activations of one batch size and mode. Training keeps every layer's output
// for backward; eval only ping-pongs between two buffers.
struct Model::Plan {
  int N = 0;
  bool training = false;
  std::vector<std::vector<float>> acts;        // training: one per trunk layer
  std::vector<float> ping, pong;               // eval
  std::vector<float> grad_a, grad_b;           // backward ping-pong, max activation size
  std::vector<std::vector<float>> logits, dlogits;   // per head (N, K_h)
  std::vector<float> dfeat, dfeat_tmp;         // (N, D)
  const float* features = nullptr;             // (N, D) after run_trunk
};

// ---------------------------------------------------------------- builder

static void build_smallcnn(Model* m, Arena& a, const ModelSpec& s, std::vector<std::unique_ptr<Layer>>& trunk,
                           int& feature_dim, InitRng& rng) {
  // conv3x3(C->32) BN ReLU, conv3x3(32->32) BN ReLU, maxpool 2;
  // conv3x3(32->64) BN ReLU, conv3x3(64->64) BN ReLU, maxpool 2;
  // conv3x3(64->128) BN ReLU; global average pool -> 128.
  // Names follow an nn.Sequential called `features`.
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
    auto p = std::make_unique<PoolLayer>("features." + std::to_string(idx++), cur, true, 2, 2, 0);
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
  SLN_CHECK_ARG(cur.H == cur.W, "smallcnn: global pooling needs a square feature map, got " << cur.H << "x" << cur.W);
  auto gap = std::make_unique<PoolLayer>("avgpool", cur, false, cur.H, 1, 0);
  cur = gap->out;
  trunk.push_back(std::move(gap));
  feature_dim = static_cast<int>(cur.size());
}

std::vector<std::string> known_archs() { return {"smallcnn"}; }

Model::Model(const ModelSpec& spec, Backend& backend) : spec_(spec), backend_(&backend) {
  SLN_CHECK_ARG(!spec.num_classes.empty(), "model: numClasses must name at least one head");
  for (int k : spec.num_classes) SLN_CHECK_ARG(k >= 1, "model: every head needs at least 1 class, got " << k);
  SLN_CHECK_ARG(spec.input.C >= 1 && spec.input.H >= 1 && spec.input.W >= 1,
                "model: bad input shape " << spec.input.C << "x" << spec.input.H << "x" << spec.input.W);
  InitRng rng(spec.seed);
  if (spec.arch == "smallcnn") {
    SLN_CHECK_ARG(spec.input.H >= 4 && spec.input.W >= 4,
                  "smallcnn: input must be at least 4x4, got " << spec.input.H << "x" << spec.input.W);
    build_smallcnn(this, arena_, spec, trunk_, feature_dim_, rng);
  } else {
    SLN_FAIL(InvalidArgument, "SLN_UNKNOWN_ARCH", "unknown arch '" << spec.arch << "' (known: smallcnn)");
  }
  // heads: one head is `top_layer`, several are `top_layer0..`
  for (size_t h = 0; h < spec.num_classes.size(); h++) {
    auto head = std::make_unique<Head>();
    head->name = spec.num_classes.size() == 1 ? "top_layer" : "top_layer" + std::to_string(h);
    head->K = spec.num_classes[h];
    head->w = arena_.add(head->name + ".weight", {head->K, feature_dim_}, true);
    head->b = arena_.add(head->name + ".bias", {head->K}, true);
    heads_.push_back(std::move(head));
  }
  arena_.finalize();
  // initialisation in layer order, then heads: linear normal(0, 0.01), bias 0
  for (auto& l : trunk_) {
    if (auto* c = dynamic_cast<ConvLayer*>(l.get())) c->init(arena_, rng);
    if (auto* b = dynamic_cast<BatchNormLayer*>(l.get())) b->init(arena_);
  }
  for (auto& h : heads_) {
    rng.fill_normal(arena_.param(h->w), static_cast<size_t>(h->K) * feature_dim_, 0.01);
    std::fill_n(arena_.param(h->b), h->K, 0.f);
  }
}

Model::~Model() = default;

Model::Plan& Model::plan_for(int N, bool training) {
  auto key = std::make_pair(N, training);
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  // Bound memory: keep at most 3 plans (a training size, its last short batch,
  // an inference size); drop the others and their cached ops.
  if (plans_.size() >= 3) {
    plans_.clear();
    for (auto& l : trunk_) l->trim(N);
    for (auto& h : heads_) h->ops.trim(N);
  }
  auto p = std::make_unique<Plan>();
  p->N = N;
  p->training = training;
  size_t max_act = spec_.input.size();
  for (auto& l : trunk_) max_act = std::max(max_act, l->out.size());
  max_act *= static_cast<size_t>(N);
  if (training) {
    for (auto& l : trunk_) p->acts.emplace_back(static_cast<size_t>(N) * l->out.size());
    p->grad_a.resize(max_act);
    p->grad_b.resize(max_act);
    p->dfeat.resize(static_cast<size_t>(N) * feature_dim_);
    p->dfeat_tmp.resize(static_cast<size_t>(N) * feature_dim_);
  } else {
    p->ping.resize(max_act);
    p->pong.resize(max_act);
  }
  for (auto& h : heads_) {
    p->logits.emplace_back(static_cast<size_t>(N) * h->K);
    if (training) p->dlogits.emplace_back(static_cast<size_t>(N) * h->K);
  }
  Plan& ref = *p;
  plans_[key] = std::move(p);
  return ref;
}

void Model::run_trunk(Plan& p, RunCtx& c, const float* images) {
  const float* x = images;
  for (size_t i = 0; i < trunk_.size(); i++) {
    float* y = p.training ? p.acts[i].data() : ((i % 2 == 0) ? p.ping.data() : p.pong.data());
    trunk_[i]->forward(c, x, y);
    x = y;
  }
  p.features = x;
}

StepResult Model::train_step(const float* images, int N, const std::vector<const int32_t*>& labels,
                             const StepOptions& opt) {
  SLN_CHECK_ARG(N >= 1, "trainStep: batch must hold at least one image");
  SLN_CHECK_ARG(labels.size() == heads_.size(),
                "trainStep: expected " << heads_.size() << " label arrays (one per head), got " << labels.size());
  // BN in training mode needs more than one value per channel, as PyTorch
  if (N == 1) {
    for (auto& l : trunk_)
      SLN_CHECK_ARG(std::string(l->kind()) != "batchnorm2d" || l->in.H * l->in.W > 1,
                    "trainStep: batch norm in training mode needs more than 1 value per channel (batch of 1)");
  }
  check_images(images, N, spec_.input, "trainStep", backend_->num_threads());
  Plan& p = plan_for(N, true);
  RunCtx c{backend_, &arena_, N, true, spec_.seed * 0x2545F4914F6CDD1DULL + step_};
  run_trunk(p, c, images);
  const int D = feature_dim_;
  StepResult r;
  const float scale = 1.0f / static_cast<float>(heads_.size());   // loss = mean over heads
  for (size_t h = 0; h < heads_.size(); h++) {
    Head& hd = *heads_[h];
    LinearOp& lin = hd.op(c, D);
    lin.forward(p.features, arena_.param(hd.w), arena_.param(hd.b), p.logits[h].data());
    double l = backend_->cross_entropy(p.logits[h].data(), labels[h], N, hd.K, p.dlogits[h].data(), scale);
    if (!std::isfinite(l))
      SLN_FAIL(Range, "SLN_NONFINITE", "trainStep: the loss of head " << h << " is " << l
                                          << " (NaN or Inf in the logits: check the learning rate and the input); "
                                          << "the parameters were not updated");
    r.head_losses.push_back(l);
    r.loss += l;
  }
  r.loss /= static_cast<double>(heads_.size());
  // backward: heads, summing their feature gradients
  for (size_t h = 0; h < heads_.size(); h++) {
    Head& hd = *heads_[h];
    float* dst = h == 0 ? p.dfeat.data() : p.dfeat_tmp.data();
    hd.op(c, D).backward(p.features, arena_.param(hd.w), p.dlogits[h].data(), dst, arena_.grad(hd.w),
                         arena_.grad(hd.b));
    if (h > 0) backend_->add_inplace(p.dfeat.data(), p.dfeat_tmp.data(), static_cast<size_t>(N) * D);
  }
  // trunk in reverse
  const float* dy = p.dfeat.data();
  for (size_t i = trunk_.size(); i-- > 0;) {
    const float* x = i == 0 ? images : p.acts[i - 1].data();
    float* dx = i == 0 ? nullptr : ((dy == p.grad_a.data()) ? p.grad_b.data() : p.grad_a.data());
    trunk_[i]->backward(c, x, p.acts[i].data(), dy, dx);
    dy = dx;
  }
  // a non-finite gradient (overflow) must not poison the parameters
  size_t bad = first_nonfinite(arena_.grads().data(), arena_.grads().size(), backend_->num_threads());
  if (bad < arena_.grads().size()) {
    std::string where = "?";
    for (auto& e : arena_.entries())
      if (e.is_param && bad >= e.offset && bad < e.offset + e.size) where = e.name;
    SLN_FAIL(Range, "SLN_NONFINITE_GRADIENT", "trainStep: the gradient of " << where << " is NaN or Inf (diverging? "
                                                 << "lower the learning rate); the parameters were not updated");
  }
  // one SGD update over the whole parameter arena
  backend_->sgd_step(arena_.params().data(), arena_.grads().data(), arena_.momentum().data(), arena_.params().size(),
                     opt.lr, opt.momentum, opt.weight_decay, !arena_.has_momentum);
  arena_.has_momentum = true;
  step_++;
  return r;
}

void Model::forward(const float* images, int N, bool training, OutputKind kind, std::vector<float>& out) {
  SLN_CHECK_ARG(N >= 1, "forward: batch must hold at least one image");
  check_images(images, N, spec_.input, "forward", backend_->num_threads());
  Plan& p = plan_for(N, training);
  RunCtx c{backend_, &arena_, N, training, spec_.seed * 0x2545F4914F6CDD1DULL + step_};
  run_trunk(p, c, images);
  const int D = feature_dim_;
  if (kind == OutputKind::Features) {
    out.assign(p.features, p.features + static_cast<size_t>(N) * D);
    return;
  }
  size_t total = 0;
  for (auto& h : heads_) total += static_cast<size_t>(N) * h->K;
  out.resize(total);
  size_t off = 0;
  for (size_t h = 0; h < heads_.size(); h++) {
    Head& hd = *heads_[h];
    float* y = out.data() + off;
    hd.op(c, D).forward(p.features, arena_.param(hd.w), arena_.param(hd.b), y);
    if (kind == OutputKind::Probs) {
      for (int n = 0; n < N; n++) {
        float* row = y + static_cast<size_t>(n) * hd.K;
        float mx = *std::max_element(row, row + hd.K);
        double s = 0;
        for (int k = 0; k < hd.K; k++) s += std::exp(static_cast<double>(row[k] - mx));
        for (int k = 0; k < hd.K; k++) row[k] = static_cast<float>(std::exp(static_cast<double>(row[k] - mx)) / s);
      }
    }
    off += static_cast<size_t>(N) * hd.K;
  }
}

}  // namespace sln
