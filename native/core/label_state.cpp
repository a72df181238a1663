// The model's label state (sln/model.h): per head the labels of the n training
// images, the store a label pass fills batch by batch (collect) and the
// Sinkhorn solve per head from it (relabel), and the training step that gathers
// a batch's labels by dataset index.
//
// Host-memory backends store the (n, D) penultimate features: the solver
// computes each head's logits block by block from them and the head's weight
// and bias read in place from the parameter arena (sinkhorn::solve_features),
// so a pass keeps n*D floats, not n*K per head. Device backends store every
// head's (n, K) logits in device memory and solve them there (DeviceSinkhorn:
// sln_cuda_sinkhorn on the backend's stream), so nothing crosses to the host
// but the labels and the solver's small vectors.
#include <cstring>

#include "core/model_internal.h"
#include "core/sinkhorn.h"
#include "sln/errors.h"

namespace sln {

void Model::set_labels(std::vector<std::vector<int32_t>> labels) {
  SLN_CHECK_ARG(labels.size() == heads_.size(),
                "setLabels: expected " << heads_.size() << " label arrays (one per head), got " << labels.size());
  const size_t n = labels[0].size();
  SLN_CHECK_ARG(n >= 1, "setLabels: the label arrays are empty");
  for (size_t h = 0; h < labels.size(); h++) {
    SLN_CHECK_ARG(labels[h].size() == n, "setLabels: labels[" << h << "] has " << labels[h].size()
                                                               << " entries, labels[0] " << n << " (one per image)");
    const int K = heads_[h]->K;
    for (size_t i = 0; i < n; i++)
      if (labels[h][i] < 0 || labels[h][i] >= K)
        SLN_FAIL(Range, "SLN_INVALID_ARGUMENT",
                 "setLabels: labels[" << h << "][" << i << "] = " << labels[h][i] << " is outside [0, " << K << ")");
  }
  labels_ = std::move(labels);
  // a pass in progress belonged to the old state
  store_features_.clear();
  store_logits_.clear();
  store_seen_.clear();
  store_count_ = 0;
}

void Model::set_label_rows(int64_t begin, int64_t end) {
  const int64_t n = num_labelled();
  SLN_CHECK_ARG((begin == 0 && end == 0) || (begin >= 0 && begin < end && end <= n),
                "setLabelRows: [" << begin << ", " << end << ") must be a non-empty range of the " << n
                                  << " labelled images (or [0, 0) for all)");
  rows_begin_ = begin;
  rows_end_ = end;
  store_features_.clear();
  store_logits_.clear();
  store_seen_.clear();
  store_count_ = 0;
}

std::vector<std::vector<int32_t>> Model::gather_labels(const int32_t* indices, int N, const char* what) const {
  SLN_CHECK_ARG(!labels_.empty(), what << ": the model holds no labels (setLabels first)");
  const int64_t n = num_labelled();
  std::vector<std::vector<int32_t>> out(labels_.size(), std::vector<int32_t>(N));
  for (int i = 0; i < N; i++) {
    const int32_t j = indices[i];
    if (j < 0 || j >= n)
      SLN_FAIL(Range, "SLN_INVALID_ARGUMENT", what << ": indices[" << i << "] = " << j << " is outside [0, " << n << ")");
    for (size_t h = 0; h < labels_.size(); h++) out[h][i] = labels_[h][j];
  }
  return out;
}

static std::vector<const int32_t*> pointers(const std::vector<std::vector<int32_t>>& v) {
  std::vector<const int32_t*> p;
  for (auto& x : v) p.push_back(x.data());
  return p;
}

StepResult Model::train_step_indexed(const float* images, int N, const int32_t* indices, const StepOptions& opt) {
  auto lab = gather_labels(indices, N, "trainStep");
  return train_step(images, N, pointers(lab), opt);
}

StepResult Model::train_step_fill_indexed(int N, const std::function<void(float* x)>& fill, const int32_t* indices,
                                          const StepOptions& opt) {
  auto lab = gather_labels(indices, N, "trainStep");
  return train_step_fill(N, fill, pointers(lab), opt);
}

std::string Model::fused_trunk() const {
  if (!backend_->host_memory()) return std::string("the ") + backend_->name() + " backend has no fused inference trunk";
  std::vector<InferStep> steps;
  for (auto& l : trunk_)
    if (!l->infer_step(const_cast<Arena&>(arena_), steps))
      return std::string("trunk layer ") + l->name + " (" + l->kind() + ") has no fused form";
  if (steps.empty() || steps[0].pool) return "the trunk does not start with a convolution";
  return "";
}

void Model::collect(const float* images, int N, bool training, const int32_t* indices, bool bf16) {
  SLN_CHECK_ARG(!labels_.empty(), "collect: the model holds no labels (setLabels first)");
  const int64_t n = store_rows();
  // the store's rows: [rows_begin_, rows_begin_ + n) of the label state; a batch's
  // dataset indices become store rows (shifted copy when sharded)
  std::vector<int32_t> local;
  if (rows_begin_ > 0) {
    local.assign(indices, indices + N);
    for (auto& v : local) v = static_cast<int32_t>(v - rows_begin_);
  }
  for (int i = 0; i < N; i++)
    if (indices[i] < rows_begin_ || indices[i] >= rows_begin_ + n)
      SLN_FAIL(Range, "SLN_INVALID_ARGUMENT",
               "collect: indices[" << i << "] = " << indices[i] << " is outside [" << rows_begin_ << ", "
                                   << rows_begin_ + n << ")");
  if (!local.empty()) indices = local.data();
  Backend& be = *backend_;
  const bool host = be.host_memory();
  const size_t D = static_cast<size_t>(feature_dim_);
  if (store_seen_.empty()) {   // first batch of a pass
    store_seen_.assign(static_cast<size_t>(n), 0);
    store_count_ = 0;
    if (host) {
      store_features_.assign(static_cast<size_t>(n) * D, 0.f);
    } else {
      store_logits_.clear();
      for (auto& h : heads_) store_logits_.emplace_back(be, static_cast<size_t>(n) * h->K * sizeof(float));
    }
  }
  // a contiguous run of indices (the unshuffled label loader) is one copy
  bool run = true;
  for (int i = 1; i < N && run; i++) run = indices[i] == indices[0] + i;
  if (bf16) {   // the fused bfloat16 trunk, straight into the store's rows when they are contiguous
    SLN_CHECK_ARG(!training, "collect: bfloat16 label passes run in eval mode only (use --label-mode eval)");
    InferOp& op = fused_op(N, "collect");
    check_images(images, N, spec_.input, "collect", backend_->num_threads());
    float* out = store_features_.data() + static_cast<size_t>(indices[0]) * D;
    if (!run) {
      fused_out_.resize(static_cast<size_t>(N) * D);
      out = fused_out_.data();
    }
    op.forward(images, out);
    if (!run)
      for (int i = 0; i < N; i++) std::memcpy(store_features_.data() + indices[i] * D, out + i * D, D * sizeof(float));
    mark_collected(indices, N);
    return;
  }
  RunCtx c;
  Plan& p = forward_plan(images, N, training, "collect", c);
  if (host) {
    if (run) {
      std::memcpy(store_features_.data() + indices[0] * D, p.features, N * D * sizeof(float));
    } else {
      for (int i = 0; i < N; i++) std::memcpy(store_features_.data() + indices[i] * D, p.features + i * D, D * sizeof(float));
    }
  } else {
    run_heads(p, c);
    for (size_t h = 0; h < heads_.size(); h++) {
      const size_t K = static_cast<size_t>(heads_[h]->K);
      float* dst = store_logits_[h].f32();
      const float* src = p.logits[h].f32();
      if (run) {
        be.copy(dst + indices[0] * K, src, N * K * sizeof(float));
      } else {
        for (int i = 0; i < N; i++) be.copy(dst + indices[i] * K, src + i * K, K * sizeof(float));
      }
    }
  }
  mark_collected(indices, N);
}

InferOp& Model::fused_op(int N, const char* what) {
  const std::string why = fused_trunk();
  if (!why.empty()) SLN_FAIL(Unsupported, "SLN_UNSUPPORTED", what << ": no bfloat16 trunk for " << spec_.arch << ": " << why);
  Fused& f = fused_[N];
  if (!f.op) {
    if (fused_.size() > 2) {   // bound memory: a pass's batch size and its last batch
      fused_.clear();
      return fused_op(N, what);
    }
    InferDesc d;
    d.N = N;
    d.bf16 = true;
    for (auto& l : trunk_) l->infer_step(arena_, d.steps);
    f.op = backend_->infer(d);
    SLN_CHECK_ARG(f.op, what << ": the " << backend_->name() << " backend has no fused inference trunk");
  }
  if (f.version != arena_.version()) {   // weights folded and converted once per change
    f.op->refresh();
    f.version = arena_.version();
  }
  return *f.op;
}

void Model::forward_features_bf16(const float* images, int N, std::vector<float>& out) {
  SLN_CHECK_ARG(N >= 1, "forward: batch must hold at least one image");
  InferOp& op = fused_op(N, "forward");
  check_images(images, N, spec_.input, "forward", backend_->num_threads());
  out.resize(static_cast<size_t>(N) * feature_dim_);
  op.forward(images, out.data());
}

void Model::mark_collected(const int32_t* indices, int N) {
  for (int i = 0; i < N; i++) {
    uint8_t& s = store_seen_[indices[i]];
    store_count_ += s == 0;
    s = 1;
  }
}

std::vector<sinkhorn::Result> Model::relabel(const std::vector<sinkhorn::Options>& opts, const DeviceSinkhorn& device) {
  SLN_CHECK_ARG(opts.size() == heads_.size(),
                "relabel: expected " << heads_.size() << " solver options (one per head), got " << opts.size());
  const int64_t n = store_rows();
  const bool sharded = rows_end_ > rows_begin_;
  for (auto& o : opts)
    SLN_CHECK_ARG(sharded == (o.shard != nullptr),
                  "relabel: " << (sharded ? "setLabelRows was given, so every head's options need a shard"
                                          : "options.shard needs setLabelRows (this rank's rows) first"));
  SLN_CHECK_ARG(!labels_.empty() && !store_seen_.empty(), "relabel: nothing was collected since the last relabel");
  if (store_count_ != n)
    SLN_FAIL(Range, "SLN_INVALID_ARGUMENT",
             "relabel: the collected batches cover " << store_count_ << " of the " << n << " images; collect them all first");
  const bool host = backend_->host_memory();
  SLN_CHECK_ARG(host || device, "relabel: no solver for the " << backend_->name() << " backend");
  std::vector<sinkhorn::Result> res(heads_.size());
  for (size_t h = 0; h < heads_.size(); h++) {
    Head& hd = *heads_[h];
    if (host) {
      res[h] = sinkhorn::solve_features(store_features_.data(), n, feature_dim_, arena_.param(hd.w), arena_.param(hd.b),
                                        hd.K, opts[h]);
    } else {
      device(store_logits_[h].f32(), n, hd.K, opts[h], res[h]);
    }
  }
  // every head solved: now replace the labels (a failed solve changes nothing);
  // a sharded solve gave this rank's rows only: the caller gathers and sets them
  if (!sharded)
    for (size_t h = 0; h < heads_.size(); h++) labels_[h] = res[h].labels;
  std::vector<float>().swap(store_features_);
  store_logits_.clear();
  std::vector<uint8_t>().swap(store_seen_);
  store_count_ = 0;
  return res;
}

}  // namespace sln
