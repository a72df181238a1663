// CPU backend internals: one oneDNN engine and stream, thread control, and the
// factories each op file (cpu/<op>.cpp) defines.
#pragma once
#include <dnnl.hpp>
#include <omp.h>

#include "sln/errors.h"
#include "sln/ops.h"

namespace sln::cpu {

dnnl::engine& engine();
dnnl::stream& stream();

// Threads for the calling thread's OpenMP team. The OpenMP thread count is a
// per-thread setting and our heavy calls run on libuv pool threads, so every
// entry point applies it again (cheap). Call at the top of every op method.
void apply_threads();
int threads();

// Wrap a oneDNN call: dnnl::error -> sln::Error naming the op and its shapes.
// (The parameter is not called `what`: that would replace e.what() below.)
#define SLN_DNNL(call_desc, stmt)                                                              \
  do {                                                                                         \
    try {                                                                                      \
      stmt;                                                                                    \
    } catch (const dnnl::error& e) {                                                           \
      SLN_FAIL(Library, "SLN_ONEDNN", "oneDNN " << call_desc << " failed: " << e.what()        \
                                             << " (status " << static_cast<int>(e.status) << ")"); \
    }                                                                                          \
  } while (0)

// The oneDNN tag of an (N, C, H, W) activation in layout l.
inline dnnl::memory::format_tag layout_tag(Layout l) {
  return l == Layout::blocked16 ? dnnl::memory::format_tag::nChw16c : dnnl::memory::format_tag::nchw;
}
// A blocked descriptor needs C % 16 == 0 (no padded channels).
inline void check_layout(Layout l, int C, const std::string& what) {
  SLN_CHECK_ARG(l == Layout::plain || (l == Layout::blocked16 && C % 16 == 0),
                what << ": a blocked16 activation needs channels divisible by 16, got " << C);
}
void reorder_layout(const float* src, Layout from, float* dst, Layout to, int N, int C, int H, int W);
bool blocked_layouts();

std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dDesc& d);
std::unique_ptr<BatchNormOp> make_batchnorm(const BatchNormDesc& d);          // NCHW (oneDNN)
std::unique_ptr<BatchNormOp> make_batchnorm_blocked(const BatchNormDesc& d);  // nChw16c (cpu/batchnorm_blocked.cpp)
std::unique_ptr<ReluOp> make_relu(const EltwiseDesc& d);
std::unique_ptr<Pool2dOp> make_maxpool2d(const Pool2dDesc& d);
std::unique_ptr<Pool2dOp> make_avgpool2d(const Pool2dDesc& d);
std::unique_ptr<LinearOp> make_linear(const LinearDesc& d);
std::unique_ptr<DropoutOp> make_dropout(const DropoutDesc& d);
std::unique_ptr<InferOp> make_infer(const InferDesc& d);
bool bf16_native();
double cross_entropy(const float* logits, const int32_t* labels, int N, int K, float* dlogits, float scale);
void sgd_step(float* w, const float* g, float* buf, size_t n, float lr, float momentum,
              float weight_decay, bool first);

}  // namespace sln::cpu
