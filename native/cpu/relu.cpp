// ReLU on oneDNN eltwise; backward from the forward output (relu_use_dst_for_bwd).
#include <unordered_map>

#include "cpu/cpu.h"

namespace sln::cpu {

using dnnl::memory;

namespace {

class CpuRelu final : public ReluOp {
 public:
  explicit CpuRelu(const EltwiseDesc& d) : n_(d.n) {
    SLN_CHECK_ARG(d.n >= 1, "relu: n must be >= 1, got " << d.n);
    SLN_DNNL("eltwise relu primitives for n = " << n_, init());
    fwd_args_ = {{DNNL_ARG_SRC, x_}, {DNNL_ARG_DST, y_}};
    bwd_args_ = {{DNNL_ARG_DST, y_}, {DNNL_ARG_DIFF_DST, dy_}, {DNNL_ARG_DIFF_SRC, dx_}};
  }

  void init() {
    auto& eng = engine();
    memory::desc md({static_cast<memory::dim>(n_)}, memory::data_type::f32, memory::format_tag::a);   // (n)
    const auto alg = dnnl::algorithm::eltwise_relu_use_dst_for_bwd;
    {
      dnnl::eltwise_forward::primitive_desc fpd({dnnl::prop_kind::forward_training, alg, md, 0.f, 0.f}, eng);
      dnnl::eltwise_backward::primitive_desc bpd({alg, md, md, 0.f, 0.f}, eng, fpd);
      fwd_ = dnnl::eltwise_forward(fpd);
      bwd_ = dnnl::eltwise_backward(bpd);
      x_ = memory(md, eng, DNNL_MEMORY_NONE);
      y_ = memory(md, eng, DNNL_MEMORY_NONE);
      dy_ = memory(md, eng, DNNL_MEMORY_NONE);
      dx_ = memory(md, eng, DNNL_MEMORY_NONE);
    }
  }

  // x, y (n); x == y allowed
  void forward(const float* x, float* y) override {
    apply_threads();
    x_.set_data_handle(const_cast<float*>(x));
    y_.set_data_handle(y);
    SLN_DNNL("eltwise relu forward n = " << n_, fwd_.execute(stream(), fwd_args_); stream().wait());
  }

  // y (forward output), dy, dx (n); dx == dy allowed; dx null = nothing to do
  void backward(const float* y, const float* dy, float* dx) override {
    if (!dx) return;
    apply_threads();
    y_.set_data_handle(const_cast<float*>(y));
    dy_.set_data_handle(const_cast<float*>(dy));
    dx_.set_data_handle(dx);
    SLN_DNNL("eltwise relu backward n = " << n_, bwd_.execute(stream(), bwd_args_); stream().wait());
  }

 private:
  size_t n_;
  dnnl::eltwise_forward fwd_;
  dnnl::eltwise_backward bwd_;
  memory x_, y_, dy_, dx_;
  std::unordered_map<int, memory> fwd_args_, bwd_args_;
};

}  // namespace

std::unique_ptr<ReluOp> make_relu(const EltwiseDesc& d) { return std::make_unique<CpuRelu>(d); }

}  // namespace sln::cpu
