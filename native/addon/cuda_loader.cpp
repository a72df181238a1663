// Loading libselflabel_cuda.so (see addon/cuda_loader.h) and its JS entry points:
//   cudaLoad(path)        dlopen(RTLD_NOW | RTLD_LOCAL), ABI check, dlsym of every
//                         symbol; throws Error code SLN_CUDA_LOAD with dlerror()'s text
//   cudaProbe(device)     the library's probe JSON (a string); lib/cuda.ts calls it
//                         in a child process only
//   cudaLoaded()          null or { path, abi }
//   cudaSetTf32(enabled)  TF32 math on the CUDA backend
// Which file to load, and whether it is safe to load, is decided in lib/cuda.ts.
#include "addon/cuda_loader.h"

#include <dlfcn.h>

#include <memory>

#include "addon/common.h"

namespace sln::addon {

namespace {

std::mutex g_load_mu;           // guards g_lib / g_backend creation
std::unique_ptr<CudaLib> g_lib;  // never unloaded once loaded
Backend* g_backend = nullptr;   // never destroyed (see cuda_loader.h)

const char* kHint =
    "set SELFLABEL_CUDA_LIB to the library's path, or build it with `npm run build:cuda`; when a CUDA, cuDNN "
    "or cuBLAS library is missing, add its lib folder to LD_LIBRARY_PATH (pip's nvidia-cudnn-cu13 / "
    "nvidia-cublas wheels put them under site-packages/nvidia/*/lib; CUDNN_ROOT / CUBLAS_ROOT point the build at "
    "them)";

std::unique_ptr<CudaLib> load(const std::string& path) {
  dlerror();
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    SLN_FAIL(Library, "SLN_CUDA_LOAD", "cannot load the CUDA library " << path << ": " << (e ? e : "unknown error")
                                                                      << "; " << kHint);
  }
  auto lib = std::make_unique<CudaLib>();
  lib->path = path;
  lib->handle = h;
  auto sym = [&](const char* name) -> void* {
    dlerror();
    void* p = dlsym(h, name);
    const char* e = dlerror();
    if (!p || e) {
      std::string msg = e ? e : "null";
      dlclose(h);
      SLN_FAIL(Library, "SLN_CUDA_LOAD", "the CUDA library " << path << " lacks the symbol " << name << " (" << msg
                                                            << "): it was built from other sources than this addon; "
                                                            << "rebuild it with `npm run build:cuda`");
    }
    return p;
  };
  lib->abi_version = reinterpret_cast<sln_cuda_abi_version_fn>(sym("sln_cuda_abi_version"));
  lib->abi = lib->abi_version();
  if (lib->abi != SLN_CUDA_ABI_VERSION) {
    const int abi = lib->abi;
    dlclose(h);
    SLN_FAIL(Library, "SLN_CUDA_LOAD", "the CUDA library " << path << " has ABI version " << abi << ", this addon needs "
                                                          << SLN_CUDA_ABI_VERSION
                                                          << ": rebuild it with `npm run build:cuda` (or point "
                                                             "SELFLABEL_CUDA_LIB at a matching build)");
  }
  lib->probe = reinterpret_cast<sln_cuda_probe_fn>(sym("sln_cuda_probe"));
  lib->backend_create = reinterpret_cast<sln_cuda_backend_create_fn>(sym("sln_cuda_backend_create"));
  lib->backend_destroy = reinterpret_cast<sln_cuda_backend_destroy_fn>(sym("sln_cuda_backend_destroy"));
  lib->set_tf32 = reinterpret_cast<sln_cuda_set_tf32_fn>(sym("sln_cuda_set_tf32"));
  lib->sinkhorn = reinterpret_cast<sln_cuda_sinkhorn_fn>(sym("sln_cuda_sinkhorn"));
  lib->augment = reinterpret_cast<sln_cuda_augment_fn>(sym("sln_cuda_augment"));
  return lib;
}

}  // namespace

const CudaLib* cuda_lib() {
  std::lock_guard<std::mutex> lk(g_load_mu);
  return g_lib.get();
}

const CudaLib& cuda_lib_or_throw(const char* what) {
  const CudaLib* lib = cuda_lib();
  if (!lib)
    SLN_FAIL(Unsupported, "SLN_NO_DEVICE", what << ": the CUDA backend is not loaded (lib/cuda.ts loads it after a "
                                                   "successful probe; see `selflabel-native info`)");
  return *lib;
}

Backend& cuda_backend() {
  const CudaLib& lib = cuda_lib_or_throw("cuda backend");
  std::lock_guard<std::mutex> lk(g_load_mu);
  if (!g_backend) {
    char err[1024] = {0};
    Backend* b = lib.backend_create(0, err, sizeof err);
    if (!b) SLN_FAIL(Library, "SLN_NO_DEVICE", "cannot create the CUDA backend: " << (err[0] ? err : "unknown error"));
    g_backend = b;
  }
  return *g_backend;
}

std::mutex& device_mutex() {
  static std::mutex mu;
  return mu;
}

std::unique_lock<std::mutex> lock_backend(Backend& b) {
  if (b.host_memory()) return std::unique_lock<std::mutex>();
  return std::unique_lock<std::mutex>(device_mutex());
}

namespace {

Napi::Value CudaLoad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "cudaLoad(path: string)");
    std::string path = info[0].As<Napi::String>();
    std::lock_guard<std::mutex> lk(g_load_mu);
    if (g_lib) {
      if (g_lib->path != path)
        SLN_FAIL(InvalidArgument, "SLN_CUDA_LOAD",
                 "cudaLoad: " << g_lib->path << " is already loaded; cannot load " << path << " as well");
      return env.Undefined();
    }
    g_lib = load(path);
    return env.Undefined();
  });
}

Napi::Value CudaProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const CudaLib& lib = cuda_lib_or_throw("cudaProbe");
    int device = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
    std::string out(16384, '\0');
    lib.probe(device, &out[0], out.size());
    out.resize(strnlen(out.data(), out.size()));
    return Napi::String::New(env, out);
  });
}

Napi::Value CudaLoaded(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CudaLib* lib = cuda_lib();
  if (!lib) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("path", lib->path);
  o.Set("abi", lib->abi);
  return o;
}

Napi::Value CudaSetTf32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const CudaLib& lib = cuda_lib_or_throw("cudaSetTf32");
    bool on = info.Length() > 0 && info[0].ToBoolean();
    Backend& be = cuda_backend();
    std::lock_guard<std::mutex> lk(device_mutex());
    char err[512] = {0};
    if (lib.set_tf32(&be, on ? 1 : 0, err, sizeof err) != 0) SLN_FAIL(Library, "SLN_CUDA", "cudaSetTf32: " << err);
    return env.Undefined();
  });
}

void init_cuda(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaLoad", Napi::Function::New(env, CudaLoad, "cudaLoad"));
  exports.Set("cudaProbe", Napi::Function::New(env, CudaProbe, "cudaProbe"));
  exports.Set("cudaLoaded", Napi::Function::New(env, CudaLoaded, "cudaLoaded"));
  exports.Set("cudaSetTf32", Napi::Function::New(env, CudaSetTf32, "cudaSetTf32"));
}

}  // namespace

SLN_ADDON_INIT(init_cuda);

}  // namespace sln::addon
