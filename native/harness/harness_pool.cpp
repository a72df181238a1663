// Harness cases "maxpool2d" and "avgpool2d": params N,C,H,W, kernel, stride,
// pad, kernel_h, kernel_w (0 = kernel), layout (0 plain, 1 blocked16: the
// backend op's activations). inputs x (N,C,H,W), optional dy
// (N,C,OH,OW); outputs y, with dy: dx.
#include "harness/harness_util.h"
#include "ref/ref.h"

namespace sln {

static Tensors run_pool(bool is_max, Backend* be, const Params& p, const Tensors& in) {
  const char* name = is_max ? "maxpool2d" : "avgpool2d";
  Pool2dDesc d;
  d.N = iparam(p, "N", 1), d.C = iparam(p, "C", 1), d.H = iparam(p, "H", 1), d.W = iparam(p, "W", 1);
  d.kernel = iparam(p, "kernel", 2), d.stride = iparam(p, "stride", d.kernel), d.pad = iparam(p, "pad", 0);
  d.kernel_h = iparam(p, "kernel_h", 0), d.kernel_w = iparam(p, "kernel_w", 0);
  d.layout = layout_param(p, "layout");
  // the backend op validates its descriptor (and its message is what the tests
  // check); the reference trusts it, so check the basics here first
  std::unique_ptr<Pool2dOp> op;
  if (be)
    op = is_max ? be->maxpool2d(d) : be->avgpool2d(d);
  else
    SLN_CHECK_ARG(d.N >= 1 && d.C >= 1 && d.H >= 1 && d.W >= 1 && d.stride >= 1 && d.KH() >= 1 && d.KW() >= 1 &&
                      d.pad >= 0 && d.H + 2 * d.pad >= d.KH() && d.W + 2 * d.pad >= d.KW(),
                  name << ": bad descriptor for the reference");
  const size_t nx = static_cast<size_t>(d.N) * d.C * d.H * d.W;
  const size_t ny = static_cast<size_t>(d.N) * d.C * d.OH() * d.OW();
  const auto& x = input_n(in, name, "x", nx);
  const bool bwd = has(in, "dy");
  const std::vector<double>* dy = bwd ? &input_n(in, name, "dy", ny) : nullptr;
  std::vector<double> y(ny), dx(nx);
  if (!be) {
    if (is_max) {
      std::vector<int64_t> argmax(ny);   // (N,C,OH,OW)
      ref::maxpool2d_forward(d, x.data(), y.data(), argmax.data());
      if (bwd) ref::maxpool2d_backward(d, argmax.data(), dy->data(), dx.data());
    } else {
      ref::avgpool2d_forward(d, x.data(), y.data());
      if (bwd) ref::avgpool2d_backward(d, dy->data(), dx.data());
    }
  } else {
    const Layout l = d.layout;
    Buffer xd = upload_f32(*be, to_layout(x, l, d.N, d.C, d.H, d.W)), yd = alloc_f32(*be, ny);   // (N,C,H,W), (N,C,OH,OW)
    op->forward(xd.f32(), yd.f32(), param(p, "training", 1) != 0);
    y = from_layout(download_f64(*be, yd, ny), l, d.N, d.C, d.OH(), d.OW());
    if (bwd) {
      Buffer dyd = upload_f32(*be, to_layout(*dy, l, d.N, d.C, d.OH(), d.OW())), dxd = alloc_f32(*be, nx);
      op->backward(dyd.f32(), dxd.f32());
      dx = from_layout(download_f64(*be, dxd, nx), l, d.N, d.C, d.H, d.W);
    }
  }
  Tensors out{{"y", y}};
  if (bwd) out["dx"] = dx;
  return out;
}

static Tensors run_maxpool2d(Backend* be, const Params& p, const Tensors& in) { return run_pool(true, be, p, in); }
static Tensors run_avgpool2d(Backend* be, const Params& p, const Tensors& in) { return run_pool(false, be, p, in); }

SLN_HARNESS("maxpool2d", run_maxpool2d);
SLN_HARNESS("avgpool2d", run_avgpool2d);

}  // namespace sln
