// conv2d on oneDNN: convolution_forward (+bias), convolution_backward_data,
// convolution_backward_weights (+diff bias). Primitives are built once per
// descriptor; the caller's plain NCHW / (K,C,R,S) buffers are reordered into
// the layouts oneDNN prefers (format_tag::any; on AVX-512 it picks nChw16c
// activations, OIhw16i16o weights (OIhw16o16i for backward data), and for
// C=1,3 inputs nchw x with Ohwi16o weights) and back. Activations given as
// Layout::blocked16 (nChw16c) need no reorder where oneDNN picks that layout.
//
// Layout decision, measured on the smallcnn convs (N=256, 3x3 pad 1, forward +
// backward, backward-data skipped for the first layer), oneDNN 2.6.3, AVX-512,
// 1 thread, best of 4 on a loaded shared 2-core machine:
//   1x28x28 input: plain nchw 652 ms, any+reorders 367 ms
//   3x32x32 input: plain nchw 1098 ms, any+reorders 579 ms
// With 2 threads (noisier) 1581 vs 661 ms and 2935 vs 979 ms. The plain path
// is oneDNN's gemm convolution, whose backward is 2-3x slower on every layer;
// the reorders cost far less than that, so only the blocked path is kept.
#include <unordered_map>

#include "cpu/staged.h"
#include "sln/shape_checks.h"

namespace sln::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

class Conv2dCpu final : public WeightedCpuOp<Conv2dOp, Conv2dDesc> {
 public:
  explicit Conv2dCpu(const Conv2dDesc& d) : WeightedCpuOp(d, "conv2d") {
    check_conv2d(d);
    check_layout(d.src_layout, d.C, "conv2d input");
    check_layout(d.dst_layout, d.K, "conv2d output");
    create();
  }

 private:
  void build() override {
    const Conv2dDesc& d = d_;
    const memory::dims xd{d.N, d.C, d.H, d.W}, wd{d.K, d.C, d.R, d.S}, bd{d.K}, yd{d.N, d.K, d.OH(), d.OW()};
    const memory::dims strides{d.stride, d.stride}, pad{d.pad, d.pad};
    // padding_r = pad: oneDNN checks (H - R + pad_l + pad_r) / stride + 1 == OH with
    // floor division, which is PyTorch's output size; trailing rows are dropped alike.
    const memory::desc x_md(xd, dt::f32, layout_tag(d.src_layout)), w_md(wd, dt::f32, tag::oihw),
        b_md(bd, dt::f32, tag::x), y_md(yd, dt::f32, layout_tag(d.dst_layout));
    // Mixed precision: the primitives read x, w and dy as bfloat16 (the staging
    // reorders convert) and write y, dx, dw and db as float32.
    const dt lo = d.bf16 ? dt::bf16 : dt::f32;
    auto pick = [&](const memory::desc& user, dt t = dt::f32) { return memory::desc(user.dims(), t, tag::any); };
    const auto attr = user_scratchpad_attr();
    const auto alg = dnnl::algorithm::convolution_direct;
    using fwd_t = dnnl::convolution_forward;
    using bwd_data_t = dnnl::convolution_backward_data;
    using bwd_w_t = dnnl::convolution_backward_weights;
    const auto fwd_d = d.bias ? fwd_t::desc(dnnl::prop_kind::forward_training, alg, pick(x_md, lo), pick(w_md, lo),
                                            b_md, pick(y_md), strides, pad, pad)
                              : fwd_t::desc(dnnl::prop_kind::forward_training, alg, pick(x_md, lo), pick(w_md, lo),
                                            pick(y_md), strides, pad, pad);
    fwd_t::primitive_desc fwd_pd(fwd_d, attr, engine());
    bwd_data_t::primitive_desc bd_pd(
        bwd_data_t::desc(alg, pick(x_md), pick(w_md, lo), pick(y_md, lo), strides, pad, pad), attr, engine(), fwd_pd);
    const auto bw_d = d.bias ? bwd_w_t::desc(alg, pick(x_md, lo), pick(w_md), b_md, pick(y_md, lo), strides, pad, pad)
                             : bwd_w_t::desc(alg, pick(x_md, lo), pick(w_md), pick(y_md, lo), strides, pad, pad);
    bwd_w_t::primitive_desc bw_pd(bw_d, attr, engine(), fwd_pd);
    fwd_ = fwd_t(fwd_pd);
    bwd_data_ = bwd_data_t(bd_pd);
    bwd_w_ = bwd_w_t(bw_pd);

    x_.init(x_md, fwd_pd.src_desc(), true);
    w_.init(w_md, fwd_pd.weights_desc(), true);
    b_.init(b_md, b_md, true);
    y_.init(y_md, fwd_pd.dst_desc(), false);
    // Backward reuses the forward's staged x and w, and backward-data's staged
    // dy, when the layouts agree: one reorder fewer each.
    share_w_ = bd_pd.weights_desc() == fwd_pd.weights_desc();
    if (!share_w_) bd_w_.init(w_md, bd_pd.weights_desc(), true);
    bd_dy_.init(y_md, bd_pd.diff_dst_desc(), true);
    bd_dx_.init(x_md, bd_pd.diff_src_desc(), false);
    share_x_ = bw_pd.src_desc() == fwd_pd.src_desc();
    if (!share_x_) bw_x_.init(x_md, bw_pd.src_desc(), true);
    share_dy_ = bw_pd.diff_dst_desc() == bd_pd.diff_dst_desc();
    if (!share_dy_) bw_dy_.init(y_md, bw_pd.diff_dst_desc(), true);
    bw_dw_.init(w_md, bw_pd.diff_weights_desc(), false);
    bw_db_.init(b_md, b_md, false);

    scratch_.reserve(fwd_pd.scratchpad_desc());
    scratch_.reserve(bd_pd.scratchpad_desc());
    scratch_.reserve(bw_pd.scratchpad_desc());
    fwd_scratch_ = scratch_.make(fwd_pd.scratchpad_desc());
    bd_scratch_ = scratch_.make(bd_pd.scratchpad_desc());
    bw_scratch_ = scratch_.make(bw_pd.scratchpad_desc());
  }

  void run_forward(const float* x, const float* w, const float* b, float* y) override {
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x_.in(x)},
                                         {DNNL_ARG_WEIGHTS, w_.in(w)},
                                         {DNNL_ARG_DST, y_.out(y)},
                                         {DNNL_ARG_SCRATCHPAD, fwd_scratch_}};
    if (b) args[DNNL_ARG_BIAS] = b_.in(b);
    fwd_.execute(stream(), args);
    y_.finish();
    stream().wait();
    saved_x_ = x;
    saved_w_ = w;
  }

  void run_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db) override {
    bool dy_staged = false;
    if (dx) {  // dx null (first layer): no backward-data at all
      Staged& sw = share_w_ ? w_ : bd_w_;
      const bool w_fresh = share_w_ && w == saved_w_;
      bwd_data_.execute(stream(), {{DNNL_ARG_DIFF_DST, bd_dy_.in(dy)},
                                   {DNNL_ARG_WEIGHTS, sw.in(w, w_fresh)},
                                   {DNNL_ARG_DIFF_SRC, bd_dx_.out(dx)},
                                   {DNNL_ARG_SCRATCHPAD, bd_scratch_}});
      bd_dx_.finish();
      dy_staged = true;
    }
    if (dw || db) {
      Staged& sx = share_x_ ? x_ : bw_x_;
      const bool x_fresh = share_x_ && x == saved_x_;
      Staged& sdy = share_dy_ ? bd_dy_ : bw_dy_;
      const bool dy_fresh = share_dy_ && dy_staged;
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, sx.in(x, x_fresh)},
                                           {DNNL_ARG_DIFF_DST, sdy.in(dy, dy_fresh)},
                                           {DNNL_ARG_DIFF_WEIGHTS, bw_dw_.out(dw)},
                                           {DNNL_ARG_SCRATCHPAD, bw_scratch_}};
      if (d_.bias) args[DNNL_ARG_DIFF_BIAS] = bw_db_.out(db);
      bwd_w_.execute(stream(), args);
      bw_dw_.finish();
    }
    stream().wait();
  }

  dnnl::convolution_forward fwd_;
  dnnl::convolution_backward_data bwd_data_;
  dnnl::convolution_backward_weights bwd_w_;
  Staged x_, w_, b_, y_;                          // forward: x (N,C,H,W), w (K,C,R,S), b (K), y (N,K,OH,OW)
  Staged bd_w_, bd_dy_, bd_dx_;                   // backward data: w, dy (N,K,OH,OW), dx (N,C,H,W)
  Staged bw_x_, bw_dy_, bw_dw_, bw_db_;           // backward weights: x, dy, dw (K,C,R,S), db (K)
  bool share_w_ = false, share_x_ = false, share_dy_ = false;
  const float* saved_x_ = nullptr;                // what forward left staged in x_ / w_
  const float* saved_w_ = nullptr;
  Scratch scratch_;
  memory fwd_scratch_, bd_scratch_, bw_scratch_;
};

}  // namespace

std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dDesc& d) { return std::make_unique<Conv2dCpu>(d); }

}  // namespace sln::cpu
