// Plumbing shared by the oneDNN op files: a plain user buffer (handle set per
// call) staged through the layout a primitive prefers, and one user-mode
// scratchpad per op shared by its primitives.
#pragma once
#include <algorithm>
#include <cstdlib>
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

}  // namespace sln::cpu
