// Loading libselflabel_cuda.so (see addon/cuda_loader.h) and its JS entry points:
//   cudaLoad(path)        dlopen(RTLD_NOW | RTLD_LOCAL), ABI check, dlsym of every
//                         symbol (addon/dl_library.h); throws Error code SLN_CUDA_LOAD
//                         with dlerror()'s text
//   cudaProbe(device)     the library's probe JSON (a string); lib/cuda.ts calls it
//                         in a child process only
//   cudaLoaded()          null or { path, abi }
//   cudaSetTf32(enabled)  TF32 math on the CUDA backend
// Which file to load, and whether it is safe to load, is decided in lib/cuda.ts.
#include "addon/cuda_loader.h"

#include <dlfcn.h>

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

const DlSpec kSpec = {"CUDA", "SLN_CUDA_LOAD", RTLD_NOW | RTLD_LOCAL, kHint,
                      "rebuild it with `npm run build:cuda` (or point SELFLABEL_CUDA_LIB at a matching build)",
                      "sln_cuda_abi_version", SLN_CUDA_ABI_VERSION};

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

Napi::Value CudaLoad(const Napi::CallbackInfo& info) { return load_entry(info, "cudaLoad", kSpec, g_load_mu, g_lib); }

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
