// NativeModel's label state (sln/model.h, core/label_state.cpp):
//   setLabels(labels: Int32Array[])            -> Promise<void>   per head, N labels
//   labels()                                   -> Promise<Int32Array[]> (copies)
//   collect(images, indices: Int32Array, training: boolean, precision: "f32" | "bf16") -> Promise<void>
//   fusedTrunk                                 "" when the trunk has the fused bf16 form, else why not
//   setLabelRows(begin, end)                   -> Promise<void>   a row-sharded pass (0, 0: all rows)
//   relabel(options: SinkhornOptions[])        -> Promise<SinkhornResult[]> one per head
// On the CUDA backend relabel solves each head's stored device logits with
// sln_cuda_sinkhorn on the backend's stream.
#include <string>
#include <vector>

#include "addon/cuda_loader.h"
#include "addon/model_wrap.h"
#include "addon/sinkhorn_js.h"

namespace sln::addon {

namespace {

Napi::Int32Array int32_arg(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, what + " must be an Int32Array");
  return v.As<Napi::Int32Array>();
}

}  // namespace

Napi::Value ModelWrap::SetLabels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    if (info.Length() < 1 || !info[0].IsArray())
      throw Napi::TypeError::New(env, "setLabels(labels: Int32Array[]): one Int32Array per head");
    Napi::Array la = info[0].As<Napi::Array>();
    auto labels = std::make_shared<std::vector<std::vector<int32_t>>>();
    for (uint32_t h = 0; h < la.Length(); h++) {
      auto a = int32_arg(env, la.Get(h), "setLabels: labels[" + std::to_string(h) + "]");
      labels->emplace_back(a.Data(), a.Data() + a.ElementLength());
    }
    return PromiseWorker::Start(
        env, "sln.setLabels",
        [m, labels] {
          std::lock_guard<std::mutex> lk(m->mutex());
          m->set_labels(std::move(*labels));   // checked there (heads, sizes, ranges)
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value ModelWrap::Labels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    auto copy = std::make_shared<std::vector<std::vector<int32_t>>>();
    return PromiseWorker::Start(
        env, "sln.labels",
        [m, copy] {
          std::lock_guard<std::mutex> lk(m->mutex());
          *copy = m->labels();
        },
        [copy](Napi::Env env) -> Napi::Value {
          Napi::Array arr = Napi::Array::New(env, copy->size());
          for (size_t h = 0; h < copy->size(); h++) {
            auto a = Napi::Int32Array::New(env, (*copy)[h].size());
            std::copy((*copy)[h].begin(), (*copy)[h].end(), a.Data());
            arr.Set(h, a);
          }
          return arr;
        });
  });
}

Napi::Value ModelWrap::Collect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    int N = batch_of(env, info[0], "collect");
    if (info.Length() < 2) throw Napi::TypeError::New(env, "collect(images, indices: Int32Array, training: boolean)");
    auto ix = int32_arg(env, info[1], "collect: indices");
    if (ix.ElementLength() != static_cast<size_t>(N))
      throw Napi::RangeError::New(env, "collect: indices has " + std::to_string(ix.ElementLength()) +
                                           " entries, expected " + std::to_string(N) + " (one per image)");
    const bool training = info.Length() > 2 && info[2].ToBoolean();
    std::string precision = info.Length() > 3 && info[3].IsString() ? info[3].As<Napi::String>().Utf8Value() : "f32";
    if (precision != "f32" && precision != "bf16")
      throw Napi::TypeError::New(env, "collect: precision must be 'f32' or 'bf16', got '" + precision + "'");
    const bool bf16 = precision == "bf16";
    const float* images = info[0].As<Napi::Float32Array>().Data();
    const int32_t* indices = ix.Data();
    return PromiseWorker::Start(
        env, "sln.collect",
        [m, images, N, indices, training, bf16] {
          std::lock_guard<std::mutex> lk(m->mutex());
          auto dl = lock_backend(m->backend());
          m->collect(images, N, training, indices, bf16);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); }, {info[0], info[1]});
  });
}

// (begin, end) -> Promise<void>: a row-sharded label pass (Model::set_label_rows)
Napi::Value ModelWrap::SetLabelRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
      throw Napi::TypeError::New(env, "setLabelRows(begin: number, end: number)");
    const int64_t b = info[0].As<Napi::Number>().Int64Value(), e = info[1].As<Napi::Number>().Int64Value();
    return PromiseWorker::Start(
        env, "sln.setLabelRows",
        [m, b, e] {
          std::lock_guard<std::mutex> lk(m->mutex());
          auto dl = lock_backend(m->backend());   // frees a device store
          m->set_label_rows(b, e);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value ModelWrap::FusedTrunk(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value { return Napi::String::New(env, live(env)->fused_trunk()); });
}

Napi::Value ModelWrap::Relabel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    const auto& ncls = m->spec().num_classes;
    if (info.Length() < 1 || !info[0].IsArray() || info[0].As<Napi::Array>().Length() != ncls.size())
      throw Napi::TypeError::New(env, "relabel(options: SinkhornOptions[]): one options object per head (" +
                                          std::to_string(ncls.size()) + ")");
    Napi::Array oa = info[0].As<Napi::Array>();
    auto opts = std::make_shared<std::vector<sinkhorn::Options>>();
    auto warm = std::make_shared<std::vector<std::shared_ptr<std::vector<double>>>>(ncls.size());
    for (uint32_t h = 0; h < oa.Length(); h++)
      opts->push_back(parse_sinkhorn_options(env, oa.Get(h), "relabel", ncls[h], (*warm)[h]));
    // options.shard (a row-sharded solve, after setLabelRows): the CPU solver over MPI
    // (exact or all-reduce mode), the CUDA one over NCCL (all-reduce mode only)
    Model::DeviceSinkhorn device;
    if (!m->backend().host_memory()) {
      auto solve = cuda_lib_or_throw("relabel").sinkhorn;
      Backend* be = &m->backend();
      device = [solve, be](const float* z, int64_t n, int64_t k, const sinkhorn::Options& o, sinkhorn::Result& r) {
        char err[512] = {0};
        if (solve(be, z, n, k, &o, &r, err, sizeof err) != 0) SLN_FAIL(Library, "SLN_CUDA", "relabel: " << err);
      };
    }
    auto res = std::make_shared<std::vector<sinkhorn::Result>>();
    return PromiseWorker::Start(
        env, "sln.relabel",
        [m, opts, warm, device, res] {
          (void)warm;   // keeps the warm starts alive
          std::lock_guard<std::mutex> lk(m->mutex());
          auto dl = lock_backend(m->backend());
          *res = m->relabel(*opts, device);
        },
        [res](Napi::Env env) -> Napi::Value {
          Napi::Array arr = Napi::Array::New(env, res->size());
          for (size_t h = 0; h < res->size(); h++) arr.Set(h, sinkhorn_result_to_js(env, (*res)[h]));
          return arr;
        });
  });
}

}  // namespace sln::addon
