// Harness case "sgd_step": params lr, momentum, weight_decay, first (1/0).
// inputs w, g (n), buf (n; may be left out when first); outputs w, buf.
#include "harness/harness_util.h"
#include "ref/ref.h"

namespace sln {

static Tensors run_sgd_step(Backend* be, const Params& p, const Tensors& in) {
  std::vector<double> w = input(in, "w");
  const size_t n = w.size();
  const auto& g = input_n(in, "sgd_step", "g", n);
  const bool first = param(p, "first", 0) != 0;
  std::vector<double> buf = has(in, "buf") || !first ? input_n(in, "sgd_step", "buf", n) : std::vector<double>(n);
  const double lr = param(p, "lr", 0.1), momentum = param(p, "momentum", 0), wd = param(p, "weight_decay", 0);
  if (!be) {
    ref::sgd_step(w.data(), g.data(), buf.data(), n, lr, momentum, wd, first);
    return {{"w", w}, {"buf", buf}};
  }
  Buffer wd_ = upload_f32(*be, w), gd = upload_f32(*be, g), bd = upload_f32(*be, buf);   // (n) each
  be->sgd_step(wd_.f32(), gd.f32(), bd.f32(), n, static_cast<float>(lr), static_cast<float>(momentum),
               static_cast<float>(wd), first);
  return {{"w", download_f64(*be, wd_, n)}, {"buf", download_f64(*be, bd, n)}};
}

SLN_HARNESS("sgd_step", run_sgd_step);

}  // namespace sln
