// Harness case "cross_entropy": params N, K, scale (default 1).
// inputs logits (N,K), labels (N; float64 integers in [0,K)), optional dy (1,
// a multiplier of the loss for finite differences: dlogits are multiplied by it).
// outputs loss (1), dlogits (N,K).
#include "harness/harness_util.h"
#include "ref/ref.h"

namespace sln {

static Tensors run_cross_entropy(Backend* be, const Params& p, const Tensors& in) {
  const int N = iparam(p, "N", 1), K = iparam(p, "K", 1);
  SLN_CHECK_ARG(N >= 1 && K >= 1, "cross_entropy: need N >= 1 and K >= 1, got (N,K) = (" << N << "," << K << ")");
  const size_t nk = static_cast<size_t>(N) * K;
  const auto& logits = input_n(in, "cross_entropy", "logits", nk);
  const auto labels = to_labels(input_n(in, "cross_entropy", "labels", N), K, "cross_entropy");
  double scale = param(p, "scale", 1.0);
  if (has(in, "dy")) scale *= input_n(in, "cross_entropy", "dy", 1)[0];
  std::vector<double> dlogits(nk);
  double loss;
  if (!be) {
    loss = ref::cross_entropy(logits.data(), labels.data(), N, K, dlogits.data(), scale);
  } else {
    Buffer ld = upload_f32(*be, logits), yd = upload_i32(*be, labels), dd = alloc_f32(*be, nk);   // (N,K), (N), (N,K)
    loss = be->cross_entropy(ld.f32(), static_cast<const int32_t*>(yd.data()), N, K, dd.f32(), static_cast<float>(scale));
    dlogits = download_f64(*be, dd, nk);
  }
  return {{"loss", {loss}}, {"dlogits", dlogits}};
}

SLN_HARNESS("cross_entropy", run_cross_entropy);

}  // namespace sln
