// NativeModel (addon/model_wrap.h): construction, the training steps, forward
// and the probe taps.
#include <cmath>
#include <cstring>

#include "addon/args.h"
#include "addon/augment_job.h"
#include "addon/model_wrap.h"
#include "addon/cuda_loader.h"
#include "addon/mpi_loader.h"
#include "addon/nccl_loader.h"
#include "core/probe_pool.h"
#include "sln/model.h"

namespace sln::addon {

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeModel",
                     {
                         InstanceMethod("trainStep", &ModelWrap::TrainStep),
                         InstanceMethod("trainStepAugment", &ModelWrap::TrainStepAugment),
                         InstanceMethod("forward", &ModelWrap::Forward),
                         InstanceMethod("trunkLayers", &ModelWrap::TrunkLayers),
                         InstanceMethod("forwardTaps", &ModelWrap::ForwardTaps),
                         InstanceMethod("exportState", &ModelWrap::ExportState),
                         InstanceMethod("importState", &ModelWrap::ImportState),
                         InstanceMethod("tensors", &ModelWrap::Tensors),
                         InstanceMethod("setLabels", &ModelWrap::SetLabels),
                         InstanceMethod("labels", &ModelWrap::Labels),
                         InstanceMethod("collect", &ModelWrap::Collect),
                         InstanceMethod("setLabelRows", &ModelWrap::SetLabelRows),
                         InstanceMethod("relabel", &ModelWrap::Relabel),
                         InstanceMethod("dispose", &ModelWrap::Dispose),
                         InstanceAccessor("disposed", &ModelWrap::Disposed, nullptr),
                         InstanceAccessor("featureDim", &ModelWrap::FeatureDim, nullptr),
                         InstanceAccessor("step", &ModelWrap::GetStep, &ModelWrap::SetStep),
                         InstanceAccessor("smallInput", &ModelWrap::SmallInput, nullptr),
                         InstanceAccessor("device", &ModelWrap::Device, nullptr),
                         InstanceAccessor("fusedTrunk", &ModelWrap::FusedTrunk, nullptr),
                     });
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  Napi::Env env = info.Env();
  guarded(env, [&] {
    if (info.Length() < 1 || !info[0].IsObject())
      throw Napi::TypeError::New(env, "NativeModel({ arch, numClasses, inputShape, seed })");
    Napi::Object o = info[0].As<Napi::Object>();
    ModelSpec s;
    if (!o.Get("arch").IsString()) throw Napi::TypeError::New(env, "createModel: arch must be a string");
    s.arch = o.Get("arch").As<Napi::String>();
    Napi::Value nc = o.Get("numClasses");
    if (!nc.IsArray()) throw Napi::TypeError::New(env, "createModel: numClasses must be an array of integers, one per head");
    Napi::Array nca = nc.As<Napi::Array>();
    s.num_classes.clear();
    for (uint32_t i = 0; i < nca.Length(); i++) {
      Napi::Value v = nca.Get(i);
      if (!v.IsNumber()) throw Napi::TypeError::New(env, "createModel: numClasses must hold integers");
      double d = v.As<Napi::Number>().DoubleValue();
      if (d != static_cast<int>(d) || d < 1 || d > (1 << 24))
        throw Napi::RangeError::New(env, "createModel: numClasses[" + std::to_string(i) + "] must be an integer >= 1, got " +
                                             std::to_string(d));
      s.num_classes.push_back(static_cast<int>(d));
    }
    Napi::Value is = o.Get("inputShape");
    if (!is.IsArray() || is.As<Napi::Array>().Length() != 3)
      throw Napi::TypeError::New(env, "createModel: inputShape must be [C, H, W]");
    int dims[3];
    for (uint32_t i = 0; i < 3; i++) {
      Napi::Value v = is.As<Napi::Array>().Get(i);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (d != static_cast<int>(d) || d < 1 || d > 65536)
        throw Napi::RangeError::New(env, "createModel: inputShape must hold three positive integers [C, H, W]");
      dims[i] = static_cast<int>(d);
    }
    s.input = {dims[0], dims[1], dims[2]};
    Napi::Value as = o.Get("archSpec");
    if (!as.IsUndefined()) {
      if (!as.IsString()) throw Napi::TypeError::New(env, "createModel: archSpec must be 'big' or 'small'");
      s.arch_spec = as.As<Napi::String>();
    }
    Napi::Value si = o.Get("smallInput");
    if (!si.IsUndefined()) {
      if (!si.IsBoolean()) throw Napi::TypeError::New(env, "createModel: smallInput must be a boolean");
      s.small_input = si.As<Napi::Boolean>().Value() ? 1 : 0;
    }
    Napi::Value pr = o.Get("precision");
    if (!pr.IsUndefined()) {
      const std::string v = pr.IsString() ? pr.As<Napi::String>().Utf8Value() : "";
      if (v != "f32" && v != "bf16") throw Napi::TypeError::New(env, "createModel: precision must be 'f32' or 'bf16'");
      s.bf16 = v == "bf16";
    }
    Napi::Value sd = o.Get("seed");
    if (sd.IsNumber()) s.seed = static_cast<uint64_t>(sd.As<Napi::Number>().Int64Value());
    Napi::Value dv = o.Get("device");
    std::string device = dv.IsString() ? dv.As<Napi::String>().Utf8Value() : "cpu";
    if (device != "cpu" && device != "cuda")
      throw Napi::TypeError::New(env, "createModel: device must be 'cpu' or 'cuda', got '" + device + "'");
    Backend& be = device == "cuda" ? cuda_backend() : cpu_backend();
    std::unique_ptr<Model> made;
    {
      auto lk = lock_backend(be);   // allocations and the initial upload
      made = std::make_unique<Model>(s, be);
    }
    // Destroyed under the device lock too (its buffers go back to a backend
    // that another model's worker may be using), wherever the last reference
    // drops; workers release their lock before their references.
    model_ = std::shared_ptr<Model>(made.release(), [](Model* m) {
      auto dl = lock_backend(m->backend());
      delete m;
    });
    return 0;
  });
}

std::shared_ptr<Model> ModelWrap::live(Napi::Env env) {
  if (!model_) throw make_error(env, "SLN_DISPOSED", "this model was disposed; create a new one", ErrorKind::InvalidArgument);
  return model_;
}

// images: Float32Array with N * C * H * W values
int ModelWrap::batch_of(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, std::string(what) + ": images must be a Float32Array (N*C*H*W, NCHW)");
  const Shape3& in = model_->spec().input;
  size_t len = v.As<Napi::Float32Array>().ElementLength();
  if (len == 0 || len % in.size() != 0)
    throw Napi::RangeError::New(env, std::string(what) + ": images has " + std::to_string(len) +
                                         " values, not a positive multiple of C*H*W = " + std::to_string(in.C) + "*" +
                                         std::to_string(in.H) + "*" + std::to_string(in.W) + " = " +
                                         std::to_string(in.size()));
  size_t n = len / in.size();
  if (n > (1u << 30)) throw Napi::RangeError::New(env, std::string(what) + ": batch too large");
  return static_cast<int>(n);
}

ModelWrap::StepArgs ModelWrap::step_args(Napi::Env env, const std::shared_ptr<Model>& m, int N, Napi::Value labels_v,
                                         Napi::Value opts_v, const char* usage) {
  const bool by_index = labels_v.IsTypedArray() && labels_v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array;
  if ((!labels_v.IsArray() && !by_index) || !opts_v.IsObject()) throw Napi::TypeError::New(env, usage);
  StepArgs a;
  if (by_index) {   // dataset indices: the labels come from the model's label state (checked there)
    Napi::Int32Array ix = labels_v.As<Napi::Int32Array>();
    if (ix.ElementLength() != static_cast<size_t>(N))
      throw Napi::RangeError::New(env, "trainStep: indices has " + std::to_string(ix.ElementLength()) +
                                           " entries, expected " + std::to_string(N) + " (one per image)");
    a.indices = std::make_shared<std::vector<int32_t>>(ix.Data(), ix.Data() + ix.ElementLength());
  }
  Napi::Array la = by_index ? Napi::Array::New(env) : labels_v.As<Napi::Array>();
  const auto& ncls = m->spec().num_classes;
  if (!by_index && la.Length() != ncls.size())
    throw Napi::RangeError::New(env, "trainStep: expected " + std::to_string(ncls.size()) +
                                         " label arrays (one per head), got " + std::to_string(la.Length()));
  a.labels = std::make_shared<std::vector<std::vector<int32_t>>>();
  for (uint32_t h = 0; h < la.Length(); h++) {
    Napi::Value v = la.Get(h);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, "trainStep: labels[" + std::to_string(h) + "] must be an Int32Array");
    Napi::Int32Array arr = v.As<Napi::Int32Array>();
    if (arr.ElementLength() != static_cast<size_t>(N))
      throw Napi::RangeError::New(env, "trainStep: labels[" + std::to_string(h) + "] has " +
                                           std::to_string(arr.ElementLength()) + " entries, expected " +
                                           std::to_string(N) + " (one per image)");
    for (size_t i = 0; i < arr.ElementLength(); i++) {
      if (arr[i] < 0 || arr[i] >= ncls[h])
        throw Napi::RangeError::New(env, "trainStep: labels[" + std::to_string(h) + "][" + std::to_string(i) +
                                             "] = " + std::to_string(arr[i]) + " is outside [0, " +
                                             std::to_string(ncls[h]) + ")");
    }
    a.labels->emplace_back(arr.Data(), arr.Data() + arr.ElementLength());
  }
  Napi::Object o = opts_v.As<Napi::Object>();
  auto num = [&](const char* k, float dflt) -> float {
    Napi::Value v = o.Get(k);
    if (v.IsUndefined()) return dflt;
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("trainStep: ") + k + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d < 0)
      throw Napi::RangeError::New(env, std::string("trainStep: ") + k + " must be a finite number >= 0");
    return static_cast<float>(d);
  };
  a.opt.lr = num("lr", a.opt.lr);
  a.opt.momentum = num("momentum", a.opt.momentum);
  a.opt.weight_decay = num("weightDecay", a.opt.weight_decay);
  // rowOffset: the batch's first image's position in a larger batch (data-parallel
  // ranks): dropout draws the masks of those positions
  Napi::Value ro = o.Get("rowOffset");
  if (!ro.IsUndefined()) {
    const double v = ro.IsNumber() ? ro.As<Napi::Number>().DoubleValue() : -1;
    if (!(v >= 0) || std::floor(v) != v || v > 2147483647.0)
      throw Napi::RangeError::New(env, "trainStep: rowOffset must be an integer >= 0");
    a.opt.row_offset = static_cast<int64_t>(v);
  }
  // distributed (lib/distributed/train.ts): { distributed: true, lossScale: n_local / n_global, syncBn, rowOffset }
  if (o.Get("distributed").ToBoolean().Value()) {
    a.opt.loss_scale = num("lossScale", 1.f);
    if (!(a.opt.loss_scale > 0 && a.opt.loss_scale <= 1))
      throw Napi::RangeError::New(env, "trainStep: lossScale must be in (0, 1]");
    const bool sync_bn = o.Get("syncBn").ToBoolean().Value();
    if (m->backend().host_memory()) {
      a.opt.dist = mpi_dist_hooks(sync_bn);   // MPI from host memory
    } else {
      if (sync_bn)
        SLN_FAIL(Unsupported, "SLN_UNSUPPORTED", "trainStep: synchronised batch norm (--sync-bn) runs on the CPU "
                                                 "backend only; on the GPU batch norm is per rank");
      a.opt.dist = nccl_dist_hooks(m->backend());   // NCCL on device memory
    }
  }
  return a;
}

StepResult ModelWrap::run_step(const StepArgs& a,
                               const std::function<StepResult(const std::vector<const int32_t*>&)>& by_labels,
                               const std::function<StepResult(const int32_t*)>& by_indices) {
  if (a.indices) return by_indices(a.indices->data());
  std::vector<const int32_t*> lp;
  for (auto& l : *a.labels) lp.push_back(l.data());
  return by_labels(lp);
}

Napi::Value ModelWrap::step_result(Napi::Env env, const StepResult& res) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("loss", res.loss);
  Napi::Array hl = Napi::Array::New(env, res.head_losses.size());
  for (size_t i = 0; i < res.head_losses.size(); i++) hl.Set(i, res.head_losses[i]);
  r.Set("headLosses", hl);
  return r;
}

Napi::Value ModelWrap::TrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    int N = batch_of(env, info[0], "trainStep");
    StepArgs a = step_args(env, m, N, info[1], info[2],
                           "trainStep(images, labels: Int32Array[] | indices: Int32Array, { lr, momentum, weightDecay })");
    const float* images = info[0].As<Napi::Float32Array>().Data();
    auto result = std::make_shared<StepResult>();
    return PromiseWorker::Start(
        env, "sln.trainStep",
        [m, images, N, a, result] {
          std::lock_guard<std::mutex> lk(m->mutex());
          auto dl = lock_backend(m->backend());
          *result = run_step(
              a, [&](const std::vector<const int32_t*>& lp) { return m->train_step(images, N, lp, a.opt); },
              [&](const int32_t* ix) { return m->train_step_indexed(images, N, ix, a.opt); });
        },
        [result](Napi::Env env) -> Napi::Value { return step_result(env, *result); },
        {info[0]});
  });
}

// trainStepAugment(src: Uint8Array, desc: NativeAugmentDesc, labels, opts):
// the training step on a batch that is augmented straight into the model's
// input buffer: on the CUDA backend by the library's sln_cuda_augment (the
// uint8 sources are uploaded once, the floats never leave the device), on
// the CPU by augment_batch. desc must describe n images of exactly the
// model's input (outChannels, outHeight, outWidth) = (C, H, W).
Napi::Value ModelWrap::TrainStepAugment(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const char* usage =
        "trainStepAugment(src: Uint8Array, desc: NativeAugmentDesc, labels: Int32Array[] | indices: Int32Array, { lr, momentum, "
        "weightDecay })";
    auto m = live(env);
    if (info.Length() < 4) throw Napi::TypeError::New(env, usage);
    auto job = parse_augment_job(env, info[0], info[1], "trainStep");
    const Shape3& in = m->spec().input;
    const AugmentBatchDesc& d = job->desc;
    if (d.out_channels != in.C || d.out_h != in.H || d.out_w != in.W)
      throw Napi::RangeError::New(env, "trainStep: the augmentation makes " + std::to_string(d.out_channels) + "x" +
                                           std::to_string(d.out_h) + "x" + std::to_string(d.out_w) +
                                           " images (desc.outChannels x outHeight x outWidth), the model takes " +
                                           std::to_string(in.C) + "x" + std::to_string(in.H) + "x" +
                                           std::to_string(in.W));
    if (d.n < 1) throw Napi::RangeError::New(env, "trainStep: batch must hold at least one image (desc.n = 0)");
    const int N = d.n;
    StepArgs a = step_args(env, m, N, info[2], info[3], usage);
    // null: the CPU's augment_batch (the loader refused a library without sln_cuda_augment)
    const sln_cuda_augment_fn dev_augment =
        m->backend().host_memory() ? nullptr : cuda_lib_or_throw("trainStep").augment;
    auto result = std::make_shared<StepResult>();
    return PromiseWorker::Start(
        env, "sln.trainStepAugment",
        [m, job, N, a, result, dev_augment] {
          std::lock_guard<std::mutex> lk(m->mutex());
          auto dl = lock_backend(m->backend());
          Backend& be = m->backend();
          auto fill = [&](float* x) {   // x: (N, C, H, W) in the backend's memory
                if (!dev_augment) {
                  augment_batch(job->desc, job->images.data(), job->params.data(), x);
                  return;
                }
                char err[512] = {0};
                if (dev_augment(&be, &job->desc, job->images.data(), job->params.data(), x, err, sizeof err) != 0)
                  SLN_FAIL(Library, "SLN_CUDA", "trainStep: sln_cuda_augment (n " << job->desc.n << ", "
                                                  << job->desc.in_channels << " -> " << job->desc.out_channels
                                                  << " channels, " << job->desc.out_h << "x" << job->desc.out_w
                                                  << "): " << err);
          };
          *result = run_step(
              a, [&](const std::vector<const int32_t*>& lp) { return m->train_step_fill(N, fill, lp, a.opt); },
              [&](const int32_t* ix) { return m->train_step_fill_indexed(N, fill, ix, a.opt); });
        },
        [result](Napi::Env env) -> Napi::Value { return step_result(env, *result); },
        {info[0]});
  });
}

// forward(images, training: boolean, output: "logits" | "probs" | "features" | "features+logits" | "argmax" |
//   "features+argmax", precision?: "f32" | "bf16" (bf16: features, eval mode))
Napi::Value ModelWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    int N = batch_of(env, info[0], "forward");
    bool training = info.Length() > 1 && info[1].ToBoolean();
    std::string kind = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "logits";
    const float* images = info[0].As<Napi::Float32Array>().Data();
    const std::string precision = info.Length() > 3 && info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "f32";
    if (precision != "f32" && (precision != "bf16" || kind != "features" || training))
      throw Napi::TypeError::New(env, "forward: precision 'bf16' is for output 'features' in eval mode only; got precision '" +
                                          precision + "' with output '" + kind + "'");
    if (precision == "bf16") {   // the fused bfloat16 trunk's features (as a bf16 label pass collects)
      auto out = std::make_shared<std::vector<float>>();
      return PromiseWorker::Start(
          env, "sln.forward",
          [m, images, N, out] {
            std::lock_guard<std::mutex> lk(m->mutex());
            auto dl = lock_backend(m->backend());
            m->forward_features_bf16(images, N, *out);
          },
          [out](Napi::Env env) -> Napi::Value {
            Napi::Float32Array a = Napi::Float32Array::New(env, out->size());
            std::memcpy(a.Data(), out->data(), out->size() * sizeof(float));
            return a;
          },
          {info[0]});
    }
    if (kind == "argmax" || kind == "features+argmax") {   // [features?, per head an Int32Array (N) of argmaxes]
      auto ids = std::make_shared<std::vector<int32_t>>();
      auto feats = kind == "argmax" ? nullptr : std::make_shared<std::vector<float>>();
      const size_t H = m->num_heads();
      return PromiseWorker::Start(
          env, "sln.forward",
          [m, images, N, training, ids, feats] {
            std::lock_guard<std::mutex> lk(m->mutex());
            auto dl = lock_backend(m->backend());
            m->forward_argmax(images, N, training, *ids, feats.get());
          },
          [ids, feats, H, N](Napi::Env env) -> Napi::Value {
            const uint32_t off = feats ? 1 : 0;
            Napi::Array arr = Napi::Array::New(env, H + off);
            if (feats) {
              Napi::Float32Array f = Napi::Float32Array::New(env, feats->size());
              std::memcpy(f.Data(), feats->data(), feats->size() * sizeof(float));
              arr.Set(0u, f);
            }
            for (size_t h = 0; h < H; h++) {
              Napi::Int32Array a = Napi::Int32Array::New(env, N);
              std::memcpy(a.Data(), ids->data() + h * N, N * sizeof(int32_t));
              arr.Set(static_cast<uint32_t>(h + off), a);
            }
            return arr;
          },
          {info[0]});
    }
    OutputKind k;
    if (kind == "logits") k = OutputKind::Logits;
    else if (kind == "probs") k = OutputKind::Probs;
    else if (kind == "features") k = OutputKind::Features;
    else if (kind == "features+logits") k = OutputKind::FeaturesAndLogits;
    else
      throw Napi::TypeError::New(
          env, "forward: output must be 'logits', 'probs', 'features', 'features+logits', 'argmax' or 'features+argmax', got '" + kind + "'");
    auto out = std::make_shared<std::vector<float>>();
    std::vector<int> widths;
    if (k == OutputKind::Features || k == OutputKind::FeaturesAndLogits) widths.push_back(m->feature_dim());
    if (k != OutputKind::Features)
      widths.insert(widths.end(), m->spec().num_classes.begin(), m->spec().num_classes.end());
    return PromiseWorker::Start(
        env, "sln.forward",
        [m, images, N, training, k, out] {
          std::lock_guard<std::mutex> lk(m->mutex());
          auto dl = lock_backend(m->backend());
          m->forward(images, N, training, k, *out);
        },
        [out, widths, N, k](Napi::Env env) -> Napi::Value {
          Napi::Array arr = Napi::Array::New(env, widths.size());
          size_t off = 0;
          for (size_t i = 0; i < widths.size(); i++) {
            size_t n = static_cast<size_t>(N) * widths[i];
            Napi::Float32Array a = Napi::Float32Array::New(env, n);
            std::memcpy(a.Data(), out->data() + off, n * sizeof(float));
            arr.Set(i, a);
            off += n;
          }
          if (k == OutputKind::Features) return arr.Get(0u);
          return arr;
        },
        {info[0]});
  });
}

// trunkLayers(): [{ name, kind, shape: [C, H, W] }] in execution order
Napi::Value ModelWrap::TrunkLayers(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto ls = live(env)->trunk_layers();
    Napi::Array a = Napi::Array::New(env, ls.size());
    for (size_t i = 0; i < ls.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", ls[i].name);
      o.Set("kind", ls[i].kind);
      Napi::Array sh = Napi::Array::New(env, 3);
      sh.Set(0u, ls[i].out.C), sh.Set(1u, ls[i].out.H), sh.Set(2u, ls[i].out.W);
      o.Set("shape", sh);
      a.Set(i, o);
    }
    return a;
  });
}

// forwardTaps(images, taps: [{ layer, pool: "none" | "max" | "avg" | "adaptive-max" | "adaptive-avg",
//   kernel, stride, pad, outHeight, outWidth }]) -> Promise<Float32Array[]>: eval mode, one
// (N, pooled C*H*W) array per tap (core/probe_pool.h), pooled natively as the trunk runs.
Napi::Value ModelWrap::ForwardTaps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    int N = batch_of(env, info[0], "forwardTaps");
    if (info.Length() < 2 || !info[1].IsArray() || info[1].As<Napi::Array>().Length() == 0)
      throw Napi::TypeError::New(env, "forwardTaps(images, taps: [{ layer, pool, ... }]): taps must be a non-empty array");
    Napi::Array ta = info[1].As<Napi::Array>();
    const auto layers = m->trunk_layers();
    std::vector<int> taps;
    std::vector<probe::PoolSpec> specs;
    std::vector<Shape3> shapes;
    for (uint32_t t = 0; t < ta.Length(); t++) {
      if (!ta.Get(t).IsObject()) throw Napi::TypeError::New(env, "forwardTaps: taps[" + std::to_string(t) + "] must be an object");
      Napi::Object o = ta.Get(t).As<Napi::Object>();
      const std::string where = "forwardTaps: taps[" + std::to_string(t) + "]";
      const int layer = static_cast<int>(int_field_or(o, "layer", where, -1));
      if (layer < 0 || layer >= static_cast<int>(layers.size()))
        throw Napi::RangeError::New(env, "forwardTaps: taps[" + std::to_string(t) + "].layer must index the trunk's " +
                                             std::to_string(layers.size()) + " layers, got " + std::to_string(layer));
      probe::PoolSpec s;
      Napi::Value k = o.Get("pool");
      if (!k.IsUndefined()) {
        if (!k.IsString()) throw Napi::TypeError::New(env, "forwardTaps: taps[" + std::to_string(t) + "].pool must be a string");
        s.kind = k.As<Napi::String>().Utf8Value();
      }
      s.kernel = static_cast<int>(int_field_or(o, "kernel", where, 1));
      s.stride = static_cast<int>(int_field_or(o, "stride", where, s.kernel));
      s.pad = static_cast<int>(int_field_or(o, "pad", where, 0));
      s.out_h = static_cast<int>(int_field_or(o, "outHeight", where, 1));
      s.out_w = static_cast<int>(int_field_or(o, "outWidth", where, s.out_h));
      shapes.push_back(probe::pooled_shape(layers[layer].out, s));   // validates
      taps.push_back(layer);
      specs.push_back(s);
    }
    const float* images = info[0].As<Napi::Float32Array>().Data();
    auto outs = std::make_shared<std::vector<std::vector<float>>>(taps.size());
    for (size_t t = 0; t < taps.size(); t++) (*outs)[t].resize(static_cast<size_t>(N) * shapes[t].size());
    std::vector<Shape3> ins;
    for (int l : taps) ins.push_back(layers[l].out);
    return PromiseWorker::Start(
        env, "sln.forwardTaps",
        [m, images, N, taps, specs, ins, outs] {
          std::lock_guard<std::mutex> lk(m->mutex());
          auto dl = lock_backend(m->backend());
          const int threads = cpu_backend().num_threads();   // pooling runs on the host
          m->forward_taps(images, N, taps, [&](size_t t, const float* act) {
            probe::pool(act, N, ins[t], specs[t], (*outs)[t].data(), threads);
          });
        },
        [outs](Napi::Env env) -> Napi::Value {
          Napi::Array arr = Napi::Array::New(env, outs->size());
          for (size_t t = 0; t < outs->size(); t++) {
            Napi::Float32Array a = Napi::Float32Array::New(env, (*outs)[t].size());
            std::memcpy(a.Data(), (*outs)[t].data(), (*outs)[t].size() * sizeof(float));
            arr.Set(t, a);
          }
          return arr;
        },
        {info[0]});
  });
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  model_.reset();   // workers still running hold their own reference
  return info.Env().Undefined();
}

Napi::Value ModelWrap::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }

Napi::Value ModelWrap::FeatureDim(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, live(env)->feature_dim()); });
}

Napi::Value ModelWrap::GetStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    std::lock_guard<std::mutex> lk(m->mutex());
    return Napi::Number::New(env, static_cast<double>(m->step()));
  });
}

void ModelWrap::SetStep(const Napi::CallbackInfo& info, const Napi::Value& v) {
  Napi::Env env = info.Env();
  guarded(env, [&] {
    auto m = live(env);
    if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0)
      throw Napi::TypeError::New(env, "step must be a non-negative integer");
    std::lock_guard<std::mutex> lk(m->mutex());
    m->set_step(static_cast<uint64_t>(v.As<Napi::Number>().Int64Value()));
    return 0;
  });
}

Napi::Value ModelWrap::SmallInput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value { return Napi::Boolean::New(env, live(env)->spec().small_input == 1); });
}

Napi::Value ModelWrap::Device(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value { return Napi::String::New(env, live(env)->backend().name()); });
}

static void init_model(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeModel", ModelWrap::Define(env));
  Napi::Array archs = Napi::Array::New(env);
  auto names = known_archs();
  for (size_t i = 0; i < names.size(); i++) archs.Set(i, names[i]);
  exports.Set("archs", archs);
}

SLN_ADDON_INIT(init_model);

}  // namespace sln::addon
