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

std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dDesc& d);
std::unique_ptr<BatchNormOp> make_batchnorm(const BatchNormDesc& d);
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
