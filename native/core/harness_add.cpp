// Harness case "add" (Backend::add_inplace): inputs y, x (n); output y = y + x.
#include "core/harness_util.h"

namespace sln {

static Tensors run_add(Backend* be, const Params&, const Tensors& in) {
  std::vector<double> y = input(in, "y");
  const auto& x = input_n(in, "add", "x", y.size());
  if (!be) {
    for (size_t i = 0; i < y.size(); i++) y[i] += x[i];
    return {{"y", y}};
  }
  auto yf = to_f32(y), xf = to_f32(x);
  be->add_inplace(yf.data(), xf.data(), yf.size());
  return {{"y", to_f64(yf)}};
}

SLN_HARNESS("add", run_add);

}  // namespace sln
