// harnessRun(op, backend, params, inputs) -> outputs, synchronous; for tests.
// backend: "ref" (float64 reference), "cpu", or "cuda" (the CUDA library must
// have been loaded by lib/cuda.ts first). Inputs and outputs are
// { name: Float64Array }. harnessOps() lists the registered cases.
#include "addon/common.h"
#include "addon/cuda_loader.h"
#include "sln/harness.h"

namespace sln::addon {

static Backend* backend_by_name(const std::string& name) {
  if (name == "ref") return nullptr;
  if (name == "cpu") return &cpu_backend();
  if (name == "cuda") return &cuda_backend();
  SLN_FAIL(InvalidArgument, "SLN_UNKNOWN_BACKEND", "unknown backend '" << name << "' (expected ref, cpu or cuda)");
}

static Napi::Value HarnessRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 4 || !info[0].IsString() || !info[1].IsString() || !info[2].IsObject() ||
        !info[3].IsObject())
      throw Napi::TypeError::New(env, "harnessRun(op: string, backend: string, params: object, inputs: object)");
    std::string op = info[0].As<Napi::String>();
    std::string be = info[1].As<Napi::String>();
    Params params;
    Napi::Object po = info[2].As<Napi::Object>();
    Napi::Array pk = po.GetPropertyNames();
    for (uint32_t i = 0; i < pk.Length(); i++) {
      std::string k = pk.Get(i).As<Napi::String>();
      params[k] = po.Get(k).ToNumber().DoubleValue();
    }
    Tensors inputs;
    Napi::Object io = info[3].As<Napi::Object>();
    Napi::Array ik = io.GetPropertyNames();
    for (uint32_t i = 0; i < ik.Length(); i++) {
      std::string k = ik.Get(i).As<Napi::String>();
      Napi::Value v = io.Get(k);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
        throw Napi::TypeError::New(env, "harnessRun: input '" + k + "' must be a Float64Array");
      Napi::Float64Array a = v.As<Napi::Float64Array>();
      inputs[k] = std::vector<double>(a.Data(), a.Data() + a.ElementLength());
    }
    auto it = harness_cases().find(op);
    if (it == harness_cases().end())
      SLN_FAIL(InvalidArgument, "SLN_UNKNOWN_OP", "harness: unknown op '" << op << "'");
    Backend* backend = backend_by_name(be);
    std::unique_lock<std::mutex> lk;
    if (backend) lk = lock_backend(*backend);
    Tensors out = it->second(backend, params, inputs);
    Napi::Object res = Napi::Object::New(env);
    for (auto& [k, v] : out) {
      Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
      std::copy(v.begin(), v.end(), a.Data());
      res.Set(k, a);
    }
    return res;
  });
}

static Napi::Value HarnessOps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env);
  uint32_t i = 0;
  for (auto& [k, v] : harness_cases()) a.Set(i++, Napi::String::New(env, k));
  return a;
}

static void init_harness(Napi::Env env, Napi::Object exports) {
  exports.Set("harnessRun", Napi::Function::New(env, HarnessRun, "harnessRun"));
  exports.Set("harnessOps", Napi::Function::New(env, HarnessOps, "harnessOps"));
}

SLN_ADDON_INIT(init_harness);

}  // namespace sln::addon
