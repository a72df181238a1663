// The residual block (see core/residual_block.h).
#include "core/residual_block.h"

#include <cstdlib>
#include "core/profile.h"

namespace sln {

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

Layout ResidualBlock::input_layout(Layout, bool blocked_ok) const {
  bool ok = blocked_ok && in.C % 16 == 0;
  for (auto& l : main_) ok = ok && l->out.C % 16 == 0;
  for (auto& l : shortcut_) ok = ok && l->out.C % 16 == 0;
  return ok ? Layout::blocked16 : Layout::plain;
}

void ResidualBlock::set_layouts(Layout in_l, bool blocked_ok) {
  const bool ok = in_l == Layout::blocked16;   // input_layout said the block can run blocked
  auto chain = [&](std::vector<std::unique_ptr<Layer>>& ls) {
    Layout cur = in_l;
    for (auto& l : ls) {
      SLN_CHECK_ARG(l->input_layout(cur, ok) == cur, name << ": sublayer " << l->name << " cannot read its input's layout");
      l->set_layouts(cur, ok);
      cur = l->out_layout;
    }
    return cur;
  };
  const Layout m = chain(main_), s = chain(shortcut_);
  SLN_CHECK_ARG(m == s, name << ": the branches end in different layouts");
  in_layout = in_l;
  out_layout = m;
  // a ReLU inside the main chain runs inside the layer before it where that can
  // (the CPU's blocked batch norm; see Layer::fuse_relu); SELFLABEL_FUSE=0 keeps them apart
  const char* e = std::getenv("SELFLABEL_FUSE");
  const bool fuse = !(e && std::string(e) == "0");
  for (size_t i = 0; i < main_.size(); i++) {
    const bool next_relu = i + 1 < main_.size() && std::string(main_[i + 1]->kind()) == "relu";
    const bool f = main_[i]->fuse_relu(fuse && next_relu);
    if (i + 1 < main_.size()) main_[i + 1]->fused_into_prev = f;
  }
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

// The final ReLU over (N, out), in place on y.
ReluOp& ResidualBlock::relu_op(RunCtx& c) {
  return relu_.get(c.N, [&] {
    EltwiseDesc d;
    d.n = static_cast<size_t>(c.N) * out.size();
    return c.backend->relu(d);
  });
}

void ResidualBlock::forward(RunCtx& c, const float* x, float* y) {
  Acts* a = c.training ? &acts_for(*c.backend, c.N) : nullptr;
  const size_t L = main_.size();
  const float* cur = x;
  for (size_t i = 0; i < L; i++) {
    if (main_[i]->fused_into_prev && !c.no_fuse) continue;   // applied by main_[i - 1]: cur is its output
    float* o = (i + 1 == L) ? y : main_buf(c, a, i);   // (N, main_[i]->out)
    {
      prof::Scope ps(main_[i]->kind(), "fwd");
      main_[i]->forward(c, cur, o);
    }
    cur = o;
  }
  const float* s = x;   // identity shortcut
  for (size_t i = 0; i < shortcut_.size(); i++) {
    float* o = short_buf(c, a, i);   // (N, shortcut_[i]->out)
    {
      prof::Scope ps(shortcut_[i]->kind(), "fwd");
      shortcut_[i]->forward(c, s, o);
    }
    s = o;
  }
  const size_t n = static_cast<size_t>(c.N) * out.size();
  prof::Scope ps("residual add+relu", "fwd");
  c.backend->add_inplace(y, s, n);
  relu_op(c).forward(y, y);
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
  {
    prof::Scope ps("residual relu", "bwd");
    relu_op(c).backward(y, dy, g);
  }
  auto chain_backward = [&](std::vector<std::unique_ptr<Layer>>& ls, auto out_of, float* dx_out) {
    const float* d = g;
    for (size_t i = ls.size(); i-- > 0;) {
      if (ls[i]->fused_into_prev) continue;   // ls[i - 1] takes d of the fused ReLU's output
      const float* xi = i == 0 ? x : out_of(i - 1);
      float* dxi = i == 0 ? dx_out : (d == t0 ? t1 : t0);
      {
        prof::Scope ps(ls[i]->kind(), "bwd");
        ls[i]->backward(c, xi, out_of(i), d, dxi);
      }
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
    prof::Scope ps("residual add", "bwd");
    c.backend->add_inplace(dx, g, nx);
  } else {
    float* ds = c.scratch->get(7, nx);   // (N, in)
    chain_backward(shortcut_, [&](size_t i) -> const float* { return short_buf(c, a, i); }, ds);
    prof::Scope ps("residual add", "bwd");
    c.backend->add_inplace(dx, ds, nx);
  }
}

}  // namespace sln
