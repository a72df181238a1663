// Harness case "conv2d". Params: N,C,H,W,K,R,S,stride,pad,bias, src_layout and
// dst_layout (0 plain, 1 blocked16: the backend op's x/dx and y/dy layouts),
// bf16 (1: the backend op's mixed precision, Conv2dDesc::bf16; the reference
// ignores it, so a test rounds x, w and dy to bfloat16 itself).
// Inputs: x (N,C,H,W), w (K,C,R,S), b (K) when bias, dy (N,K,OH,OW) optional.
// Outputs: y; with dy also dx, dw and db (db when bias). Param need_dx=0 runs
// backward with dx = null (a first layer) and returns no dx.
#include <memory>

#include "ref/ref.h"
#include "harness/harness.h"
#include "sln/shape_checks.h"

namespace sln {

static Tensors conv2d_case(Backend* backend, const Params& p, const Tensors& in) {
  Conv2dDesc d;
  d.N = iparam(p, "N", 1), d.C = iparam(p, "C", 1), d.H = iparam(p, "H", 1), d.W = iparam(p, "W", 1);
  d.K = iparam(p, "K", 1), d.R = iparam(p, "R", 1), d.S = iparam(p, "S", 1);
  d.stride = iparam(p, "stride", 1), d.pad = iparam(p, "pad", 0), d.bias = iparam(p, "bias", 0) != 0;
  d.src_layout = layout_param(p, "src_layout"), d.dst_layout = layout_param(p, "dst_layout");
  d.bf16 = iparam(p, "bf16", 0) != 0;
  // The backend op validates its own descriptor; create it before anything else.
  std::unique_ptr<Conv2dOp> op = backend ? backend->conv2d(d) : nullptr;
  check_conv2d(d);
  const size_t nx = size_t(d.N) * d.C * d.H * d.W, nw = size_t(d.K) * d.C * d.R * d.S;
  const size_t ny = size_t(d.N) * d.K * d.OH() * d.OW();
  auto sized = [&](const char* name, size_t n) -> const std::vector<double>& {
    const auto& v = input(in, name);
    SLN_CHECK_ARG(v.size() == n, "conv2d harness " << d << ": input '" << name << "' has " << v.size()
                                                   << " elements, expected " << n);
    return v;
  };
  const auto& x = sized("x", nx);
  const auto& w = sized("w", nw);
  const std::vector<double>* b = d.bias ? &sized("b", size_t(d.K)) : nullptr;
  const bool bwd = has(in, "dy");
  const std::vector<double>* dy = bwd ? &sized("dy", ny) : nullptr;
  const bool need_dx = iparam(p, "need_dx", 1) != 0;

  Tensors out;
  out["y"].resize(ny);
  if (bwd) {
    if (need_dx) out["dx"].resize(nx);
    out["dw"].resize(nw);
    if (d.bias) out["db"].resize(size_t(d.K));
  }
  if (!backend) {
    ref::conv2d_forward(d, x.data(), w.data(), b ? b->data() : nullptr, out["y"].data());
    if (bwd)
      ref::conv2d_backward(d, x.data(), w.data(), dy->data(), need_dx ? out["dx"].data() : nullptr,
                           out["dw"].data(), d.bias ? out["db"].data() : nullptr);
    return out;
  }
  Backend& B = *backend;
  const Layout xl = d.src_layout, yl = d.dst_layout;
  const int OH = d.OH(), OW = d.OW();
  Buffer xd = upload_f32(B, to_layout(x, xl, d.N, d.C, d.H, d.W)), wd = upload_f32(B, w);   // (N,C,H,W), (K,C,R,S)
  Buffer bd = b ? upload_f32(B, *b) : Buffer();          // (K)
  Buffer yd = alloc_f32(B, ny);                          // (N,K,OH,OW)
  op->forward(xd.f32(), wd.f32(), b ? bd.f32() : nullptr, yd.f32());
  out["y"] = from_layout(download_f64(B, yd, ny), yl, d.N, d.K, OH, OW);
  if (bwd) {
    Buffer dyd = upload_f32(B, to_layout(*dy, yl, d.N, d.K, OH, OW));   // (N,K,OH,OW)
    Buffer dxd = need_dx ? alloc_f32(B, nx) : Buffer();               // (N,C,H,W)
    Buffer dwd = alloc_f32(B, nw);                                    // (K,C,R,S)
    Buffer dbd = d.bias ? alloc_f32(B, size_t(d.K)) : Buffer();       // (K)
    op->backward(xd.f32(), wd.f32(), dyd.f32(), need_dx ? dxd.f32() : nullptr, dwd.f32(),
                 d.bias ? dbd.f32() : nullptr);
    if (need_dx) out["dx"] = from_layout(download_f64(B, dxd, nx), xl, d.N, d.C, d.H, d.W);
    out["dw"] = download_f64(B, dwd, nw);
    if (d.bias) out["db"] = download_f64(B, dbd, size_t(d.K));
  }
  return out;
}

SLN_HARNESS("conv2d", conv2d_case);

}  // namespace sln
