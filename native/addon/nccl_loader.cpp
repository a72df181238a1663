// Loading libselflabel_nccl.so (see addon/nccl_loader.h) and its JS entry points:
//   ncclLoad(path)                 dlopen(RTLD_NOW | RTLD_LOCAL), ABI check, dlsym of every
//                                  symbol (addon/dl_library.h); throws Error code SLN_NCCL_LOAD
//                                  with dlerror()'s text
//   ncclDescribe()                 NCCL's version and the CUDA device count, or null (not loaded)
//   ncclUniqueId()                 Uint8Array(128): ncclGetUniqueId (rank 0 only)
//   ncclInit(id, rank, size, dev)  Promise: ncclCommInitRank (returns when every rank joined)
//   ncclAllreduceTest(a, op)       Promise: a host Float64Array, through device memory of the
//                                  CUDA backend and back (the device checks use it)
//   ncclFinalize()
// Which file to load is decided in lib/distributed/nccl.ts.
#include "addon/nccl_loader.h"

#include <dlfcn.h>

#include <memory>
#include <mutex>
#include <string>

#include "addon/common.h"
#include "addon/dl_library.h"
#include "addon/cuda_loader.h"
#include "sln/nccl_api.h"

namespace sln::addon {

namespace {

#define SLN_NCCL_FUNCTIONS(X) \
  X(sln_nccl, describe) X(sln_nccl, unique_id) X(sln_nccl, init) X(sln_nccl, allreduce) X(sln_nccl, finalize)

struct NcclLib : DlLib {
  SLN_NCCL_FUNCTIONS(SLN_DL_MEMBER)
  explicit NcclLib(const DlOpen& dl) : DlLib(dl) { SLN_NCCL_FUNCTIONS(SLN_DL_LOOKUP) }
};

std::mutex g_mu;                  // guards g_lib / g_ready and serialises every NCCL call
std::unique_ptr<NcclLib> g_lib;   // never unloaded once loaded
bool g_ready = false;             // a communicator exists

const DlSpec kSpec = {"NCCL", "SLN_NCCL_LOAD", RTLD_NOW | RTLD_LOCAL, "rebuild it with `npm run build:nccl`",
                      "rebuild it with `npm run build:nccl`", "sln_nccl_abi_version", SLN_NCCL_ABI_VERSION};

NcclLib& loaded_or_throw(const char* what) {
  if (!g_lib)
    SLN_FAIL(Unsupported, "SLN_NO_NCCL", what << ": the NCCL library is not loaded (lib/distributed/nccl.ts loads it "
                                                 "for --distributed --device cuda; see `selflabel-native info`)");
  return *g_lib;
}

}  // namespace

bool nccl_ready() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_lib && g_ready;
}

void nccl_allreduce(void* dev, int64_t count, int dtype, int op, void* stream) {
  std::lock_guard<std::mutex> lk(g_mu);
  NcclLib& lib = loaded_or_throw("nccl_allreduce");
  if (!g_ready) SLN_FAIL(Unsupported, "SLN_NO_NCCL", "nccl_allreduce: no NCCL communicator (ncclInit first)");
  char err[512] = {0};
  if (lib.allreduce(dev, count, dtype, op, stream, err, sizeof err) != 0) SLN_FAIL(Library, "SLN_NCCL", err);
}

const DistHooks* nccl_dist_hooks(Backend& backend) {
  if (!nccl_ready())
    SLN_FAIL(Unsupported, "SLN_NO_NCCL", "distributed trainStep on " << backend.name()
                                             << ": no NCCL communicator (lib/distributed/nccl.ts starts it for "
                                                "--distributed --device cuda)");
  // one backend per process (the CUDA backend lives until exit): one hook set
  static Backend* bound = nullptr;
  static DistHooks hooks;
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  if (bound && bound != &backend)
    SLN_FAIL(Internal, "SLN_NO_NCCL", "nccl_dist_hooks: a second device backend in one process");
  if (!bound) {
    bound = &backend;
    hooks.grad_sum = [&backend](float* g, size_t n) {
      backend.synchronize();   // backward's gradients are written
      nccl_allreduce(g, static_cast<int64_t>(n), SLN_NCCL_F32, SLN_NCCL_SUM, nullptr);
    };
  }
  return &hooks;
}

namespace {

Napi::Value NcclLoad(const Napi::CallbackInfo& info) { return load_entry(info, "ncclLoad", kSpec, g_mu, g_lib); }

Napi::Value NcclDescribe(const Napi::CallbackInfo& info) { return describe_entry(info, g_mu, g_lib); }

Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::lock_guard<std::mutex> lk(g_mu);
    NcclLib& lib = loaded_or_throw("ncclUniqueId");
    auto id = Napi::Uint8Array::New(env, SLN_NCCL_UNIQUE_ID_BYTES);
    char err[512] = {0};
    if (lib.unique_id(id.Data(), err, sizeof err) != 0) SLN_FAIL(Library, "SLN_NCCL", err);
    return id;
  });
}

// (id: Uint8Array(128), rank, size, device) -> Promise<void>
Napi::Value NcclInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 4 || !info[0].IsTypedArray() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber())
      throw Napi::TypeError::New(env, "ncclInit(id: Uint8Array, rank: number, size: number, device: number)");
    auto a = info[0].As<Napi::TypedArray>();
    if (a.TypedArrayType() != napi_uint8_array || a.ByteLength() != SLN_NCCL_UNIQUE_ID_BYTES)
      throw Napi::RangeError::New(env, "ncclInit: id must be a Uint8Array of " + std::to_string(SLN_NCCL_UNIQUE_ID_BYTES) + " bytes");
    const int rank = info[1].As<Napi::Number>().Int32Value(), size = info[2].As<Napi::Number>().Int32Value(),
              device = info[3].As<Napi::Number>().Int32Value();
    if (size < 1 || rank < 0 || rank >= size || device < 0)
      throw Napi::RangeError::New(env, "ncclInit: need 0 <= rank < size and device >= 0");
    {
      std::lock_guard<std::mutex> lk(g_mu);
      loaded_or_throw("ncclInit");
      if (g_ready) SLN_FAIL(InvalidArgument, "SLN_NCCL", "ncclInit: a communicator exists already");
    }
    auto id = std::make_shared<std::vector<unsigned char>>(a.As<Napi::Uint8Array>().Data(),
                                                           a.As<Napi::Uint8Array>().Data() + SLN_NCCL_UNIQUE_ID_BYTES);
    return PromiseWorker::Start(
        env, "ncclInit",
        [=] {
          std::lock_guard<std::mutex> lk(g_mu);
          char err[512] = {0};
          if (g_lib->init(id->data(), rank, size, device, err, sizeof err) != 0) SLN_FAIL(Library, "SLN_NCCL", err);
          g_ready = true;
        },
        [](Napi::Env e) { return e.Undefined(); });
  });
}

// (a: Float64Array, op) -> Promise<void>: a through the CUDA backend's memory, all-reduced there, back
Napi::Value NcclAllreduceTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(env, "ncclAllreduceTest(a: Float64Array, op?: 'sum' | 'max' | 'min')");
    auto a = info[0].As<Napi::Float64Array>();
    std::string op = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "sum";
    const int opc = op == "sum" ? SLN_NCCL_SUM : op == "max" ? SLN_NCCL_MAX : op == "min" ? SLN_NCCL_MIN : -1;
    if (opc < 0) throw Napi::RangeError::New(env, "ncclAllreduceTest: op must be 'sum', 'max' or 'min'");
    double* p = a.Data();
    const size_t n = a.ElementLength();
    return PromiseWorker::Start(
        env, "ncclAllreduceTest",
        [=] {
          Backend& be = cuda_backend();
          auto dl = lock_backend(be);
          void* d = be.alloc(n * sizeof(double));
          try {
            be.upload(d, p, n * sizeof(double));
            be.synchronize();
            nccl_allreduce(d, static_cast<int64_t>(n), SLN_NCCL_F64, opc, nullptr);
            be.download(p, d, n * sizeof(double));
            be.synchronize();
          } catch (...) {
            be.release(d);
            throw;
          }
          be.release(d);
        },
        [](Napi::Env e) { return e.Undefined(); }, {a});
  });
}

Napi::Value NcclFinalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::lock_guard<std::mutex> lk(g_mu);
    if (!g_lib || !g_ready) return env.Undefined();
    char err[512] = {0};
    g_ready = false;
    if (g_lib->finalize(err, sizeof err) != 0) SLN_FAIL(Library, "SLN_NCCL", err);
    return env.Undefined();
  });
}

void init_nccl(Napi::Env env, Napi::Object exports) {
  exports.Set("ncclLoad", Napi::Function::New(env, NcclLoad, "ncclLoad"));
  exports.Set("ncclDescribe", Napi::Function::New(env, NcclDescribe, "ncclDescribe"));
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId, "ncclUniqueId"));
  exports.Set("ncclInit", Napi::Function::New(env, NcclInit, "ncclInit"));
  exports.Set("ncclAllreduceTest", Napi::Function::New(env, NcclAllreduceTest, "ncclAllreduceTest"));
  exports.Set("ncclFinalize", Napi::Function::New(env, NcclFinalize, "ncclFinalize"));
}

}  // namespace

SLN_ADDON_INIT(init_nccl);

}  // namespace sln::addon
