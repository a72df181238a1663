// Harness case "add" (Backend::add_inplace): inputs y, x (n); output y = y + x.
#include "harness/harness_util.h"

namespace sln {

static Tensors run_add(Backend* be, const Params&, const Tensors& in) {
  std::vector<double> y = input(in, "y");
  const auto& x = input_n(in, "add", "x", y.size());
  if (!be) {
    for (size_t i = 0; i < y.size(); i++) y[i] += x[i];
    return {{"y", y}};
  }
  Buffer yd = upload_f32(*be, y), xd = upload_f32(*be, x);   // (n)
  be->add_inplace(yd.f32(), xd.f32(), y.size());
  return {{"y", download_f64(*be, yd, y.size())}};
}

SLN_HARNESS("add", run_add);

}  // namespace sln
