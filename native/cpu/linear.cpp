// linear on oneDNN: inner_product_forward (+bias), inner_product_backward_data,
// inner_product_backward_weights (+diff bias). Same structure as conv2d.cpp:
// primitives built once, plain (N,in) / (out,in) user buffers staged through
// the layouts oneDNN prefers when they differ. For the smallcnn head
// (256x128 -> 10) forward+backward takes ~0.02 ms with any weight layout, so
// the choice does not matter here; any keeps oneDNN free for big heads.
#include <unordered_map>

#include "cpu/staged.h"
#include "sln/shape_checks.h"

namespace sln::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

class LinearCpu final : public WeightedCpuOp<LinearOp, LinearDesc> {
 public:
  explicit LinearCpu(const LinearDesc& d) : WeightedCpuOp(d, "linear") {
    check_linear(d);
    create();
  }

 private:
  void build() override {
    const LinearDesc& d = d_;
    const memory::desc x_md({d.N, d.in}, dt::f32, tag::nc), w_md({d.out, d.in}, dt::f32, tag::oi),
        b_md({d.out}, dt::f32, tag::x), y_md({d.N, d.out}, dt::f32, tag::nc);
    auto pick = [&](const memory::desc& user) { return memory::desc(user.dims(), dt::f32, tag::any); };
    const auto attr = user_scratchpad_attr();
    using fwd_t = dnnl::inner_product_forward;
    using bwd_data_t = dnnl::inner_product_backward_data;
    using bwd_w_t = dnnl::inner_product_backward_weights;
    // x and y stay plain: (N,in) and (N,out) have no better layout and the
    // neighbouring ops (global pooling, cross-entropy) use them as they are.
    const auto fwd_d = d.bias ? fwd_t::desc(dnnl::prop_kind::forward_training, x_md, pick(w_md), b_md, y_md)
                              : fwd_t::desc(dnnl::prop_kind::forward_training, x_md, pick(w_md), y_md);
    fwd_t::primitive_desc fwd_pd(fwd_d, attr, engine());
    bwd_data_t::primitive_desc bd_pd(bwd_data_t::desc(x_md, pick(w_md), y_md), attr, engine(), fwd_pd);
    const auto bw_d = d.bias ? bwd_w_t::desc(x_md, pick(w_md), b_md, y_md) : bwd_w_t::desc(x_md, pick(w_md), y_md);
    bwd_w_t::primitive_desc bw_pd(bw_d, attr, engine(), fwd_pd);
    fwd_ = fwd_t(fwd_pd);
    bwd_data_ = bwd_data_t(bd_pd);
    bwd_w_ = bwd_w_t(bw_pd);

    x_.init(x_md, fwd_pd.src_desc(), true);
    w_.init(w_md, fwd_pd.weights_desc(), true);
    b_.init(b_md, b_md, true);
    y_.init(y_md, fwd_pd.dst_desc(), false);
    share_w_ = bd_pd.weights_desc() == fwd_pd.weights_desc();
    if (!share_w_) bd_w_.init(w_md, bd_pd.weights_desc(), true);
    bd_dy_.init(y_md, bd_pd.diff_dst_desc(), true);
    bd_dx_.init(x_md, bd_pd.diff_src_desc(), false);
    bw_x_.init(x_md, bw_pd.src_desc(), true);
    bw_dy_.init(y_md, bw_pd.diff_dst_desc(), true);
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
    saved_w_ = w;
  }

  void run_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db) override {
    if (dx) {
      Staged& sw = share_w_ ? w_ : bd_w_;
      bwd_data_.execute(stream(), {{DNNL_ARG_DIFF_DST, bd_dy_.in(dy)},
                                   {DNNL_ARG_WEIGHTS, sw.in(w, share_w_ && w == saved_w_)},
                                   {DNNL_ARG_DIFF_SRC, bd_dx_.out(dx)},
                                   {DNNL_ARG_SCRATCHPAD, bd_scratch_}});
      bd_dx_.finish();
    }
    if (dw || db) {
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, bw_x_.in(x)},
                                           {DNNL_ARG_DIFF_DST, bw_dy_.in(dy)},
                                           {DNNL_ARG_DIFF_WEIGHTS, bw_dw_.out(dw)},
                                           {DNNL_ARG_SCRATCHPAD, bw_scratch_}};
      if (d_.bias) args[DNNL_ARG_DIFF_BIAS] = bw_db_.out(db);
      bwd_w_.execute(stream(), args);
      bw_dw_.finish();
    }
    stream().wait();
  }

  dnnl::inner_product_forward fwd_;
  dnnl::inner_product_backward_data bwd_data_;
  dnnl::inner_product_backward_weights bwd_w_;
  Staged x_, w_, b_, y_;                 // forward: x (N,in), w (out,in), b (out), y (N,out)
  Staged bd_w_, bd_dy_, bd_dx_;          // backward data: w, dy (N,out), dx (N,in)
  Staged bw_x_, bw_dy_, bw_dw_, bw_db_;  // backward weights: x, dy, dw (out,in), db (out)
  bool share_w_ = false;
  const float* saved_w_ = nullptr;       // what forward left staged in w_
  Scratch scratch_;
  memory fwd_scratch_, bd_scratch_, bw_scratch_;
};

}  // namespace

std::unique_ptr<LinearOp> make_linear(const LinearDesc& d) { return std::make_unique<LinearCpu>(d); }

}  // namespace sln::cpu
