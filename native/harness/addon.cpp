// The test-only addon (selflabel_native_test; binding.gyp's second target,
// built by scripts/build-test-addon.js, loaded by test/helpers/test_addon.ts):
// the float64 reference (native/ref) and the op harness. The addon that users
// install contains neither.
//   harnessRun(op, backend, params, inputs) -> outputs, synchronous.
//     backend: null for the float64 reference, or a handle from the main
//     addon's backendHandle("cpu" | "cuda") (addon/backend_handle.h; "cuda"
//     needs the CUDA library loaded by lib/cuda.ts first). Inputs and outputs
//     are { name: Float64Array }.
//   harnessOps() lists the registered cases.
#include "addon/backend_handle.h"
#include "addon/common.h"
#include "harness/harness.h"

namespace sln::addon {

namespace {

const BackendHandle* handle_arg(Napi::Env env, const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!v.IsExternal() || !v.As<Napi::External<BackendHandle>>().CheckTypeTag(backend_handle_tag()))
    throw Napi::TypeError::New(env, "harnessRun: backend must be null (the float64 reference) or a handle from the addon's backendHandle()");
  return v.As<Napi::External<BackendHandle>>().Data();
}

Napi::Value HarnessRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 4 || !info[0].IsString() || !info[2].IsObject() || !info[3].IsObject())
      throw Napi::TypeError::New(env, "harnessRun(op: string, backend: handle | null, params: object, inputs: object)");
    std::string op = info[0].As<Napi::String>();
    const BackendHandle* handle = handle_arg(env, info[1]);
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
    std::unique_lock<std::mutex> lk;
    if (handle && handle->mutex) lk = std::unique_lock<std::mutex>(*handle->mutex);
    Tensors out = it->second(handle ? handle->backend : nullptr, params, inputs);
    Napi::Object res = Napi::Object::New(env);
    for (auto& [k, v] : out) {
      Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
      std::copy(v.begin(), v.end(), a.Data());
      res.Set(k, a);
    }
    return res;
  });
}

Napi::Value HarnessOps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array a = Napi::Array::New(env);
  uint32_t i = 0;
  for (auto& [k, v] : harness_cases()) a.Set(i++, Napi::String::New(env, k));
  return a;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("harnessRun", Napi::Function::New(env, HarnessRun, "harnessRun"));
  exports.Set("harnessOps", Napi::Function::New(env, HarnessOps, "harnessOps"));
  return exports;
}

}  // namespace

}  // namespace sln::addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return sln::addon::Init(env, exports); }

NODE_API_MODULE(selflabel_native_test, InitModule)
