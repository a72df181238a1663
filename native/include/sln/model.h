// A model is a trunk (a list of layers in execution order) producing a feature
// vector, plus heads (Linear layers) on that feature. No autograd: backward
// walks the trunk in reverse. Parameters, gradients and momentum buffers live
// in flat arenas with a name/offset table (PyTorch names), so a checkpoint is
// bytes plus that table and PyTorch state_dicts map one to one.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sln/ops.h"

namespace sln {

struct Shape3 {
  int C = 0, H = 0, W = 0;
  size_t size() const { return static_cast<size_t>(C) * H * W; }
};

// Where a named tensor lives. kind: "param" (trained, in the param arena,
// with a gradient and a momentum buffer) or "buffer" (running statistics).
struct TensorEntry {
  std::string name;
  std::vector<int> shape;
  size_t offset = 0;
  size_t size = 0;
  bool is_param = true;
};

class Arena {
 public:
  // Reserve a named tensor; returns its offset. Only before finalize().
  size_t add(const std::string& name, std::vector<int> shape, bool is_param);
  void finalize();   // allocate storage (zeros)
  float* param(size_t off) { return params_.data() + off; }
  float* grad(size_t off) { return grads().data() + off; }
  float* buffer(size_t off) { return buffers_.data() + off; }
  const std::vector<TensorEntry>& entries() const { return entries_; }
  const TensorEntry* find(const std::string& name) const;
  float* data_of(const TensorEntry& e) { return e.is_param ? param(e.offset) : buffer(e.offset); }
  std::vector<float>& params() { return params_; }
  // Gradients and momentum are allocated (zeros) on first use, so a model
  // used only for inference never pays for them.
  std::vector<float>& grads() {
    if (grads_.size() != n_params_) grads_.assign(n_params_, 0.f);
    return grads_;
  }
  std::vector<float>& momentum() {
    if (momentum_.size() != n_params_) momentum_.assign(n_params_, 0.f);
    return momentum_;
  }
  std::vector<float>& buffers() { return buffers_; }
  bool has_momentum = false;   // false until the first SGD step (torch creates buf on first step)

 private:
  std::vector<TensorEntry> entries_;
  size_t n_params_ = 0, n_buffers_ = 0;
  std::vector<float> params_, grads_, momentum_, buffers_;
};

// Temporary buffers shared by the layers of one model (calls are serialised
// by the model's mutex): a fixed set of slots, each grown on demand, so
// growing one slot never moves another. Contents do not survive across
// layers; a layer that needs data from forward in backward keeps its own.
class Scratch {
 public:
  static constexpr int kSlots = 8;
  float* get(int slot, size_t n);
  void clear();

 private:
  std::vector<float> bufs_[kSlots];
};

// Per-call context for layers.
struct RunCtx {
  Backend* backend = nullptr;
  Arena* arena = nullptr;
  int N = 0;
  bool training = false;
  uint64_t seed = 0;   // dropout seed for this step
  Scratch* scratch = nullptr;
};

class InitRng;   // deterministic initialisation stream (core/layers.h)

class Layer {
 public:
  virtual ~Layer() = default;
  std::string name;   // PyTorch prefix, e.g. "features.0"
  Shape3 in, out;     // per-sample shapes
  virtual const char* kind() const = 0;
  // forward: x (N, in), y (N, out). backward: dx may be null (first layer).
  virtual void forward(RunCtx& c, const float* x, float* y) = 0;
  virtual void backward(RunCtx& c, const float* x, const float* y, const float* dy, float* dx) = 0;
  // Drop cached ops for batch sizes other than keep_n (memory bound).
  virtual void trim(int keep_n) {}
  // Initialise parameters and buffers (after Arena::finalize), in the order
  // the reference's modules are visited.
  virtual void init(Arena& a, InitRng& rng) {}
  // Throw a clear error when a training forward with batch N cannot run
  // (batch norm with a single value per channel, as PyTorch).
  virtual void check_train_batch(int N) const {}
};

struct ModelSpec {
  std::string arch = "smallcnn";
  std::string arch_spec = "big";      // alexnet: "big" | "small" (reference --archspec)
  int small_input = -1;               // resnets: 1 = 3x3 stem, stride 1, no max pool;
                                      // 0 = ImageNet stem; -1 = auto (H and W <= 64)
  std::vector<int> num_classes{10};   // one entry per head
  Shape3 input{3, 32, 32};
  uint64_t seed = 0;
};

struct StepOptions {
  float lr = 0.05f, momentum = 0.9f, weight_decay = 1e-5f;
};

struct StepResult {
  double loss = 0;                 // mean of the heads' losses
  std::vector<double> head_losses;
};

enum class OutputKind { Logits, Probs, Features };

// One trunk layer as the probes see it: PyTorch module name, kind, output shape.
struct TrunkLayerInfo {
  std::string name;
  std::string kind;
  Shape3 out;
};

class Model {
 public:
  Model(const ModelSpec& spec, Backend& backend);
  ~Model();
  const ModelSpec& spec() const { return spec_; }
  Arena& arena() { return arena_; }
  int feature_dim() const { return feature_dim_; }
  size_t num_heads() const { return heads_.size(); }
  Backend& backend() { return *backend_; }

  // images (N, C, H, W); labels[h] (N) in [0, num_classes[h]).
  StepResult train_step(const float* images, int N, const std::vector<const int32_t*>& labels,
                        const StepOptions& opt);
  // Features (N, D) or per-head logits/probs (N, K_h), concatenated head by head.
  void forward(const float* images, int N, bool training, OutputKind kind, std::vector<float>& out);

  // Trunk layers in execution order (taps index this list).
  std::vector<TrunkLayerInfo> trunk_layers() const;
  // Intermediate activations for the linear probes: an eval-mode forward of the
  // trunk up to the deepest tap; right after trunk layer taps[t] runs,
  // sink(t, its output (N, out) in host memory, valid during the call).
  void forward_taps(const float* images, int N, const std::vector<int>& taps,
                    const std::function<void(size_t, const float*)>& sink);

  std::mutex& mutex() { return mu_; }
  // Steps taken (seeds dropout); saved in checkpoints for exact resume.
  uint64_t step() const { return step_; }
  void set_step(uint64_t s) { step_ = s; }

 private:
  struct Head;
  struct Plan;
  Plan& plan_for(int N, bool training);
  void run_trunk(Plan& p, RunCtx& c, const float* images);

  ModelSpec spec_;
  Backend* backend_;
  Arena arena_;
  std::vector<std::unique_ptr<Layer>> trunk_;
  std::vector<std::unique_ptr<Head>> heads_;
  int feature_dim_ = 0;
  std::map<std::pair<int, bool>, std::unique_ptr<Plan>> plans_;
  uint64_t step_ = 0;
  Scratch scratch_;
  std::mutex mu_;
};

// Architectures known to the builder (names for error messages).
std::vector<std::string> known_archs();

}  // namespace sln
