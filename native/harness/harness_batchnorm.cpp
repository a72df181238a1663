// Harness case "batchnorm2d": params N,C,H,W, eps, momentum, training (1/0),
// layout (0 plain, 1 blocked16: the backend op's activations), relu (1: the
// fused ReLU of BatchNormDesc::relu; the reference applies max(0, y) and masks
// dy with y > 0 before its backward).
// inputs x (N,C,H,W), gamma, beta, running_mean, running_var (C), optional dy
// (N,C,H,W; backward after a training forward).
// outputs y, running_mean, running_var; with dy: dx, dgamma, dbeta.
// sync: 1 runs the synchronised batch norm of --sync-bn (core/sync_batchnorm.h)
// with one rank (the all-reduce is the identity) instead of the backend's op.
#include <algorithm>

#include "harness/harness_util.h"
#include "core/sync_batchnorm.h"
#include "ref/ref.h"

namespace sln {

static Tensors run_batchnorm(Backend* be, const Params& p, const Tensors& in) {
  BatchNormDesc d;
  d.N = iparam(p, "N", 1), d.C = iparam(p, "C", 1), d.H = iparam(p, "H", 1), d.W = iparam(p, "W", 1);
  d.eps = static_cast<float>(param(p, "eps", 1e-5));
  d.momentum = static_cast<float>(param(p, "momentum", 0.1));
  const bool training = param(p, "training", 1) != 0;
  d.layout = layout_param(p, "layout");
  d.relu = param(p, "relu", 0) != 0;
  const Layout l = d.layout;
  std::unique_ptr<BatchNormOp> op;   // the backend op validates its descriptor itself
  if (be)
    op = be->batchnorm(d);
  else
    SLN_CHECK_ARG(d.N >= 1 && d.C >= 1 && d.H >= 1 && d.W >= 1, "batchnorm2d: sizes must be >= 1");
  const size_t n = static_cast<size_t>(d.N) * d.C * d.H * d.W, C = d.C;
  const auto& x = input_n(in, "batchnorm2d", "x", n);
  const auto& gamma = input_n(in, "batchnorm2d", "gamma", C);
  const auto& beta = input_n(in, "batchnorm2d", "beta", C);
  std::vector<double> rm = input_n(in, "batchnorm2d", "running_mean", C);
  std::vector<double> rv = input_n(in, "batchnorm2d", "running_var", C);
  const bool bwd = has(in, "dy");
  if (bwd) SLN_CHECK_ARG(training, "batchnorm2d: backward is defined after a training forward");
  const std::vector<double>* dy = bwd ? &input_n(in, "batchnorm2d", "dy", n) : nullptr;
  Tensors out;
  std::vector<double> y(n), dx(n), dgamma(C), dbeta(C);
  if (!be) {
    std::vector<double> save_mean(C), save_invstd(C);
    ref::batchnorm_forward(d, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), y.data(), training,
                           save_mean.data(), save_invstd.data());
    std::vector<double> g = bwd ? *dy : std::vector<double>();
    if (d.relu)
      for (size_t i = 0; i < n; i++) {
        y[i] = std::max(y[i], 0.0);
        if (bwd && !(y[i] > 0)) g[i] = 0;
      }
    if (bwd)
      ref::batchnorm_backward(d, x.data(), gamma.data(), g.data(), save_mean.data(), save_invstd.data(), dx.data(),
                              dgamma.data(), dbeta.data());
    out["running_mean"] = rm, out["running_var"] = rv;
  } else if (param(p, "sync", 0) != 0) {
    SLN_CHECK_ARG(training, "batchnorm2d: sync is a training-mode batch norm");
    SLN_CHECK_ARG(!d.relu, "batchnorm2d: sync has no fused ReLU");
    auto f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
    std::vector<float> xf = f(x), gf = f(gamma), bf = f(beta), rmf = f(rm), rvf = f(rv), yf(n);
    std::vector<double> save_mean, save_invstd;
    const SumFn one_rank = [](double*, size_t) {};
    sync_batchnorm_forward(d, xf.data(), gf.data(), bf.data(), rmf.data(), rvf.data(), yf.data(), save_mean, save_invstd,
                           one_rank);
    y.assign(yf.begin(), yf.end());
    if (bwd) {
      std::vector<float> dyf = f(*dy), dxf(n), dgf(C), dbf(C);
      sync_batchnorm_backward(d, xf.data(), gf.data(), dyf.data(), save_mean, save_invstd, dxf.data(), dgf.data(),
                              dbf.data(), one_rank);
      dx.assign(dxf.begin(), dxf.end()), dgamma.assign(dgf.begin(), dgf.end()), dbeta.assign(dbf.begin(), dbf.end());
    }
    out["running_mean"] = std::vector<double>(rmf.begin(), rmf.end());
    out["running_var"] = std::vector<double>(rvf.begin(), rvf.end());
  } else {
    Backend& B = *be;
    Buffer xd = upload_f32(B, to_layout(x, l, d.N, d.C, d.H, d.W)), gd = upload_f32(B, gamma), bd = upload_f32(B, beta);
    Buffer rmd = upload_f32(B, rm), rvd = upload_f32(B, rv), yd = alloc_f32(B, n);       // (C), (C), (N,C,H,W)
    op->forward(xd.f32(), gd.f32(), bd.f32(), rmd.f32(), rvd.f32(), yd.f32(), training);
    y = from_layout(download_f64(B, yd, n), l, d.N, d.C, d.H, d.W);
    if (bwd) {
      Buffer dyd = upload_f32(B, to_layout(*dy, l, d.N, d.C, d.H, d.W)), dxd = alloc_f32(B, n), dgd = alloc_f32(B, C),
             dbd = alloc_f32(B, C);
      op->backward(xd.f32(), gd.f32(), dyd.f32(), dxd.f32(), dgd.f32(), dbd.f32());
      dx = from_layout(download_f64(B, dxd, n), l, d.N, d.C, d.H, d.W), dgamma = download_f64(B, dgd, C),
      dbeta = download_f64(B, dbd, C);
    }
    out["running_mean"] = download_f64(B, rmd, C), out["running_var"] = download_f64(B, rvd, C);
  }
  out["y"] = y;
  if (bwd) out["dx"] = dx, out["dgamma"] = dgamma, out["dbeta"] = dbeta;
  return out;
}

SLN_HARNESS("batchnorm2d", run_batchnorm);

}  // namespace sln
