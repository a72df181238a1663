// The CPU backend object: threads, description, and dispatch to the op files.
#include <cstdlib>
#include <cstring>
#include <string>
#include <sstream>
#include <thread>

#include "cpu/cpu.h"

namespace sln::cpu {

static int default_threads() {
  if (const char* s = std::getenv("SELFLABEL_NUM_THREADS")) {
    int n = std::atoi(s);
    if (n >= 1) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

static int g_threads = default_threads();

int threads() { return g_threads; }
void apply_threads() {
  if (omp_get_max_threads() != g_threads) omp_set_num_threads(g_threads);
}

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// oneDNN CPU streams are cheap; each calling thread gets its own so two
// models running on two pool threads do not share one.
dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

static const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  void set_num_threads(int n) override { g_threads = n < 1 ? 1 : n; }
  int num_threads() const override { return g_threads; }
  std::string describe() const override {
    const dnnl_version_t* v = dnnl_version();
    std::ostringstream os;
    os << "oneDNN " << v->major << "." << v->minor << "." << v->patch << " (" << (v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : v->cpu_runtime == DNNL_RUNTIME_TBB ? "TBB" : "other") << ")"
       << ", ISA " << isa_name(dnnl::get_effective_cpu_isa()) << ", " << g_threads << " threads";
    return os.str();
  }
  std::unique_ptr<Conv2dOp> conv2d(const Conv2dDesc& d) override { return make_conv2d(d); }
  std::unique_ptr<BatchNormOp> batchnorm(const BatchNormDesc& d) override {
    return d.layout == Layout::blocked16 ? make_batchnorm_blocked(d) : make_batchnorm(d);
  }
  std::unique_ptr<ReluOp> relu(const EltwiseDesc& d) override { return make_relu(d); }
  std::unique_ptr<Pool2dOp> maxpool2d(const Pool2dDesc& d) override { return make_maxpool2d(d); }
  std::unique_ptr<Pool2dOp> avgpool2d(const Pool2dDesc& d) override { return make_avgpool2d(d); }
  std::unique_ptr<LinearOp> linear(const LinearDesc& d) override { return make_linear(d); }
  std::unique_ptr<DropoutOp> dropout(const DropoutDesc& d) override { return make_dropout(d); }
  std::unique_ptr<InferOp> infer(const InferDesc& d) override { return make_infer(d); }
  bool bf16_native() const override { return cpu::bf16_native(); }
  double cross_entropy(const float* logits, const int32_t* labels, int N, int K, float* dlogits,
                       float scale) override {
    apply_threads();
    return cpu::cross_entropy(logits, labels, N, K, dlogits, scale);
  }
  void sgd_step(float* w, const float* g, float* buf, size_t n, float lr, float momentum,
                float weight_decay, bool first) override {
    apply_threads();
    cpu::sgd_step(w, g, buf, n, lr, momentum, weight_decay, first);
  }
  bool blocked_layouts() const override { return cpu::blocked_layouts(); }
  void reorder(const float* src, Layout from, float* dst, Layout to, int N, int C, int H, int W) override {
    reorder_layout(src, from, dst, to, N, C, H, W);
  }
  void add_inplace(float* y, const float* x, size_t n) override {
    apply_threads();
#pragma omp parallel for schedule(static)
    for (long i = 0; i < static_cast<long>(n); i++) y[i] += x[i];
  }
};

// Blocked (nChw16c) activations through the trunk where the vectors are 16
// floats wide (AVX-512): there oneDNN's convolutions, batch norm and pooling
// all prefer that layout. SELFLABEL_LAYOUT=plain|blocked overrides (to compare).
bool blocked_layouts() {   // read when a model is built
  const char* e = std::getenv("SELFLABEL_LAYOUT");
  if (e && std::string(e) == "plain") return false;
  if (e && std::string(e) == "blocked") return true;
  return dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core;
}

void reorder_layout(const float* src, Layout from, float* dst, Layout to, int N, int C, int H, int W) {
  apply_threads();
  check_layout(from, C, "reorder");
  check_layout(to, C, "reorder");
  const size_t HW = static_cast<size_t>(H) * W;
  if (from == to) {
    std::memcpy(dst, src, static_cast<size_t>(N) * C * HW * sizeof(float));
    return;
  }
  // one (image, 16-channel block) per iteration: 16 planes <-> one interleaved block
  const long blocks = static_cast<long>(N) * (C / 16);
#pragma omp parallel for schedule(static)
  for (long nb = 0; nb < blocks; nb++) {
    const float* s = src + static_cast<size_t>(nb) * 16 * HW;
    float* d = dst + static_cast<size_t>(nb) * 16 * HW;
    if (to == Layout::blocked16) {
      for (size_t i = 0; i < HW; i++)
        for (int c = 0; c < 16; c++) d[i * 16 + c] = s[c * HW + i];
    } else {
      for (int c = 0; c < 16; c++)
        for (size_t i = 0; i < HW; i++) d[c * HW + i] = s[i * 16 + c];
    }
  }
}

}  // namespace sln::cpu

namespace sln {
Backend& cpu_backend() {
  static cpu::CpuBackend b;
  return b;
}
}  // namespace sln
