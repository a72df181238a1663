// Model: arena, heads, dispatch to the arch builders (core/arch_*.cpp),
// train_step and forward. Layer classes live in core/layers.h.
#include "sln/model.h"

#include <algorithm>
#include <cmath>

#include "core/layers.h"
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

std::vector<std::string> known_archs() { return {"smallcnn", "alexnet", "resnet18", "resnet50"}; }

Model::Model(const ModelSpec& spec, Backend& backend) : spec_(spec), backend_(&backend) {
  SLN_CHECK_ARG(!spec.num_classes.empty(), "model: numClasses must name at least one head");
  for (int k : spec.num_classes) SLN_CHECK_ARG(k >= 1, "model: every head needs at least 1 class, got " << k);
  SLN_CHECK_ARG(spec.input.C >= 1 && spec.input.H >= 1 && spec.input.W >= 1,
                "model: bad input shape " << spec.input.C << "x" << spec.input.H << "x" << spec.input.W);
  SLN_CHECK_ARG(spec.arch_spec == "big" || spec.arch == "alexnet",
                spec.arch << ": archspec '" << spec.arch_spec << "' applies only to alexnet (leave it unset or 'big')");
  SLN_CHECK_ARG(spec.small_input == -1 || spec.arch.rfind("resnet", 0) == 0 || spec.small_input == 0,
                spec.arch << ": the small-input stem exists only for the resnets");
  // small-input stem: explicit, or automatic for images of at most 64x64 (resnets only)
  if (spec_.small_input == -1)
    spec_.small_input = spec.arch.rfind("resnet", 0) == 0 && spec.input.H <= 64 && spec.input.W <= 64 ? 1 : 0;
  // dispatch: one builder per file (core/arch_<name>.cpp)
  if (spec.arch == "smallcnn") {
    feature_dim_ = build_smallcnn(arena_, spec_, trunk_);
  } else if (spec.arch == "alexnet") {
    feature_dim_ = build_alexnet(arena_, spec_, trunk_);
  } else if (spec.arch == "resnet18") {
    feature_dim_ = build_resnet(arena_, spec_, trunk_, 18);
  } else if (spec.arch == "resnet50") {
    feature_dim_ = build_resnet(arena_, spec_, trunk_, 50);
  } else {
    std::string known;
    for (auto& a : known_archs()) known += (known.empty() ? "" : ", ") + a;
    SLN_FAIL(InvalidArgument, "SLN_UNKNOWN_ARCH", "unknown arch '" << spec.arch << "' (known: " << known << ")");
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
  InitRng rng(spec.seed);
  for (auto& l : trunk_) l->init(arena_, rng);
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
    scratch_.clear();
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
  for (auto& l : trunk_) l->check_train_batch(N);
  check_images(images, N, spec_.input, "trainStep", backend_->num_threads());
  Plan& p = plan_for(N, true);
  RunCtx c{backend_, &arena_, N, true, spec_.seed * 0x2545F4914F6CDD1DULL + step_, &scratch_};
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
  RunCtx c{backend_, &arena_, N, training, spec_.seed * 0x2545F4914F6CDD1DULL + step_, &scratch_};
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

// ---------------------------------------------------------------- probe taps

std::vector<TrunkLayerInfo> Model::trunk_layers() const {
  std::vector<TrunkLayerInfo> r;
  for (auto& l : trunk_) r.push_back({l->name, l->kind(), l->out});
  return r;
}

void Model::forward_taps(const float* images, int N, const std::vector<int>& taps,
                         const std::function<void(size_t, const float*)>& sink) {
  SLN_CHECK_ARG(N >= 1, "forwardTaps: batch must hold at least one image");
  SLN_CHECK_ARG(!taps.empty(), "forwardTaps: no taps");
  int deepest = -1;
  for (int t : taps) {
    SLN_CHECK_ARG(t >= 0 && t < static_cast<int>(trunk_.size()),
                  "forwardTaps: tap " << t << " outside the trunk's " << trunk_.size() << " layers");
    deepest = std::max(deepest, t);
  }
  check_images(images, N, spec_.input, "forwardTaps", backend_->num_threads());
  Plan& p = plan_for(N, false);
  RunCtx c{backend_, &arena_, N, false, spec_.seed * 0x2545F4914F6CDD1DULL + step_, &scratch_};
  const float* x = images;
  for (int i = 0; i <= deepest; i++) {
    float* y = (i % 2 == 0) ? p.ping.data() : p.pong.data();
    trunk_[i]->forward(c, x, y);
    for (size_t t = 0; t < taps.size(); t++)
      if (taps[t] == i) sink(t, y);
    x = y;
  }
}

}  // namespace sln
