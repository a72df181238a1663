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

namespace sinkhorn {
struct Options;
struct Result;
}  // namespace sinkhorn

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

// Parameters, gradients, momentum and buffers live in memory of the model's
// backend (sln::Buffer): host memory on the CPU, device memory on CUDA. Host
// code never dereferences param()/grad()/buffer() pointers unless
// backend().host_memory(); it goes through read()/write() (download/upload).
class Arena {
 public:
  // Reserve a named tensor; returns its offset. Only before finalize().
  size_t add(const std::string& name, std::vector<int> shape, bool is_param);
  // Allocate storage (zeros) in `backend`'s memory. Parameter initialisation
  // then writes host_param()/host_buffer() and calls upload_init().
  void finalize(Backend& backend);
  Backend& backend() const { return *be_; }
  float* param(size_t off) { return params_.f32() + off; }
  float* grad(size_t off) { return grads() + off; }
  float* buffer(size_t off) { return buffers_.f32() + off; }
  const std::vector<TensorEntry>& entries() const { return entries_; }
  const TensorEntry* find(const std::string& name) const;
  float* data_of(const TensorEntry& e) { return e.is_param ? param(e.offset) : buffer(e.offset); }
  float* params() { return params_.f32(); }
  size_t num_params() const { return n_params_; }     // floats in the param arena (with padding)
  size_t num_buffers() const { return n_buffers_; }
  // Gradients and momentum are allocated (zeros) on first use, so a model
  // used only for inference never pays for them.
  float* grads();
  float* momentum();
  float* buffers() { return buffers_.f32(); }
  // Bumped by every change of the parameters or buffers (write, upload_init,
  // an SGD step, a training-mode forward's running statistics): caches of
  // derived weights (the fused inference trunk) compare it.
  uint64_t version() const { return version_; }
  void touch() { version_++; }
  bool has_momentum = false;   // false until the first SGD step (torch creates buf on first step)

  // Host staging for initialisation: the arena itself when the backend's
  // memory is host memory (no copy), else host vectors uploaded by upload_init().
  float* host_param(size_t off);
  float* host_buffer(size_t off);
  void upload_init();

  // Copy one tensor (e.size floats) between the arena and host memory.
  // which: the tensor itself, or its momentum buffer (params only).
  void read(const TensorEntry& e, float* host, bool momentum_buffer = false);
  void write(const TensorEntry& e, const float* host, bool momentum_buffer = false);
  void zero_momentum();

 private:
  std::vector<TensorEntry> entries_;
  size_t n_params_ = 0, n_buffers_ = 0;
  Backend* be_ = nullptr;
  Buffer params_, grads_, momentum_, buffers_;
  bool grads_ready_ = false, momentum_ready_ = false;
  uint64_t version_ = 0;
  std::vector<float> init_params_, init_buffers_;   // staging (device backends, until upload_init)
};

// Temporary buffers shared by the layers of one model (calls are serialised
// by the model's mutex): a fixed set of slots in the backend's memory, each
// grown on demand, so growing one slot never moves another. Contents do not
// survive across layers; a layer that needs data from forward in backward
// keeps its own.
class Scratch {
 public:
  static constexpr int kSlots = 8;
  void bind(Backend& b) { be_ = &b; }
  float* get(int slot, size_t n);
  void clear();

 private:
  Backend* be_ = nullptr;
  Buffer bufs_[kSlots];
};

// Data-parallel training over several processes (lib/distributed; the collectives
// come from addon/mpi_loader.cpp). Null in a single-process run.
struct DistHooks {
  // In place over the ranks: the sum of the whole gradient arena (n floats, the
  // backend's memory), once per step between backward and the SGD update.
  std::function<void(float* grads, size_t n)> grad_sum;
  // In place over the ranks: the sum of n doubles (host). Set = synchronised
  // batch norm (--sync-bn: training-mode statistics over the global batch).
  std::function<void(double* v, size_t n)> bn_sum;
};

// Per-call context for layers.
struct RunCtx {
  Backend* backend = nullptr;
  Arena* arena = nullptr;
  int N = 0;
  bool training = false;
  uint64_t seed = 0;   // dropout seed for this step
  Scratch* scratch = nullptr;
  const DistHooks* dist = nullptr;   // a distributed training step (StepOptions::dist)
  // distributed step: this rank's first image's position in the global batch
  // (dropout draws the masks of the global positions: StepOptions::row_offset)
  int64_t row_offset = 0;
  // run every layer on its own: no ReLU fused into the layer before it
  // (Layer::fuse_relu); forward_taps sets it when it taps a fused layer's output
  bool no_fuse = false;
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
  // Activation layouts (sln/ops.h Layout): what forward reads in x (and
  // backward writes in dx), and what it writes in y (and reads in dy).
  // Model::assign_layouts sets them once, after the trunk is built: a layer
  // gets its input in input_layout(arriving) (the model reorders when that
  // differs), then set_layouts() picks its output's. The defaults: plain only.
  Layout in_layout = Layout::plain, out_layout = Layout::plain;
  virtual Layout input_layout(Layout arriving, bool blocked_ok) const { return Layout::plain; }
  virtual void set_layouts(Layout in_l, bool blocked_ok) { in_layout = in_l, out_layout = Layout::plain; }
  // The fused inference trunk (sln/ops.h InferDesc): append this layer to
  // `steps` (a conv or pool starts a step; batch norm and ReLU join the conv
  // before them); false when it cannot join (the trunk then has no fused form).
  virtual bool infer_step(Arena& a, std::vector<InferStep>& steps) { return false; }
  // Mixed precision (ModelSpec::bf16): convolutions take bfloat16 operands
  // (Conv2dDesc::bf16); every other layer stays float32.
  virtual void set_bf16(bool on) {}
  // ReLU fusion, decided after the layouts (Model::assign_layouts and
  // ResidualBlock::set_layouts): fuse_relu(true) asks this layer to apply the
  // ReLU that follows it too; when it returns true the ReLU is marked
  // fused_into_prev, and the caller then skips that ReLU's forward and backward
  // (its output is this layer's output buffer, its gradient goes straight to
  // this layer's backward). fuse_relu(false) undoes it. Unless RunCtx::no_fuse.
  virtual bool fuse_relu(bool on) { return false; }
  bool fused_into_prev = false;
};

struct ModelSpec {
  std::string arch = "smallcnn";
  std::string arch_spec = "big";      // alexnet: "big" | "small" (reference --archspec)
  int small_input = -1;               // resnets: 1 = 3x3 stem, stride 1, no max pool;
                                      // 0 = ImageNet stem; -1 = auto (H and W <= 64)
  std::vector<int> num_classes{10};   // one entry per head
  Shape3 input{3, 32, 32};
  uint64_t seed = 0;
  // Mixed-precision training (--precision bf16): the convolutions round x, w
  // and dy to bfloat16 and accumulate in float32; the master weights, batch
  // norm, pooling, linear layers and the loss stay float32. CPU only.
  bool bf16 = false;
};

struct StepOptions {
  float lr = 0.05f, momentum = 0.9f, weight_decay = 1e-5f;
  // Distributed step: this rank's images are loss_scale = n_local / n_global of the
  // global batch (the loss gradient is scaled by it, so the gradients summed by
  // dist->grad_sum are those of the global batch's mean loss).
  float loss_scale = 1.f;
  const DistHooks* dist = nullptr;
  // Distributed step: the position of this rank's first image in the global batch,
  // so that dropout draws each image's mask at its global position (R ranks drop
  // the elements one process drops).
  int64_t row_offset = 0;
  // run every layer on its own: no ReLU fused into the layer before it
  // (Layer::fuse_relu); forward_taps sets it when it taps a fused layer's output
  bool no_fuse = false;
};

struct StepResult {
  double loss = 0;                 // mean of the heads' losses
  std::vector<double> head_losses;
};

// FeaturesAndLogits: the features (N, D) followed by each head's logits (N, K_h), from one
// trunk pass (evaluation needs both).
enum class OutputKind { Logits, Probs, Features, FeaturesAndLogits };

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
  // The same step, but the batch is written by fill(x) straight into the
  // model's own (N, C, H, W) input buffer in the backend's memory (device
  // memory on CUDA): the GPU augmentation writes there instead of the host
  // producing floats that are then uploaded. Labels and the batch size are
  // checked before fill runs; when fill throws, nothing was changed.
  StepResult train_step_fill(int N, const std::function<void(float* x)>& fill,
                             const std::vector<const int32_t*>& labels, const StepOptions& opt);
  // Features (N, D) or per-head logits/probs (N, K_h), concatenated head by head.
  void forward(const float* images, int N, bool training, OutputKind kind, std::vector<float>& out);
  // Per head, the argmax of each image's logits (N per head, concatenated head
  // by head; first maximum wins, as torch.argmax), computed natively; with
  // `features`, also the (N, D) features of the same pass.
  void forward_argmax(const float* images, int N, bool training, std::vector<int32_t>& out,
                      std::vector<float>* features = nullptr);

  // ---- label state (core/label_state.cpp) ----
  // Per head, the current label of each of the n training images (host int32),
  // and the store a label pass fills: collect() runs a batch through the
  // network and keeps what relabel() needs at the batch's dataset indices
  // (features on host-memory backends, where the solver computes the logits
  // block by block from them and the heads' own weights; every head's logits,
  // in the backend's memory, on device backends). relabel() solves each head
  // by Sinkhorn, replaces its labels and frees the store.
  // train_step_indexed gathers the batch's labels from the state by index.
  void set_labels(std::vector<std::vector<int32_t>> labels);
  // A row-sharded label pass (lib/distributed/label_pass.ts): the store holds
  // rows [begin, end) of the label state only (collect() takes their dataset
  // indices), relabel() then solves them with each options' shard and returns
  // this rank's labels without replacing the state (the caller gathers every
  // rank's and calls set_labels). begin = end = 0: every row (the default).
  void set_label_rows(int64_t begin, int64_t end);
  const std::vector<std::vector<int32_t>>& labels() const { return labels_; }
  int64_t num_labelled() const { return labels_.empty() ? 0 : static_cast<int64_t>(labels_[0].size()); }
  // bf16: the batch runs through the fused inference trunk in bfloat16 (eval
  // mode, host-memory backends, trunks of conv/bn/relu/pool only: fused_trunk()).
  void collect(const float* images, int N, bool training, const int32_t* indices, bool bf16 = false);
  // Whether this model's trunk has the fused inference form (empty string) or
  // why not (the first layer that cannot join).
  std::string fused_trunk() const;
  // The eval-mode features (N, D) from the fused bfloat16 trunk (as collect's).
  void forward_features_bf16(const float* images, int N, std::vector<float>& out);
  // Solve on a device backend: z (n, k) logits in the backend's memory.
  using DeviceSinkhorn =
      std::function<void(const float* z_device, int64_t n, int64_t k, const sinkhorn::Options& o, sinkhorn::Result& r)>;
  // opts: one per head; device: required on device backends (unused on the CPU).
  // Returns one result per head (labels included; they are also kept).
  std::vector<sinkhorn::Result> relabel(const std::vector<sinkhorn::Options>& opts, const DeviceSinkhorn& device);
  StepResult train_step_indexed(const float* images, int N, const int32_t* indices, const StepOptions& opt);
  StepResult train_step_fill_indexed(int N, const std::function<void(float* x)>& fill, const int32_t* indices,
                                     const StepOptions& opt);

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
  // Layouts through the trunk (Layer::input_layout): set once by the
  // constructor; reorder_in_[i]: layer i's input is reordered from the
  // previous layer's output layout (into Plan::reord[i]).
  void assign_layouts();
  // Layer i's input in the layout it reads: x itself, or x reordered into p.reord[i].
  const float* layer_input(Plan& p, size_t i, const float* x);
  float* act(Plan& p, size_t i);   // training plan: trunk layer i's output buffer
  std::vector<char> reorder_in_;
  Layout features_layout_ = Layout::plain;
  const float* stage_images(Plan& p, const float* images);
  void check_step_args(int N, const std::vector<const int32_t*>& labels);
  RunCtx run_ctx(Plan& p, bool training);
  StepResult step_from(Plan& p, const float* x0, const std::vector<const int32_t*>& labels, const StepOptions& opt);
  size_t first_nonfinite_grad();
  // Every head's logits for plan p's features (after run_trunk), into p.logits.
  void run_heads(Plan& p, RunCtx& c);
  Plan& forward_plan(const float* images, int N, bool training, const char* what, RunCtx& c);
  std::vector<std::vector<int32_t>> gather_labels(const int32_t* indices, int N, const char* what) const;

  ModelSpec spec_;
  Backend* backend_;
  Arena arena_;
  std::vector<std::unique_ptr<Layer>> trunk_;
  std::vector<std::unique_ptr<Head>> heads_;
  int feature_dim_ = 0;
  std::map<std::pair<int, bool>, std::unique_ptr<Plan>> plans_;
  uint64_t step_ = 0;
  Scratch scratch_;
  std::unique_ptr<LinearOp> grad_dot_;   // device backends: the gradient check's reduction
  Buffer grad_dot_out_;
  std::mutex mu_;
  // label state (core/label_state.cpp)
  std::vector<std::vector<int32_t>> labels_;   // per head (n)
  std::vector<float> store_features_;          // host-memory backends: (n, D)
  std::vector<Buffer> store_logits_;           // device backends: per head (n, K_h)
  std::vector<uint8_t> store_seen_;            // (n): row collected in this pass
  struct Fused {                               // the fused inference trunk of one batch size
    std::unique_ptr<InferOp> op;
    uint64_t version = ~uint64_t(0);
  };
  std::map<int, Fused> fused_;                 // by batch size (a pass's size and its last batch)
  void mark_collected(const int32_t* indices, int N);
  InferOp& fused_op(int N, const char* what);
  std::vector<float> fused_out_;
  int64_t store_count_ = 0;                    // rows collected in this pass
  int64_t rows_begin_ = 0, rows_end_ = 0;      // set_label_rows (0, 0: all)
  int64_t store_rows() const { return rows_end_ > rows_begin_ ? rows_end_ - rows_begin_ : num_labelled(); }
};

// Architectures known to the builder (names for error messages).
std::vector<std::string> known_archs();

}  // namespace sln
