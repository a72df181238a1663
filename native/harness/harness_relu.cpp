// Harness case "relu": inputs x (n), optional dy (n); outputs y, with dy: dx.
#include "harness/harness_util.h"
#include "ref/ref.h"

namespace sln {

static Tensors run_relu(Backend* be, const Params&, const Tensors& in) {
  const auto& x = input(in, "x");
  const size_t n = x.size();
  const bool bwd = has(in, "dy");
  const std::vector<double>* dy = bwd ? &input_n(in, "relu", "dy", n) : nullptr;
  std::vector<double> y(n), dx(n);
  if (!be) {
    ref::relu_forward(n, x.data(), y.data());
    if (bwd) ref::relu_backward(n, y.data(), dy->data(), dx.data());
  } else {
    EltwiseDesc d;
    d.n = n;
    auto op = be->relu(d);
    Buffer xd = upload_f32(*be, x), yd = alloc_f32(*be, n);   // (n)
    op->forward(xd.f32(), yd.f32());
    y = download_f64(*be, yd, n);
    if (bwd) {
      Buffer dyd = upload_f32(*be, *dy), dxd = alloc_f32(*be, n);
      op->backward(yd.f32(), dyd.f32(), dxd.f32());
      dx = download_f64(*be, dxd, n);
    }
  }
  Tensors out{{"y", y}};
  if (bwd) out["dx"] = dx;
  return out;
}

SLN_HARNESS("relu", run_relu);

}  // namespace sln
