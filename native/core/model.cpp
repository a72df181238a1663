// Model: arena, heads, dispatch to the arch builders (core/arch_*.cpp),
// train_step and forward. Layer classes live in core/layers.h.
#include "sln/model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>

#include "core/layers.h"
#include "core/model_internal.h"
#include "core/profile.h"
#include "sln/errors.h"

namespace sln {

// ---------------------------------------------------------------- arena

size_t Arena::add(const std::string& name, std::vector<int> shape, bool is_param) {
  SLN_CHECK_ARG(be_ == nullptr, "arena: add after finalize");
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

void Arena::finalize(Backend& backend) {
  be_ = &backend;
  params_ = Buffer(backend, n_params_ * sizeof(float));
  buffers_ = Buffer(backend, n_buffers_ * sizeof(float));
  backend.zero(params_.data(), n_params_ * sizeof(float));
  backend.zero(buffers_.data(), n_buffers_ * sizeof(float));
  if (!backend.host_memory()) {
    init_params_.assign(n_params_, 0.f);
    init_buffers_.assign(n_buffers_, 0.f);
  }
}

float* Arena::host_param(size_t off) {
  return be_->host_memory() ? param(off) : init_params_.data() + off;
}

float* Arena::host_buffer(size_t off) {
  return be_->host_memory() ? buffer(off) : init_buffers_.data() + off;
}

void Arena::upload_init() {
  version_++;
  if (be_->host_memory()) return;
  be_->upload(params_.data(), init_params_.data(), n_params_ * sizeof(float));
  be_->upload(buffers_.data(), init_buffers_.data(), n_buffers_ * sizeof(float));
  std::vector<float>().swap(init_params_);
  std::vector<float>().swap(init_buffers_);
}

float* Arena::grads() {
  if (!grads_ready_) {
    grads_ = Buffer(*be_, n_params_ * sizeof(float));
    be_->zero(grads_.data(), n_params_ * sizeof(float));
    grads_ready_ = true;
  }
  return grads_.f32();
}

float* Arena::momentum() {
  if (!momentum_ready_) {
    momentum_ = Buffer(*be_, n_params_ * sizeof(float));
    be_->zero(momentum_.data(), n_params_ * sizeof(float));
    momentum_ready_ = true;
  }
  return momentum_.f32();
}

void Arena::zero_momentum() { be_->zero(momentum(), n_params_ * sizeof(float)); }

void Arena::read(const TensorEntry& e, float* host, bool momentum_buffer) {
  const float* src = momentum_buffer ? momentum() + e.offset : data_of(e);
  be_->download(host, src, e.size * sizeof(float));
}

void Arena::write(const TensorEntry& e, const float* host, bool momentum_buffer) {
  version_++;
  float* dst = momentum_buffer ? momentum() + e.offset : data_of(e);
  be_->upload(dst, host, e.size * sizeof(float));
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

void check_images(const float* images, int N, const Shape3& in, const char* what, int threads) {
  size_t per = in.size();
  size_t bad = first_nonfinite(images, per * N, threads);
  if (bad < per * N)
    SLN_FAIL(Range, "SLN_NONFINITE_INPUT", what << ": image " << bad / per << " of the batch holds NaN or Inf (value "
                                               << bad % per << " of " << per << "); nothing was changed");
}

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
  assign_layouts();
  for (auto& l : trunk_) l->set_bf16(spec.bf16);
  arena_.finalize(backend);
  scratch_.bind(backend);
  // initialisation on the host, in layer order, then heads: linear normal(0,
  // 0.01), bias 0; then one upload (nothing to copy when the backend's memory
  // is host memory: host_param() is the arena itself)
  InitRng rng(spec.seed);
  for (auto& l : trunk_) l->init(arena_, rng);
  for (auto& h : heads_) {
    rng.fill_normal(arena_.host_param(h->w), static_cast<size_t>(h->K) * feature_dim_, 0.01);
    std::fill_n(arena_.host_param(h->b), h->K, 0.f);
  }
  arena_.upload_init();
}

Model::~Model() = default;

void Model::assign_layouts() {
  const bool ok = backend_->blocked_layouts();
  Layout cur = Layout::plain;   // the images
  reorder_in_.assign(trunk_.size(), 0);
  for (size_t i = 0; i < trunk_.size(); i++) {
    Layer& l = *trunk_[i];
    const Layout want = l.input_layout(cur, ok);
    reorder_in_[i] = want != cur;
    l.set_layouts(want, ok);
    cur = l.out_layout;
  }
  features_layout_ = cur;
  // a ReLU right after a layer that can apply it (the CPU's blocked batch norm)
  // runs inside that layer; SELFLABEL_FUSE=0 keeps them apart (to compare)
  const char* e = std::getenv("SELFLABEL_FUSE");
  const bool fuse = !(e && std::string(e) == "0");
  for (size_t i = 0; i < trunk_.size(); i++) {
    const bool next_relu = i + 1 < trunk_.size() && std::string(trunk_[i + 1]->kind()) == "relu" && !reorder_in_[i + 1];
    const bool f = trunk_[i]->fuse_relu(fuse && next_relu);
    if (i + 1 < trunk_.size()) trunk_[i + 1]->fused_into_prev = f;
  }
}

// The output buffer of trunk layer i in a training plan (a fused ReLU's is its batch norm's).
float* Model::act(Plan& p, size_t i) {
  while (trunk_[i]->fused_into_prev) i--;
  return p.acts[i].f32();
}

const float* Model::layer_input(Plan& p, size_t i, const float* x) {
  if (!reorder_in_[i]) return x;
  const Layer& l = *trunk_[i];
  const Layout from = i == 0 ? Layout::plain : trunk_[i - 1]->out_layout;
  backend_->reorder(x, from, p.reord[i].f32(), l.in_layout, p.N, l.in.C, l.in.H, l.in.W);
  return p.reord[i].f32();
}

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
  Backend& be = *backend_;
  auto floats = [&](size_t n) { return Buffer(be, n * sizeof(float)); };
  auto p = std::make_unique<Plan>();
  p->N = N;
  p->training = training;
  size_t max_act = spec_.input.size();
  for (auto& l : trunk_) max_act = std::max(max_act, l->out.size());
  max_act *= static_cast<size_t>(N);
  if (training) {
    for (auto& l : trunk_) p->acts.push_back(l->fused_into_prev ? Buffer() : floats(static_cast<size_t>(N) * l->out.size()));
    p->grad_a = floats(max_act);
    p->grad_b = floats(max_act);
    p->dfeat = floats(static_cast<size_t>(N) * feature_dim_);
    p->dfeat_tmp = floats(static_cast<size_t>(N) * feature_dim_);
  } else {
    p->ping = floats(max_act);
    p->pong = floats(max_act);
  }
  p->reord.resize(trunk_.size());
  bool any = false;
  for (size_t i = 0; i < trunk_.size(); i++)
    if (reorder_in_[i]) p->reord[i] = floats(static_cast<size_t>(N) * trunk_[i]->in.size()), any = true;
  if (training && (any || features_layout_ != Layout::plain)) p->grad_c = floats(max_act);
  if (features_layout_ != Layout::plain) p->feat_plain = floats(static_cast<size_t>(N) * feature_dim_);
  for (auto& h : heads_) {
    p->logits.push_back(floats(static_cast<size_t>(N) * h->K));
    if (training) p->dlogits.push_back(floats(static_cast<size_t>(N) * h->K));
    if (training && !be.host_memory()) p->labels.emplace_back(be, static_cast<size_t>(N) * sizeof(int32_t));
  }
  if (!be.host_memory()) p->images = floats(static_cast<size_t>(N) * spec_.input.size());
  Plan& ref = *p;
  plans_[key] = std::move(p);
  return ref;
}

// The context of one pass over plan p's batch; the dropout seed follows the step count.
RunCtx Model::run_ctx(Plan& p, bool training) {
  return RunCtx{backend_, &arena_, p.N, training, spec_.seed * 0x2545F4914F6CDD1DULL + step_, &scratch_};
}

// The batch in the backend's memory: in place on the CPU, else one upload.
const float* Model::stage_images(Plan& p, const float* images) {
  if (backend_->host_memory()) return images;
  backend_->upload(p.images.data(), images, static_cast<size_t>(p.N) * spec_.input.size() * sizeof(float));
  return p.images.f32();
}

// Index of the first NaN/Inf gradient, or num_params() when all are finite.
// Host memory: one threaded scan. Device memory: a dot product of the gradient
// arena with itself through the backend's Linear op (1 x P times P x 1, one
// float downloaded instead of 4 P bytes): a NaN or Inf anywhere makes it
// non-finite. It can also overflow for huge but finite gradients (|g| around
// 1e19 / sqrt(P)), so a non-finite sum is confirmed by downloading the arena
// and scanning it exactly (the rare path; it also names the tensor).
size_t Model::first_nonfinite_grad() {
  const size_t P = arena_.num_params();
  float* g = arena_.grads();
  if (backend_->host_memory()) return first_nonfinite(g, P, backend_->num_threads());
  if (P == 0) return 0;
  if (!grad_dot_) {
    LinearDesc d;
    d.N = 1, d.in = static_cast<int>(P), d.out = 1, d.bias = false;
    SLN_CHECK_ARG(P < (size_t(1) << 31), "model: too many parameters for the gradient check (" << P << ")");
    grad_dot_ = backend_->linear(d);
    grad_dot_out_ = Buffer(*backend_, sizeof(float));
  }
  grad_dot_->forward(g, g, nullptr, grad_dot_out_.f32());
  float s = 0;
  backend_->download(&s, grad_dot_out_.data(), sizeof(float));
  if (std::isfinite(s)) return P;
  std::vector<float> host(P);
  backend_->download(host.data(), g, P * sizeof(float));
  return first_nonfinite(host.data(), P, backend_->num_threads());
}

void Model::run_trunk(Plan& p, RunCtx& c, const float* images) {
  const float* x = images;
  for (size_t i = 0; i < trunk_.size(); i++) {
    if (trunk_[i]->fused_into_prev && !c.no_fuse) continue;   // done by the layer before: x is its output
    float* y = p.training ? act(p, i) : (x == p.ping.f32() ? p.pong.f32() : p.ping.f32());
    {
      prof::Scope ps(trunk_[i]->kind(), p.training ? "fwd" : "fwd-eval", std::string(trunk_[i]->kind()) != "residual");
      trunk_[i]->forward(c, layer_input(p, i, x), y);
    }
    x = y;
  }
  if (features_layout_ != Layout::plain) {
    const Shape3& s = trunk_.back()->out;
    backend_->reorder(x, features_layout_, p.feat_plain.f32(), Layout::plain, p.N, s.C, s.H, s.W);
    x = p.feat_plain.f32();
  }
  p.features = x;
}

void Model::check_step_args(int N, const std::vector<const int32_t*>& labels) {
  SLN_CHECK_ARG(N >= 1, "trainStep: batch must hold at least one image");
  SLN_CHECK_ARG(labels.size() == heads_.size(),
                "trainStep: expected " << heads_.size() << " label arrays (one per head), got " << labels.size());
  // BN in training mode needs more than one value per channel, as PyTorch
  for (auto& l : trunk_) l->check_train_batch(N);
}

StepResult Model::train_step(const float* images, int N, const std::vector<const int32_t*>& labels,
                             const StepOptions& opt) {
  check_step_args(N, labels);
  check_images(images, N, spec_.input, "trainStep", backend_->num_threads());   // host input
  Plan& p = plan_for(N, true);
  const float* x0 = stage_images(p, images);   // (N, C, H, W) in the backend's memory
  return step_from(p, x0, labels, opt);
}

StepResult Model::train_step_fill(int N, const std::function<void(float* x)>& fill,
                                  const std::vector<const int32_t*>& labels, const StepOptions& opt) {
  check_step_args(N, labels);
  Plan& p = plan_for(N, true);
  // device backends have the input buffer already (stage_images uploads into
  // it); on the CPU it is allocated here, on first use
  const size_t n_in = static_cast<size_t>(N) * spec_.input.size();
  if (!p.images.data()) p.images = Buffer(*backend_, n_in * sizeof(float));
  float* x0 = p.images.f32();   // (N, C, H, W) in the backend's memory
  fill(x0);
  // host memory: the same NaN/Inf check as train_step (on a device the input
  // comes from uint8 pixels and validated, finite parameters)
  if (backend_->host_memory()) check_images(x0, N, spec_.input, "trainStep", backend_->num_threads());
  return step_from(p, x0, labels, opt);
}

StepResult Model::step_from(Plan& p, const float* x0, const std::vector<const int32_t*>& labels,
                            const StepOptions& opt) {
  prof::Scope whole("=train step", "whole");
  Backend& be = *backend_;
  const int N = p.N;
  RunCtx c = run_ctx(p, true);
  c.dist = opt.dist;
  c.row_offset = opt.row_offset;
  run_trunk(p, c, x0);
  const int D = feature_dim_;
  StepResult r;
  std::optional<prof::Scope> heads_scope;
  heads_scope.emplace("heads+loss", "fwd+bwd");
  // loss = mean over heads (times this rank's share of the global batch when distributed)
  const float scale = opt.loss_scale / static_cast<float>(heads_.size());
  for (size_t h = 0; h < heads_.size(); h++) {
    Head& hd = *heads_[h];
    LinearOp& lin = hd.op(c, D);
    lin.forward(p.features, arena_.param(hd.w), arena_.param(hd.b), p.logits[h].f32());
    const int32_t* lab = labels[h];   // (N)
    if (!be.host_memory()) {
      be.upload(p.labels[h].data(), labels[h], static_cast<size_t>(N) * sizeof(int32_t));
      lab = static_cast<const int32_t*>(p.labels[h].data());
    }
    double l = be.cross_entropy(p.logits[h].f32(), lab, N, hd.K, p.dlogits[h].f32(), scale);
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
    float* dst = h == 0 ? p.dfeat.f32() : p.dfeat_tmp.f32();
    hd.op(c, D).backward(p.features, arena_.param(hd.w), p.dlogits[h].f32(), dst, arena_.grad(hd.w),
                         arena_.grad(hd.b));
    if (h > 0) be.add_inplace(p.dfeat.f32(), p.dfeat_tmp.f32(), static_cast<size_t>(N) * D);
  }
  heads_scope.reset();
  // trunk in reverse
  // (each layer's dy in its output layout, its dx in its input layout; a
  // gradient crossing a reorder goes back through grad_c)
  const float* dy = p.dfeat.f32();
  if (features_layout_ != Layout::plain) {
    const Shape3& s = trunk_.back()->out;
    be.reorder(dy, Layout::plain, p.grad_c.f32(), features_layout_, N, s.C, s.H, s.W);
    dy = p.grad_c.f32();
  }
  for (size_t i = trunk_.size(); i-- > 0;) {
    if (trunk_[i]->fused_into_prev) continue;   // the layer before takes dy of the fused ReLU's output
    const float* x = reorder_in_[i] ? p.reord[i].f32() : i == 0 ? x0 : act(p, i - 1);
    float* dx = i == 0 ? nullptr : ((dy == p.grad_a.f32()) ? p.grad_b.f32() : p.grad_a.f32());
    {
      prof::Scope ps(trunk_[i]->kind(), "bwd", std::string(trunk_[i]->kind()) != "residual");
      trunk_[i]->backward(c, x, act(p, i), dy, dx);
    }
    if (dx && reorder_in_[i]) {
      prof::Scope ps("reorder", "bwd");
      const Layer& l = *trunk_[i];
      be.reorder(dx, l.in_layout, p.grad_c.f32(), trunk_[i - 1]->out_layout, N, l.in.C, l.in.H, l.in.W);
      dx = p.grad_c.f32();
    }
    dy = dx;
  }
  prof::Scope tail("grad check+sgd", "step");
  const size_t P = arena_.num_params();
  // distributed: the global batch's gradient (before the check, so every rank sees the same)
  if (opt.dist && opt.dist->grad_sum) opt.dist->grad_sum(arena_.grads(), P);
  // a non-finite gradient (overflow) must not poison the parameters
  size_t bad = first_nonfinite_grad();
  if (bad < P) {
    std::string where = "?";
    for (auto& e : arena_.entries())
      if (e.is_param && bad >= e.offset && bad < e.offset + e.size) where = e.name;
    SLN_FAIL(Range, "SLN_NONFINITE_GRADIENT", "trainStep: the gradient of " << where << " is NaN or Inf (diverging? "
                                                 << "lower the learning rate); the parameters were not updated");
  }
  // one SGD update over the whole parameter arena
  be.sgd_step(arena_.params(), arena_.grads(), arena_.momentum(), P, opt.lr, opt.momentum, opt.weight_decay,
              !arena_.has_momentum);
  arena_.has_momentum = true;
  arena_.touch();
  step_++;
  return r;
}

// Checks, stages and runs the trunk on a batch; the plan holds the features.
Model::Plan& Model::forward_plan(const float* images, int N, bool training, const char* what, RunCtx& c) {
  SLN_CHECK_ARG(N >= 1, what << ": batch must hold at least one image");
  check_images(images, N, spec_.input, what, backend_->num_threads());   // host input
  Plan& p = plan_for(N, training);
  const float* x0 = stage_images(p, images);
  if (training) arena_.touch();   // batch norm updates its running statistics
  c = run_ctx(p, training);
  run_trunk(p, c, x0);
  return p;
}

void Model::run_heads(Plan& p, RunCtx& c) {
  for (size_t h = 0; h < heads_.size(); h++) {
    Head& hd = *heads_[h];
    hd.op(c, feature_dim_).forward(p.features, arena_.param(hd.w), arena_.param(hd.b), p.logits[h].f32());
  }
}

void Model::forward(const float* images, int N, bool training, OutputKind kind, std::vector<float>& out) {
  RunCtx c;
  Plan& p = forward_plan(images, N, training, "forward", c);
  const int D = feature_dim_;
  const size_t nd = static_cast<size_t>(N) * D;
  if (kind == OutputKind::Features) {
    out.resize(nd);
    backend_->download(out.data(), p.features, nd * sizeof(float));
    return;
  }
  size_t off = kind == OutputKind::FeaturesAndLogits ? nd : 0;
  size_t total = off;
  for (auto& h : heads_) total += static_cast<size_t>(N) * h->K;
  out.resize(total);
  if (off) backend_->download(out.data(), p.features, nd * sizeof(float));
  run_heads(p, c);
  for (size_t h = 0; h < heads_.size(); h++) {
    Head& hd = *heads_[h];
    const size_t n = static_cast<size_t>(N) * hd.K;
    float* y = out.data() + off;   // (N, K_h) host
    backend_->download(y, p.logits[h].data(), n * sizeof(float));
    if (kind == OutputKind::Probs) {   // on the host, after the download
      for (int i = 0; i < N; i++) {
        float* row = y + static_cast<size_t>(i) * hd.K;
        float mx = *std::max_element(row, row + hd.K);
        double s = 0;
        for (int k = 0; k < hd.K; k++) s += std::exp(static_cast<double>(row[k] - mx));
        for (int k = 0; k < hd.K; k++) row[k] = static_cast<float>(std::exp(static_cast<double>(row[k] - mx)) / s);
      }
    }
    off += n;
  }
}

void Model::forward_argmax(const float* images, int N, bool training, std::vector<int32_t>& out,
                           std::vector<float>* features) {
  RunCtx c;
  Plan& p = forward_plan(images, N, training, "forward", c);
  if (features) {
    features->resize(static_cast<size_t>(N) * feature_dim_);
    backend_->download(features->data(), p.features, features->size() * sizeof(float));
  }
  run_heads(p, c);
  out.resize(static_cast<size_t>(N) * heads_.size());
  std::vector<float> host;   // device backends: the logits, downloaded
  for (size_t h = 0; h < heads_.size(); h++) {
    const int K = heads_[h]->K;
    const float* z = p.logits[h].f32();
    if (!backend_->host_memory()) {
      host.resize(static_cast<size_t>(N) * K);
      backend_->download(host.data(), z, host.size() * sizeof(float));
      z = host.data();
    }
    int32_t* dst = out.data() + h * static_cast<size_t>(N);
    // first maximum wins (a NaN never compares greater)
    for (int i = 0; i < N; i++) {
      const float* row = z + static_cast<size_t>(i) * K;
      int best = 0;
      for (int k = 1; k < K; k++)
        if (row[k] > row[best]) best = k;
      dst[i] = best;
    }
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
  const float* x = stage_images(p, images);
  RunCtx c = run_ctx(p, false);
  // a tap on a layer whose ReLU it applies (fused) wants the output before the ReLU
  for (int t : taps)
    if (t + 1 < static_cast<int>(trunk_.size()) && trunk_[t + 1]->fused_into_prev) c.no_fuse = true;
  std::vector<float> host;   // device backends: the tapped activation, downloaded for the sink
  std::vector<float> plain;   // a tapped activation in a blocked layout, reordered for the sink
  for (int i = 0; i <= deepest; i++) {
    float* y;
    if (trunk_[i]->fused_into_prev && !c.no_fuse) {
      y = const_cast<float*>(x);   // the layer before applied this ReLU: x is its output
    } else {
      y = x == p.ping.f32() ? p.pong.f32() : p.ping.f32();
      trunk_[i]->forward(c, layer_input(p, i, x), y);
    }
    for (size_t t = 0; t < taps.size(); t++) {
      if (taps[t] != i) continue;
      const Layer& l = *trunk_[i];
      if (l.out_layout != Layout::plain) {
        plain.resize(static_cast<size_t>(N) * l.out.size());
        backend_->reorder(y, l.out_layout, plain.data(), Layout::plain, N, l.out.C, l.out.H, l.out.W);
        sink(t, plain.data());
      } else if (backend_->host_memory()) {
        sink(t, y);
      } else {
        host.resize(static_cast<size_t>(N) * trunk_[i]->out.size());
        backend_->download(host.data(), y, host.size() * sizeof(float));
        sink(t, host.data());
      }
    }
    x = y;
  }
}

}  // namespace sln
