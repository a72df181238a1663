// The fused inference trunk (sln/ops.h InferOp) on oneDNN: every conv step is
// one forward_inference convolution with its eval-mode batch norm folded into
// the weights and bias (w' = w s, b' = (b - mean) s + beta, s = gamma /
// sqrt(var + eps), computed in float64) and its ReLU as a post-op; pooling
// steps are pooling primitives. Activations stay in the layout oneDNN prefers
// (format_tag::any: blocked or channels-last) from the first step to the last:
// one reorder in (float32 NCHW -> the first conv's source, converting to
// bfloat16 when asked) and one out (the last step's output -> float32 plain).
// In bfloat16 the weights are converted once per refresh() (once per label
// pass) and the convolutions accumulate in float32.
#include <cmath>
#include <unordered_map>

#include "cpu/cpu.h"

namespace sln::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

class InferCpu final : public InferOp {
 public:
  explicit InferCpu(const InferDesc& d) : d_(d) {
    SLN_CHECK_ARG(!d.steps.empty() && !d.steps[0].pool, "infer: the trunk must start with a convolution");
    apply_threads();
    SLN_DNNL("fused inference trunk creation", build());
  }

  void refresh() override {
    apply_threads();
    SLN_DNNL("fused inference trunk weights", fold());
  }

  void forward(const float* x, float* y) override {
    apply_threads();
    SLN_DNNL("fused inference trunk forward", run(x, y));
  }

 private:
  struct Step {
    dnnl::primitive prim;
    memory src, dst, w, b;   // w, b: conv steps
    memory user_w;           // float32 (K, C, R, S) folded weights on the host
    std::vector<float> wf, bf;
  };

  void build() {
    const dt act = d_.bf16 ? dt::bf16 : dt::f32;
    const int N = d_.N;
    memory::desc prev;
    bool have_prev = false;
    for (const InferStep& s : d_.steps) {
      Step st;
      if (!s.pool) {
        const Conv2dDesc& c = s.conv;
        const memory::dims xd{N, c.C, c.H, c.W}, wd{c.K, c.C, c.R, c.S}, bd{c.K}, yd{N, c.K, c.OH(), c.OW()};
        const memory::desc src = have_prev ? prev : memory::desc(xd, act, tag::any);
        const auto cd = dnnl::convolution_forward::desc(
            dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, memory::desc(wd, act, tag::any),
            memory::desc(bd, dt::f32, tag::x), memory::desc(yd, act, tag::any), {c.stride, c.stride}, {c.pad, c.pad},
            {c.pad, c.pad});
        dnnl::primitive_attr attr;
        if (s.relu) {
          dnnl::post_ops po;
          po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
          attr.set_post_ops(po);
        }
        dnnl::convolution_forward::primitive_desc pd(cd, attr, engine());
        st.prim = dnnl::convolution_forward(pd);
        st.src = steps_.empty() ? memory(pd.src_desc(), engine()) : steps_.back().dst;
        st.dst = memory(pd.dst_desc(), engine());
        st.w = memory(pd.weights_desc(), engine());
        st.b = memory(memory::desc(bd, dt::f32, tag::x), engine());
        st.wf.resize(static_cast<size_t>(c.K) * c.C * c.R * c.S);
        st.bf.resize(c.K);
        st.user_w = memory(memory::desc(wd, dt::f32, tag::oihw), engine(), st.wf.data());
        if (steps_.empty()) {   // the input: float32 NCHW -> the first conv's source
          in_user_ = memory(memory::desc(xd, dt::f32, tag::nchw), engine(), DNNL_MEMORY_NONE);
          in_reorder_ = dnnl::reorder(in_user_, st.src);
        }
      } else {
        SLN_CHECK_ARG(have_prev, "infer: a pooling step needs a step before it");
        const Pool2dDesc& p = s.pool_desc;
        const memory::dims yd{N, p.C, p.OH(), p.OW()};
        const auto alg = s.pool_max ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_include_padding;
        const auto pdsc = dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference, alg, prev,
                                                      memory::desc(yd, act, tag::any), {p.stride, p.stride},
                                                      {p.KH(), p.KW()}, {p.pad, p.pad}, {p.pad, p.pad});
        dnnl::pooling_forward::primitive_desc pd(pdsc, engine());
        st.prim = dnnl::pooling_forward(pd);
        st.src = steps_.back().dst;
        st.dst = memory(pd.dst_desc(), engine());
      }
      prev = st.dst.get_desc();
      have_prev = true;
      steps_.push_back(std::move(st));
    }
    // the output: the last step's (N, C, H, W) in float32 plain
    const memory::dims od = prev.dims();
    out_user_ = memory(memory::desc(od, dt::f32, tag::nchw), engine(), DNNL_MEMORY_NONE);
    out_reorder_ = dnnl::reorder(steps_.back().dst, out_user_);
  }

  void fold() {
    for (size_t i = 0; i < steps_.size(); i++) {
      const InferStep& s = d_.steps[i];
      if (s.pool) continue;
      Step& st = steps_[i];
      const Conv2dDesc& c = s.conv;
      const size_t per = static_cast<size_t>(c.C) * c.R * c.S;
      for (int k = 0; k < c.K; k++) {
        double scale = 1, shift = s.b ? s.b[k] : 0.0;
        if (s.gamma) {
          scale = static_cast<double>(s.gamma[k]) / std::sqrt(static_cast<double>(s.var[k]) + static_cast<double>(s.eps));
          shift = (shift - static_cast<double>(s.mean[k])) * scale + static_cast<double>(s.beta[k]);
        }
        const float* w = s.w + k * per;
        float* dst = st.wf.data() + k * per;
        for (size_t j = 0; j < per; j++) dst[j] = static_cast<float>(static_cast<double>(w[j]) * scale);
        st.bf[k] = static_cast<float>(shift);
      }
      dnnl::reorder(st.user_w, st.w).execute(stream(), st.user_w, st.w);
      std::copy(st.bf.begin(), st.bf.end(), static_cast<float*>(st.b.get_data_handle()));
    }
    stream().wait();
    folded_ = true;
  }

  void run(const float* x, float* y) {
    SLN_CHECK_ARG(folded_, "infer: forward before refresh()");
    in_user_.set_data_handle(const_cast<float*>(x));
    in_reorder_.execute(stream(), in_user_, steps_[0].src);
    for (size_t i = 0; i < steps_.size(); i++) {
      Step& st = steps_[i];
      if (!d_.steps[i].pool) {
        st.prim.execute(stream(), {{DNNL_ARG_SRC, st.src}, {DNNL_ARG_WEIGHTS, st.w}, {DNNL_ARG_BIAS, st.b}, {DNNL_ARG_DST, st.dst}});
      } else {
        st.prim.execute(stream(), {{DNNL_ARG_SRC, st.src}, {DNNL_ARG_DST, st.dst}});
      }
    }
    out_user_.set_data_handle(y);
    out_reorder_.execute(stream(), steps_.back().dst, out_user_);
    stream().wait();
  }

  InferDesc d_;
  std::vector<Step> steps_;
  memory in_user_, out_user_;
  dnnl::reorder in_reorder_, out_reorder_;
  bool folded_ = false;
};

}  // namespace

std::unique_ptr<InferOp> make_infer(const InferDesc& d) { return std::make_unique<InferCpu>(d); }

bool bf16_native() {
  const auto isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

}  // namespace sln::cpu
