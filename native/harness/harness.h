// Op test harness (ggml's test-backend-ops idea): every op registers one case
// that runs it either on the float64 reference ("ref") or on a Backend, from
// the same float64 inputs, and returns its outputs in float64. It lives in
// the test-only addon (harness/addon.cpp), never in the one users install.
// The JS tests (test/ops_conv_linear.test.ts, test/ops_misc.test.ts,
// test/gpu/ops.test.ts, through test/helpers/opcheck.ts) feed random inputs to
// the reference and a backend and compare, and check the reference itself by
// finite differences.
//
// A case runs forward and, when the inputs contain "dy", backward after it
// (stateful ops need their forward first). Names follow PyTorch:
//   inputs:  x, w, b, gamma, beta, running_mean, running_var, labels, dy, ...
//   outputs: y, dx, dw, db, dgamma, dbeta, running_mean, running_var, loss, ...
#pragma once
#include <map>
#include <string>
#include <vector>

#include "sln/ops.h"

namespace sln {

using Tensors = std::map<std::string, std::vector<double>>;
using Params = std::map<std::string, double>;

// backend == nullptr means the float64 reference.
using HarnessFn = Tensors (*)(Backend* backend, const Params& params, const Tensors& inputs);

struct HarnessRegistrar {
  HarnessRegistrar(const char* op, HarnessFn fn);
};
const std::map<std::string, HarnessFn>& harness_cases();

// Helpers for cases.
double param(const Params& p, const char* name, double dflt);
int iparam(const Params& p, const char* name, int dflt);
const std::vector<double>& input(const Tensors& t, const char* name);   // throws if missing
bool has(const Tensors& t, const char* name);
std::vector<float> to_f32(const std::vector<double>& v);
std::vector<double> to_f64(const std::vector<float>& v);

// A case's backend branch keeps every input and output in the backend's
// memory, so the same case runs on "cpu" (host memory) and "cuda" (device
// memory): inputs go in through upload, outputs come back through download.
Buffer upload_f32(Backend& be, const std::vector<double>& v);    // float32 copy of v
Buffer upload_i32(Backend& be, const std::vector<int32_t>& v);
Buffer alloc_f32(Backend& be, size_t n);                         // uninitialised
std::vector<double> download_f64(Backend& be, const Buffer& b, size_t n);   // n float32 -> float64

// Activations in a backend layout (sln/ops.h Layout) at the harness's edges:
// the cases keep NCHW tensors; a case run with a layout param reorders its
// inputs into the op's layout before upload and its outputs back after download.
Layout layout_param(const Params& p, const char* name);   // 0 plain, 1 blocked16
std::vector<double> to_layout(const std::vector<double>& v, Layout l, int N, int C, int H, int W);
std::vector<double> from_layout(const std::vector<double>& v, Layout l, int N, int C, int H, int W);

#define SLN_HARNESS(op, fn) static ::sln::HarnessRegistrar sln_harness_registrar_##fn(op, fn)

}  // namespace sln
