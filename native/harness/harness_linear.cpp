// Harness case "linear". Params: N,in,out,bias.
// Inputs: x (N,in), w (out,in), b (out) when bias, dy (N,out) optional.
// Outputs: y; with dy also dx, dw and db (db when bias).
#include <memory>

#include "ref/ref.h"
#include "harness/harness.h"
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
  Backend& B = *backend;
  Buffer xd = upload_f32(B, x), wd = upload_f32(B, w);   // (N,in), (out,in)
  Buffer bd = b ? upload_f32(B, *b) : Buffer();          // (out)
  Buffer yd = alloc_f32(B, ny);                          // (N,out)
  op->forward(xd.f32(), wd.f32(), b ? bd.f32() : nullptr, yd.f32());
  out["y"] = download_f64(B, yd, ny);
  if (bwd) {
    Buffer dyd = upload_f32(B, *dy);                                             // (N,out)
    Buffer dxd = alloc_f32(B, nx), dwd = alloc_f32(B, nw);                       // (N,in), (out,in)
    Buffer dbd = d.bias ? alloc_f32(B, size_t(d.out)) : Buffer();                // (out)
    op->backward(xd.f32(), wd.f32(), dyd.f32(), dxd.f32(), dwd.f32(), d.bias ? dbd.f32() : nullptr);
    out["dx"] = download_f64(B, dxd, nx);
    out["dw"] = download_f64(B, dwd, nw);
    if (d.bias) out["db"] = download_f64(B, dbd, size_t(d.out));
  }
  return out;
}

SLN_HARNESS("linear", linear_case);

}  // namespace sln
