// Harness case "dropout": params p, seed (an integer < 2^53), training (1/0).
// inputs x (n), optional dy (n); outputs y, with dy: dx; the reference also
// returns mask (n, 1 = kept; all ones in eval) to check the backends against.
#include "core/dropout_mask.h"
#include "harness/harness_util.h"
#include "ref/ref.h"

namespace sln {

static Tensors run_dropout(Backend* be, const Params& p, const Tensors& in) {
  const auto& x = input(in, "x");
  const size_t n = x.size();
  const double pd = param(p, "p", 0.5);
  const float pf = static_cast<float>(pd);
  const double seed_d = param(p, "seed", 0);
  SLN_CHECK_ARG(seed_d >= 0 && seed_d == std::floor(seed_d) && seed_d < 9007199254740992.0,
                "dropout: seed must be an integer in [0, 2^53), got " << seed_d);
  const uint64_t seed = static_cast<uint64_t>(seed_d);
  const bool training = param(p, "training", 1) != 0;
  const bool bwd = has(in, "dy");
  const std::vector<double>* dy = bwd ? &input_n(in, "dropout", "dy", n) : nullptr;
  std::vector<double> y(n), dx(n);
  Tensors out;
  if (!be) {
    SLN_CHECK_ARG(pf >= 0.0f && pf < 1.0f, "dropout: p must be in [0, 1), got " << pd);
    std::vector<uint8_t> mask(n, 1);   // (n)
    if (training) dropout_mask(n, pf, seed, mask.data());
    // the reference scales by 1/(1-p) of the float p every backend sees
    const double pp = training ? static_cast<double>(pf) : 0.0;
    ref::dropout_forward(n, pp, mask.data(), x.data(), y.data());
    if (bwd) ref::dropout_backward(n, pp, mask.data(), dy->data(), dx.data());
    out["mask"] = std::vector<double>(mask.begin(), mask.end());
  } else {
    DropoutDesc d;
    d.n = n, d.p = pf;
    auto op = be->dropout(d);
    Buffer xd = upload_f32(*be, x), yd = alloc_f32(*be, n);   // (n)
    op->forward(xd.f32(), yd.f32(), training, seed);
    y = download_f64(*be, yd, n);
    if (bwd) {
      Buffer dyd = upload_f32(*be, *dy), dxd = alloc_f32(*be, n);
      op->backward(dyd.f32(), dxd.f32());
      dx = download_f64(*be, dxd, n);
    }
  }
  out["y"] = y;
  if (bwd) out["dx"] = dx;
  return out;
}

SLN_HARNESS("dropout", run_dropout);

}  // namespace sln
