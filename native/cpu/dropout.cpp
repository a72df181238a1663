// Dropout: own OpenMP loop; the mask comes from the shared counter-based
// generator (core/dropout_mask.h), so it equals the reference's bit for bit.
#include <cstring>
#include <vector>

#include "core/dropout_mask.h"
#include "cpu/cpu.h"

namespace sln::cpu {

namespace {

class CpuDropout final : public DropoutOp {
 public:
  explicit CpuDropout(const DropoutDesc& d) : n_(d.n), p_(d.p) {
    SLN_CHECK_ARG(d.n >= 1, "dropout: n must be >= 1, got " << d.n);
    SLN_CHECK_ARG(d.p >= 0.0f && d.p < 1.0f, "dropout: p must be in [0, 1), got " << d.p << " (n = " << d.n << ")");
    scale_ = static_cast<float>(1.0 / (1.0 - static_cast<double>(d.p)));
    threshold_ = dropout_threshold(d.p);
    mask_.resize(n_);
  }

  // x, y (n); x == y allowed
  void forward(const float* x, float* y, bool training, uint64_t seed) override {
    apply_threads();
    training_ = training;
    if (!training) {
      if (y != x) std::memcpy(y, x, n_ * sizeof(float));
      return;
    }
    uint8_t* mask = mask_.data();
    const uint64_t thr = threshold_;
    const float scale = scale_;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < static_cast<long>(n_); i++) {
      const uint8_t keep = dropout_keep(seed, static_cast<uint64_t>(i), thr) ? 1 : 0;
      mask[i] = keep;
      y[i] = keep ? x[i] * scale : 0.0f;
    }
  }

  // dy, dx (n); dx == dy allowed; the same mask as the last forward
  void backward(const float* dy, float* dx) override {
    if (!dx) return;
    apply_threads();
    if (!training_) {
      if (dx != dy) std::memcpy(dx, dy, n_ * sizeof(float));
      return;
    }
    const uint8_t* mask = mask_.data();
    const float scale = scale_;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < static_cast<long>(n_); i++) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
  }

 private:
  size_t n_;
  float p_;
  float scale_ = 1;
  uint64_t threshold_ = 0;
  bool training_ = false;
  std::vector<uint8_t> mask_;   // (n), 1 = kept
};

}  // namespace

std::unique_ptr<DropoutOp> make_dropout(const DropoutDesc& d) { return std::make_unique<CpuDropout>(d); }

}  // namespace sln::cpu
