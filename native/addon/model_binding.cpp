// NativeModel: the JS handle of an sln::Model. Validation happens here, on the
// JS thread (TypeError / RangeError saying what was expected); the arithmetic
// runs in PromiseWorkers holding a shared_ptr, so dispose() while a step runs
// is safe, and the model's mutex serialises calls that overlap.
#include <cmath>
#include <cstring>

#include "addon/augment_job.h"
#include "addon/common.h"
#include "addon/cuda_loader.h"
#include "core/probe_pool.h"
#include "sln/model.h"

namespace sln::addon {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
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
                           InstanceMethod("dispose", &ModelWrap::Dispose),
                           InstanceAccessor("disposed", &ModelWrap::Disposed, nullptr),
                           InstanceAccessor("featureDim", &ModelWrap::FeatureDim, nullptr),
                           InstanceAccessor("step", &ModelWrap::GetStep, &ModelWrap::SetStep),
                           InstanceAccessor("smallInput", &ModelWrap::SmallInput, nullptr),
                           InstanceAccessor("device", &ModelWrap::Device, nullptr),
                       });
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
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

 private:
  std::shared_ptr<Model> live(Napi::Env env) {
    if (!model_) throw make_error(env, "SLN_DISPOSED", "this model was disposed; create a new one", ErrorKind::InvalidArgument);
    return model_;
  }

  // images: Float32Array with N * C * H * W values
  int batch_of(Napi::Env env, Napi::Value v, const char* what) {
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

  // labels: one Int32Array of N per head; opts: { lr, momentum, weightDecay }
  struct StepArgs {
    std::shared_ptr<std::vector<std::vector<int32_t>>> labels;
    StepOptions opt;
  };
  StepArgs step_args(Napi::Env env, const std::shared_ptr<Model>& m, int N, Napi::Value labels_v, Napi::Value opts_v,
                     const char* usage) {
    if (!labels_v.IsArray() || !opts_v.IsObject()) throw Napi::TypeError::New(env, usage);
    Napi::Array la = labels_v.As<Napi::Array>();
    const auto& ncls = m->spec().num_classes;
    if (la.Length() != ncls.size())
      throw Napi::RangeError::New(env, "trainStep: expected " + std::to_string(ncls.size()) +
                                           " label arrays (one per head), got " + std::to_string(la.Length()));
    StepArgs a;
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
    return a;
  }

  static Napi::Value step_result(Napi::Env env, const StepResult& res) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("loss", res.loss);
    Napi::Array hl = Napi::Array::New(env, res.head_losses.size());
    for (size_t i = 0; i < res.head_losses.size(); i++) hl.Set(i, res.head_losses[i]);
    r.Set("headLosses", hl);
    return r;
  }

  Napi::Value TrainStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto m = live(env);
      int N = batch_of(env, info[0], "trainStep");
      StepArgs a = step_args(env, m, N, info[1], info[2],
                             "trainStep(images, labels: Int32Array[], { lr, momentum, weightDecay })");
      const float* images = info[0].As<Napi::Float32Array>().Data();
      auto result = std::make_shared<StepResult>();
      return PromiseWorker::Start(
          env, "sln.trainStep",
          [m, images, N, labels = a.labels, opt = a.opt, result] {
            std::lock_guard<std::mutex> lk(m->mutex());
            auto dl = lock_backend(m->backend());
            std::vector<const int32_t*> lp;
            for (auto& l : *labels) lp.push_back(l.data());
            *result = m->train_step(images, N, lp, opt);
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
  Napi::Value TrainStepAugment(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      const char* usage =
          "trainStepAugment(src: Uint8Array, desc: NativeAugmentDesc, labels: Int32Array[], { lr, momentum, "
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
          [m, job, N, labels = a.labels, opt = a.opt, result, dev_augment] {
            std::lock_guard<std::mutex> lk(m->mutex());
            auto dl = lock_backend(m->backend());
            std::vector<const int32_t*> lp;
            for (auto& l : *labels) lp.push_back(l.data());
            Backend& be = m->backend();
            *result = m->train_step_fill(
                N,
                [&](float* x) {   // x: (N, C, H, W) in the backend's memory
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
                },
                lp, opt);
          },
          [result](Napi::Env env) -> Napi::Value { return step_result(env, *result); },
          {info[0]});
    });
  }

  // forward(images, training: boolean, output: "logits" | "probs" | "features" | "features+logits")
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto m = live(env);
      int N = batch_of(env, info[0], "forward");
      bool training = info.Length() > 1 && info[1].ToBoolean();
      std::string kind = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "logits";
      OutputKind k;
      if (kind == "logits") k = OutputKind::Logits;
      else if (kind == "probs") k = OutputKind::Probs;
      else if (kind == "features") k = OutputKind::Features;
      else if (kind == "features+logits") k = OutputKind::FeaturesAndLogits;
      else
        throw Napi::TypeError::New(
            env, "forward: output must be 'logits', 'probs', 'features' or 'features+logits', got '" + kind + "'");
      const float* images = info[0].As<Napi::Float32Array>().Data();
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
  Napi::Value TrunkLayers(const Napi::CallbackInfo& info) {
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
  Napi::Value ForwardTaps(const Napi::CallbackInfo& info) {
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
      auto int_of = [&](Napi::Object o, const char* key, uint32_t t, int dflt) {
        Napi::Value v = o.Get(key);
        if (v.IsUndefined()) return dflt;
        double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1e300;
        if (d != static_cast<int>(d))
          throw Napi::TypeError::New(env, "forwardTaps: taps[" + std::to_string(t) + "]." + key + " must be an integer");
        return static_cast<int>(d);
      };
      for (uint32_t t = 0; t < ta.Length(); t++) {
        if (!ta.Get(t).IsObject()) throw Napi::TypeError::New(env, "forwardTaps: taps[" + std::to_string(t) + "] must be an object");
        Napi::Object o = ta.Get(t).As<Napi::Object>();
        int layer = int_of(o, "layer", t, -1);
        if (layer < 0 || layer >= static_cast<int>(layers.size()))
          throw Napi::RangeError::New(env, "forwardTaps: taps[" + std::to_string(t) + "].layer must index the trunk's " +
                                               std::to_string(layers.size()) + " layers, got " + std::to_string(layer));
        probe::PoolSpec s;
        Napi::Value k = o.Get("pool");
        if (!k.IsUndefined()) {
          if (!k.IsString()) throw Napi::TypeError::New(env, "forwardTaps: taps[" + std::to_string(t) + "].pool must be a string");
          s.kind = k.As<Napi::String>().Utf8Value();
        }
        s.kernel = int_of(o, "kernel", t, 1);
        s.stride = int_of(o, "stride", t, s.kernel);
        s.pad = int_of(o, "pad", t, 0);
        s.out_h = int_of(o, "outHeight", t, 1);
        s.out_w = int_of(o, "outWidth", t, s.out_h);
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

  // tensors(): [{ name, shape, kind: "param" | "buffer" }]
  Napi::Value Tensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto m = live(env);
      const auto& es = m->arena().entries();
      Napi::Array a = Napi::Array::New(env, es.size());
      for (size_t i = 0; i < es.size(); i++) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", es[i].name);
        Napi::Array sh = Napi::Array::New(env, es[i].shape.size());
        for (size_t j = 0; j < es[i].shape.size(); j++) sh.Set(j, es[i].shape[j]);
        o.Set("shape", sh);
        o.Set("kind", es[i].is_param ? "param" : "buffer");
        a.Set(i, o);
      }
      return a;
    });
  }

  // exportState(what: "model" | "momentum") -> Promise<{ name: Float32Array }>
  // model: parameters and buffers; momentum: SGD momentum buffers of the
  // parameters (empty object before the first step, as torch).
  Napi::Value ExportState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto m = live(env);
      std::string what = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "model";
      if (what != "model" && what != "momentum")
        throw Napi::TypeError::New(env, "exportState: what must be 'model' or 'momentum'");
      auto copy = std::make_shared<std::vector<std::pair<std::string, std::vector<float>>>>();
      return PromiseWorker::Start(
          env, "sln.exportState",
          [m, what, copy] {
            std::lock_guard<std::mutex> lk(m->mutex());
            auto dl = lock_backend(m->backend());
            Arena& a = m->arena();
            for (auto& e : a.entries()) {
              const bool mom = what == "momentum";
              if (mom && (!e.is_param || !a.has_momentum)) continue;
              std::vector<float> v(e.size);
              a.read(e, v.data(), mom);   // download (a memcpy on the CPU)
              copy->emplace_back(e.name, std::move(v));
            }
          },
          [copy](Napi::Env env) -> Napi::Value {
            Napi::Object o = Napi::Object::New(env);
            for (auto& [name, v] : *copy) {
              Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
              std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
              o.Set(name, a);
            }
            return o;
          });
    });
  }

  // importState(what, { name: Float32Array }): every entry must match a tensor
  // of the right size; checked completely before anything is written, so a bad
  // dict changes nothing. "model" requires every tensor; "momentum" every
  // parameter (or an empty dict = no momentum yet).
  Napi::Value ImportState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto m = live(env);
      std::string what = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
      if ((what != "model" && what != "momentum") || info.Length() < 2 || !info[1].IsObject())
        throw Napi::TypeError::New(env, "importState(what: 'model' | 'momentum', dict: { [name]: Float32Array })");
      Napi::Object d = info[1].As<Napi::Object>();
      Napi::Array keys = d.GetPropertyNames();
      Arena& a = m->arena();
      std::vector<std::string> missing, unexpected, wrong;
      auto vals = std::make_shared<std::vector<std::pair<const TensorEntry*, std::vector<float>>>>();
      for (uint32_t i = 0; i < keys.Length(); i++) {
        std::string k = keys.Get(i).As<Napi::String>();
        const TensorEntry* e = a.find(k);
        if (!e || (what == "momentum" && !e->is_param)) {
          unexpected.push_back(k);
          continue;
        }
        Napi::Value v = d.Get(k);
        if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
          wrong.push_back(k + " (not a Float32Array)");
          continue;
        }
        Napi::Float32Array f = v.As<Napi::Float32Array>();
        if (f.ElementLength() != e->size) {
          wrong.push_back(k + " (" + std::to_string(f.ElementLength()) + " values, expected " + std::to_string(e->size) + ")");
          continue;
        }
        for (size_t j = 0; j < f.ElementLength(); j++) {
          if (!std::isfinite(f[j])) {
            wrong.push_back(k + " (non-finite value at " + std::to_string(j) + ")");
            break;
          }
        }
        vals->emplace_back(e, std::vector<float>(f.Data(), f.Data() + f.ElementLength()));
      }
      bool empty_momentum = what == "momentum" && keys.Length() == 0;
      if (!empty_momentum) {
        for (auto& e : a.entries()) {
          if (what == "momentum" && !e.is_param) continue;
          if (!d.Has(e.name)) missing.push_back(e.name);
        }
      }
      if (!missing.empty() || !unexpected.empty() || !wrong.empty()) {
        auto join = [](const std::vector<std::string>& v) {
          std::string s;
          for (size_t i = 0; i < v.size() && i < 8; i++) s += (i ? ", " : "") + v[i];
          if (v.size() > 8) s += ", ... (" + std::to_string(v.size()) + " in all)";
          return s;
        };
        std::string msg = "loadStateDict: the dict does not match this model (nothing was changed).";
        if (!missing.empty()) msg += " Missing: " + join(missing) + ".";
        if (!unexpected.empty()) msg += " Unexpected: " + join(unexpected) + ".";
        if (!wrong.empty()) msg += " Wrong: " + join(wrong) + ".";
        throw make_error(env, "SLN_STATE_MISMATCH", msg, ErrorKind::InvalidArgument);
      }
      return PromiseWorker::Start(
          env, "sln.importState",
          [m, what, vals, empty_momentum] {
            std::lock_guard<std::mutex> lk(m->mutex());
            auto dl = lock_backend(m->backend());
            Arena& a = m->arena();
            if (what == "momentum") {
              a.has_momentum = !empty_momentum;
              a.zero_momentum();
              for (auto& [e, v] : *vals) a.write(*e, v.data(), true);
            } else {
              for (auto& [e, v] : *vals) a.write(*e, v.data());
            }
          },
          [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    model_.reset();   // workers still running hold their own reference
    return info.Env().Undefined();
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !model_); }
  Napi::Value FeatureDim(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, live(env)->feature_dim()); });
  }

  Napi::Value GetStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto m = live(env);
      std::lock_guard<std::mutex> lk(m->mutex());
      return Napi::Number::New(env, static_cast<double>(m->step()));
    });
  }
  void SetStep(const Napi::CallbackInfo& info, const Napi::Value& v) {
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

  Napi::Value SmallInput(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value { return Napi::Boolean::New(env, live(env)->spec().small_input == 1); });
  }

  Napi::Value Device(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value { return Napi::String::New(env, live(env)->backend().name()); });
  }

  std::shared_ptr<Model> model_;
};

static void init_model(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeModel", ModelWrap::Define(env));
  Napi::Array archs = Napi::Array::New(env);
  auto names = known_archs();
  for (size_t i = 0; i < names.size(); i++) archs.Set(i, names[i]);
  exports.Set("archs", archs);
}

SLN_ADDON_INIT(init_model);

}  // namespace sln::addon
