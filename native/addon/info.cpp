// info(): versions and backends, for `selflabel-native info`.
#include "addon/common.h"
#include "sln/ops.h"

namespace sln::addon {

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& cpu = cpu_backend();
    Napi::Object o = Napi::Object::New(env);
    o.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
    o.Set("cpu", Napi::String::New(env, cpu.describe()));
    o.Set("threads", Napi::Number::New(env, cpu.num_threads()));
    o.Set("bf16", Napi::Boolean::New(env, cpu.bf16_native()));   // AVX512-BF16 or AMX: label passes in bfloat16
    return o;
  });
}

static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "setThreads(n: number)");
    int n = info[0].As<Napi::Number>().Int32Value();
    if (n < 1 || n > 1024) throw Napi::RangeError::New(env, "setThreads: n must be in [1, 1024], got " + std::to_string(n));
    cpu_backend().set_num_threads(n);
    return env.Undefined();
  });
}

static void init_info(Napi::Env env, Napi::Object exports) {
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
}

SLN_ADDON_INIT(init_info);

}  // namespace sln::addon
