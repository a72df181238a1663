// backendHandle(name): the CPU or the CUDA backend as a type-tagged External
// (addon/backend_handle.h) for the op harness of the test-only addon; the
// float64 reference and the harness are not part of this addon.
#include "addon/backend_handle.h"

#include "addon/common.h"
#include "addon/cuda_loader.h"

namespace sln::addon {

namespace {

Napi::Value BackendHandleJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString())
      throw Napi::TypeError::New(env, "backendHandle(name: \"cpu\" | \"cuda\")");
    const std::string name = info[0].As<Napi::String>();
    static BackendHandle cpu, cuda;   // filled on first use, then the same for the process
    BackendHandle* h = nullptr;
    if (name == "cpu") {
      h = &cpu;
    } else if (name == "cuda") {
      h = &cuda;
    } else {
      SLN_FAIL(InvalidArgument, "SLN_UNKNOWN_BACKEND", "unknown backend '" << name << "' (expected cpu or cuda)");
    }
    if (!h->backend) {
      Backend& be = name == "cpu" ? cpu_backend() : cuda_backend();
      h->mutex = be.host_memory() ? nullptr : &device_mutex();
      h->backend = &be;
    }
    auto ext = Napi::External<BackendHandle>::New(env, h);
    ext.TypeTag(backend_handle_tag());
    return ext;
  });
}

void init_backend_handle(Napi::Env env, Napi::Object exports) {
  exports.Set("backendHandle", Napi::Function::New(env, BackendHandleJs, "backendHandle"));
}

}  // namespace

SLN_ADDON_INIT(init_backend_handle);

}  // namespace sln::addon
