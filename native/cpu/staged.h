// Plumbing shared by the oneDNN op files: a plain user buffer (handle set per
// call) staged through the layout a primitive prefers, and one user-mode
// scratchpad per op shared by its primitives.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <memory>
#include <new>
#include <vector>

#include "cpu/cpu.h"

namespace sln::cpu {

// One primitive argument. `user` wraps the caller's plain buffer; `inner` is
// what the primitive reads or writes: the same memory when the layouts agree,
// otherwise an op-owned buffer in the primitive's layout plus a reorder.
class Staged {
 public:
  Staged() = default;
  void init(const dnnl::memory::desc& user_md, const dnnl::memory::desc& prim_md, bool input) {
    user_ = dnnl::memory(user_md, engine(), DNNL_MEMORY_NONE);
    if (prim_md == user_md) {
      inner_ = user_;
    } else {
      reordered_ = true;
      inner_ = dnnl::memory(prim_md, engine());
      reorder_ = input ? dnnl::reorder(user_, inner_) : dnnl::reorder(inner_, user_);
    }
  }
  bool reordered() const { return reordered_; }
  const dnnl::memory& inner() const { return inner_; }

  // Input: point at p; reorder into the primitive layout unless `fresh` says
  // inner already holds p's contents (saved by the forward of the same batch).
  const dnnl::memory& in(const float* p, bool fresh = false) {
    user_.set_data_handle(const_cast<float*>(p));
    if (reordered_ && !fresh) reorder_.execute(stream(), user_, inner_);
    return inner_;
  }
  // Output: p may be null ("not needed") when the primitive must still write
  // somewhere; then a plain op-owned buffer takes it.
  const dnnl::memory& out(float* p) {
    out_ptr_ = p;
    if (!p && !reordered_) {
      if (dummy_.empty()) dummy_.resize(user_.get_desc().get_size() / sizeof(float));
      p = dummy_.data();
    }
    if (p) user_.set_data_handle(p);
    return inner_;
  }
  // After the primitive ran: copy back to the user's buffer when staged.
  void finish() {
    if (reordered_ && out_ptr_) reorder_.execute(stream(), inner_, user_);
  }

 private:
  dnnl::memory user_, inner_;
  dnnl::reorder reorder_;
  bool reordered_ = false;
  float* out_ptr_ = nullptr;
  std::vector<float> dummy_;
};

// One scratchpad buffer sized for the largest of an op's primitives
// (scratchpad_mode::user: no allocation inside execute()). Usage: reserve()
// every primitive's scratchpad_desc(), then make() one memory per primitive.
class Scratch {
 public:
  void reserve(const dnnl::memory::desc& md) { bytes_ = std::max(bytes_, md.get_size()); }
  dnnl::memory make(const dnnl::memory::desc& md) {
    if (!buf_ && bytes_) {
      buf_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes_ + 63) / 64 * 64)));
      if (!buf_) throw std::bad_alloc();
    }
    return dnnl::memory(md, engine(), buf_.get());
  }

 private:
  struct Free { void operator()(uint8_t* p) const { std::free(p); } };
  size_t bytes_ = 0;
  std::unique_ptr<uint8_t, Free> buf_;
};

inline dnnl::primitive_attr user_scratchpad_attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}


// What conv2d and linear share around their primitives (the same forward and
// backward signatures): the threads, the argument checks and the oneDNN error
// wrapping, written once. The op supplies build() (called by create(), from
// its constructor after its own descriptor checks), run_forward() and
// run_backward(); `name` prefixes every message ("conv2d forward {...}: ...").
template <typename Iface, typename Desc>
class WeightedCpuOp : public Iface {
 public:
  // x, w, b (null without bias), y
  void forward(const float* x, const float* w, const float* b, float* y) final {
    apply_threads();
    SLN_CHECK_ARG(x && w && y, name_ << " forward " << d_ << ": x, w and y must not be null");
    SLN_CHECK_ARG(d_.bias == (b != nullptr),
                  name_ << " forward " << d_ << ": b must be given exactly when the descriptor has bias");
    SLN_DNNL(name_ << " forward " << d_, run_forward(x, w, b, y));
  }
  // dy -> dx or null, dw or null, db or null; overwritten.
  void backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db) final {
    apply_threads();
    SLN_CHECK_ARG(x && w && dy, name_ << " backward " << d_ << ": x, w and dy must not be null");
    SLN_CHECK_ARG(d_.bias || !db, name_ << " backward " << d_ << ": db requested but the descriptor has no bias");
    SLN_DNNL(name_ << " backward " << d_, run_backward(x, w, dy, dx, dw, db));
  }

 protected:
  WeightedCpuOp(const Desc& d, const char* name) : d_(d), name_(name) {}
  void create() {
    apply_threads();  // oneDNN sizes its thread partitioning when the primitive is created
    SLN_DNNL(name_ << " primitive creation " << d_, build());
  }
  virtual void build() = 0;
  virtual void run_forward(const float* x, const float* w, const float* b, float* y) = 0;
  virtual void run_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db) = 0;
  Desc d_;
  const char* name_;
};

}  // namespace sln::cpu
