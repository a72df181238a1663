// Harness case "linear". Params: N,in,out,bias.
// Inputs: x (N,in), w (out,in), b (out) when bias, dy (N,out) optional.
// Outputs: y; with dy also dx, dw and db (db when bias).
#include <memory>

#include "ref/ref.h"
#include "sln/harness.h"
#include "sln/shape_checks.h"

namespace sln {

static Tensors linear_case(Backend* backend, const Params& p, const Tensors& in) {
  LinearDesc d;
  d.N = iparam(p, "N", 1), d.in = iparam(p, "in", 1), d.out = iparam(p, "out", 1);
  d.bias = iparam(p, "bias", 1) != 0;
  std::unique_ptr<LinearOp> op = backend ? backend->linear(d) : nullptr;
  check_linear(d);
  const size_t nx = size_t(d.N) * d.in, nw = size_t(d.out) * d.in, ny = size_t(d.N) * d.out;
  auto sized = [&](const char* name, size_t n) -> const std::vector<double>& {
    const auto& v = input(in, name);
    SLN_CHECK_ARG(v.size() == n, "linear harness " << d << ": input '" << name << "' has " << v.size()
                                                   << " elements, expected " << n);
    return v;
  };
  const auto& x = sized("x", nx);
  const auto& w = sized("w", nw);
  const std::vector<double>* b = d.bias ? &sized("b", size_t(d.out)) : nullptr;
  const bool bwd = has(in, "dy");
  const std::vector<double>* dy = bwd ? &sized("dy", ny) : nullptr;

  Tensors out;
  out["y"].resize(ny);
  if (bwd) {
    out["dx"].resize(nx);
    out["dw"].resize(nw);
    if (d.bias) out["db"].resize(size_t(d.out));
  }
  if (!backend) {
    ref::linear_forward(d, x.data(), w.data(), b ? b->data() : nullptr, out["y"].data());
    if (bwd)
      ref::linear_backward(d, x.data(), w.data(), dy->data(), out["dx"].data(), out["dw"].data(),
                           d.bias ? out["db"].data() : nullptr);
    return out;
  }
  const auto xf = to_f32(x), wf = to_f32(w);              // (N,in), (out,in)
  const auto bf = b ? to_f32(*b) : std::vector<float>();  // (out)
  std::vector<float> y(ny);                               // (N,out)
  op->forward(xf.data(), wf.data(), b ? bf.data() : nullptr, y.data());
  out["y"] = to_f64(y);
  if (bwd) {
    const auto dyf = to_f32(*dy);                                // (N,out)
    std::vector<float> dx(nx), dw(nw), db(d.bias ? d.out : 0);   // (N,in), (out,in), (out)
    op->backward(xf.data(), wf.data(), dyf.data(), dx.data(), dw.data(), d.bias ? db.data() : nullptr);
    out["dx"] = to_f64(dx);
    out["dw"] = to_f64(dw);
    if (d.bias) out["db"] = to_f64(db);
  }
  return out;
}

SLN_HARNESS("linear", linear_case);

}  // namespace sln
