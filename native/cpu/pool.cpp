// Max and average pooling on oneDNN (pooling_max with a workspace kept for
// backward; pooling_avg_include_padding = torch's count_include_pad=True).
// Floor output size as torch: oneDNN's (H - k + pad_l + pad_r) / stride + 1
// with pad_r = pad_l rounds down the same way. NCHW or nChw16c (Layout).
#include <sstream>
#include <unordered_map>

#include "cpu/cpu.h"
#include "sln/shape_checks.h"

namespace sln::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {


class CpuPool final : public Pool2dOp {
 public:
  CpuPool(const Pool2dDesc& d, bool is_max) : d_(d), max_(is_max), name_(is_max ? "maxpool2d" : "avgpool2d") {
    check_pool(name_, d);
    check_layout(d.layout, d.C, name_);
    SLN_DNNL("pooling primitives for " << pool_shape(name_, d), init());
    fwd_args_ = {{DNNL_ARG_SRC, x_}, {DNNL_ARG_DST, y_}};
    bwd_args_ = {{DNNL_ARG_DIFF_DST, dy_}, {DNNL_ARG_DIFF_SRC, dx_}};
    if (is_max) {
      fwd_args_[DNNL_ARG_WORKSPACE] = ws_;
      bwd_args_[DNNL_ARG_WORKSPACE] = ws_;
    }
  }

  void init() {
    const Pool2dDesc& d = d_;
    const bool is_max = max_;
    auto& eng = engine();
    memory::desc src({d.N, d.C, d.H, d.W}, dt::f32, layout_tag(d.layout));       // (N,C,H,W)
    memory::desc dst({d.N, d.C, d.OH(), d.OW()}, dt::f32, layout_tag(d.layout));  // (N,C,OH,OW)
    memory::dims strides = {d.stride, d.stride}, kernel = {d.KH(), d.KW()}, pad = {d.pad, d.pad};
    const auto alg = is_max ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_include_padding;
    {
      dnnl::pooling_forward::primitive_desc fpd(
          {dnnl::prop_kind::forward_training, alg, src, dst, strides, kernel, pad, pad}, eng);
      dnnl::pooling_backward::primitive_desc bpd({alg, src, dst, strides, kernel, pad, pad}, eng, fpd);
      fwd_ = dnnl::pooling_forward(fpd);
      bwd_ = dnnl::pooling_backward(bpd);
      x_ = memory(src, eng, DNNL_MEMORY_NONE);
      y_ = memory(dst, eng, DNNL_MEMORY_NONE);
      dy_ = memory(dst, eng, DNNL_MEMORY_NONE);
      dx_ = memory(src, eng, DNNL_MEMORY_NONE);
      if (is_max) ws_ = memory(fpd.workspace_desc(), eng);   // argmax per output, owned
    }
  }

  // x (N,C,H,W), y (N,C,OH,OW). Always a training forward: the max workspace is
  // cheap and lets backward follow an eval forward too.
  void forward(const float* x, float* y, bool /*training*/) override {
    apply_threads();
    x_.set_data_handle(const_cast<float*>(x));
    y_.set_data_handle(y);
    SLN_DNNL(pool_shape(name_, d_) << " forward", fwd_.execute(stream(), fwd_args_); stream().wait());
    have_ws_ = true;
  }

  // dy (N,C,OH,OW), dx (N,C,H,W) or null
  void backward(const float* dy, float* dx) override {
    if (!dx) return;
    apply_threads();
    SLN_CHECK_ARG(!max_ || have_ws_, pool_shape(name_, d_) << ": backward needs a forward first");
    dy_.set_data_handle(const_cast<float*>(dy));
    dx_.set_data_handle(dx);
    SLN_DNNL(pool_shape(name_, d_) << " backward", bwd_.execute(stream(), bwd_args_); stream().wait());
  }

 private:
  Pool2dDesc d_;
  bool max_;
  const char* name_;
  bool have_ws_ = false;
  dnnl::pooling_forward fwd_;
  dnnl::pooling_backward bwd_;
  memory x_, y_, dy_, dx_, ws_;
  std::unordered_map<int, memory> fwd_args_, bwd_args_;
};

}  // namespace

std::unique_ptr<Pool2dOp> make_maxpool2d(const Pool2dDesc& d) { return std::make_unique<CpuPool>(d, true); }
std::unique_ptr<Pool2dOp> make_avgpool2d(const Pool2dDesc& d) { return std::make_unique<CpuPool>(d, false); }

}  // namespace sln::cpu
