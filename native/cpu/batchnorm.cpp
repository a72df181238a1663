// Batch norm on oneDNN (batch_normalization, plain NCHW, separate scale and
// shift). oneDNN does not touch running statistics; forward() updates them
// from its batch mean/variance with torch's unbiased correction M/(M-1).
#include <cstring>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "cpu/cpu.h"

namespace sln::cpu {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

class CpuBatchNorm final : public BatchNormOp {
 public:
  explicit CpuBatchNorm(const BatchNormDesc& d) : d_(d) {
    SLN_CHECK_ARG(d.N >= 1 && d.C >= 1 && d.H >= 1 && d.W >= 1,
                  "batchnorm: every size must be >= 1, got (N,C,H,W) = (" << d.N << "," << d.C << ","
                                                                          << d.H << "," << d.W << ")");
    SLN_CHECK_ARG(!d.relu, "batchnorm: a fused ReLU runs on the nChw16c layout only");
    SLN_CHECK_ARG(d.eps > 0, "batchnorm: eps must be > 0, got " << d.eps);
    SLN_CHECK_ARG(d.momentum >= 0 && d.momentum <= 1, "batchnorm: momentum must be in [0,1], got " << d.momentum);
    M_ = static_cast<double>(d.N) * d.H * d.W;
    SLN_DNNL("batch_normalization primitives for " << shape(), init());
    train_args_ = {{DNNL_ARG_SRC, x_},         {DNNL_ARG_DST, y_},          {DNNL_ARG_SCALE, gamma_},
                   {DNNL_ARG_SHIFT, beta_},    {DNNL_ARG_MEAN, mean_},      {DNNL_ARG_VARIANCE, var_}};
    infer_args_ = {{DNNL_ARG_SRC, x_},         {DNNL_ARG_DST, y_},          {DNNL_ARG_SCALE, gamma_},
                   {DNNL_ARG_SHIFT, beta_},    {DNNL_ARG_MEAN, rmean_},     {DNNL_ARG_VARIANCE, rvar_}};
    bwd_args_ = {{DNNL_ARG_SRC, x_},           {DNNL_ARG_MEAN, mean_},      {DNNL_ARG_VARIANCE, var_},
                 {DNNL_ARG_DIFF_DST, dy_},     {DNNL_ARG_SCALE, gamma_},    {DNNL_ARG_DIFF_SRC, dx_},
                 {DNNL_ARG_DIFF_SCALE, dgamma_}, {DNNL_ARG_DIFF_SHIFT, dbeta_},
                 // oneDNN 2.6 lists the shift as a backward input though the
                 // gradients do not depend on it: give it zeros we own
                 {DNNL_ARG_SHIFT, zero_shift_}};
    scratch_c_.resize(2 * static_cast<size_t>(d.C));
  }

  void init() {
    const BatchNormDesc& d = d_;
    auto& eng = engine();
    memory::desc data({d.N, d.C, d.H, d.W}, dt::f32, tag::nchw);   // (N,C,H,W)
    memory::desc vec({d.C}, dt::f32, tag::a);                       // (C)
    const auto ss = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    {
      dnnl::batch_normalization_forward::primitive_desc train_pd(
          {dnnl::prop_kind::forward_training, data, d.eps, ss}, eng);
      dnnl::batch_normalization_forward::primitive_desc infer_pd(
          {dnnl::prop_kind::forward_inference, data, d.eps, ss | dnnl::normalization_flags::use_global_stats}, eng);
      dnnl::batch_normalization_backward::primitive_desc bwd_pd(
          {dnnl::prop_kind::backward, data, data, d.eps, ss}, eng, train_pd);
      train_ = dnnl::batch_normalization_forward(train_pd);
      infer_ = dnnl::batch_normalization_forward(infer_pd);
      bwd_ = dnnl::batch_normalization_backward(bwd_pd);
      // user buffers: handles set per call
      x_ = memory(data, eng, DNNL_MEMORY_NONE);
      y_ = memory(data, eng, DNNL_MEMORY_NONE);
      dy_ = memory(data, eng, DNNL_MEMORY_NONE);
      dx_ = memory(data, eng, DNNL_MEMORY_NONE);
      gamma_ = memory(vec, eng, DNNL_MEMORY_NONE);
      beta_ = memory(vec, eng, DNNL_MEMORY_NONE);
      rmean_ = memory(vec, eng, DNNL_MEMORY_NONE);
      rvar_ = memory(vec, eng, DNNL_MEMORY_NONE);
      dgamma_ = memory(vec, eng, DNNL_MEMORY_NONE);
      dbeta_ = memory(vec, eng, DNNL_MEMORY_NONE);
      // owned: the batch statistics saved for backward
      mean_ = memory(vec, eng);   // (C)
      var_ = memory(vec, eng);    // (C), biased
      zero_shift_ = memory(vec, eng);   // (C)
      std::memset(zero_shift_.get_data_handle(), 0, static_cast<size_t>(d.C) * sizeof(float));
    }
  }

  // x, y (N,C,H,W); gamma, beta, running_mean, running_var (C)
  void forward(const float* x, const float* gamma, const float* beta, float* running_mean,
               float* running_var, float* y, bool training) override {
    apply_threads();
    SLN_CHECK_ARG(!training || M_ > 1, "batchnorm: training needs more than 1 value per channel, got " << shape());
    x_.set_data_handle(const_cast<float*>(x));
    y_.set_data_handle(y);
    gamma_.set_data_handle(const_cast<float*>(gamma));
    beta_.set_data_handle(const_cast<float*>(beta));
    if (!training) {
      rmean_.set_data_handle(running_mean);
      rvar_.set_data_handle(running_var);
      SLN_DNNL("batch_normalization inference " << shape(), infer_.execute(stream(), infer_args_); stream().wait());
      return;
    }
    SLN_DNNL("batch_normalization training " << shape(), train_.execute(stream(), train_args_); stream().wait());
    have_stats_ = true;
    const float* mean = static_cast<const float*>(mean_.get_data_handle());
    const float* var = static_cast<const float*>(var_.get_data_handle());
    const float m = d_.momentum;
    const float unbias = static_cast<float>(M_ / (M_ - 1));
    for (int c = 0; c < d_.C; c++) {
      running_mean[c] = (1 - m) * running_mean[c] + m * mean[c];
      running_var[c] = (1 - m) * running_var[c] + m * var[c] * unbias;
    }
  }

  // dx (N,C,H,W) or null, dgamma, dbeta (C) or null
  void backward(const float* x, const float* gamma, const float* dy, float* dx, float* dgamma,
                float* dbeta) override {
    apply_threads();
    SLN_CHECK_ARG(have_stats_, "batchnorm: backward needs a training forward first " << shape());
    if (!dx && scratch_dx_.empty()) scratch_dx_.resize(static_cast<size_t>(M_) * d_.C);   // once, only if asked
    x_.set_data_handle(const_cast<float*>(x));
    gamma_.set_data_handle(const_cast<float*>(gamma));
    dy_.set_data_handle(const_cast<float*>(dy));
    dx_.set_data_handle(dx ? dx : scratch_dx_.data());
    dgamma_.set_data_handle(dgamma ? dgamma : scratch_c_.data());
    dbeta_.set_data_handle(dbeta ? dbeta : scratch_c_.data() + d_.C);
    SLN_DNNL("batch_normalization backward " << shape(), bwd_.execute(stream(), bwd_args_); stream().wait());
  }

 private:
  std::string shape() const {
    std::ostringstream os;
    os << "(N,C,H,W) = (" << d_.N << "," << d_.C << "," << d_.H << "," << d_.W << ")";
    return os.str();
  }

  BatchNormDesc d_;
  double M_ = 1;   // N*H*W values per channel
  bool have_stats_ = false;
  dnnl::batch_normalization_forward train_, infer_;
  dnnl::batch_normalization_backward bwd_;
  memory x_, y_, dy_, dx_, gamma_, beta_, rmean_, rvar_, dgamma_, dbeta_, mean_, var_, zero_shift_;
  std::unordered_map<int, memory> train_args_, infer_args_, bwd_args_;
  std::vector<float> scratch_c_;    // (2, C): dgamma/dbeta when the caller passes null
  std::vector<float> scratch_dx_;   // (N,C,H,W): dx when the caller passes null
};

}  // namespace

std::unique_ptr<BatchNormOp> make_batchnorm(const BatchNormDesc& d) { return std::make_unique<CpuBatchNorm>(d); }

}  // namespace sln::cpu
