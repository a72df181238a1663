// Harness case "relu": inputs x (n), optional dy (n); outputs y, with dy: dx.
#include "core/harness_util.h"
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
    auto xf = to_f32(x);
    std::vector<float> yf(n);
    op->forward(xf.data(), yf.data());
    y = to_f64(yf);
    if (bwd) {
      auto dyf = to_f32(*dy);
      std::vector<float> dxf(n);
      op->backward(yf.data(), dyf.data(), dxf.data());
      dx = to_f64(dxf);
    }
  }
  Tensors out{{"y", y}};
  if (bwd) out["dx"] = dx;
  return out;
}

SLN_HARNESS("relu", run_relu);

}  // namespace sln
