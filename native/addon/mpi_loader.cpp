// Loading libselflabel_mpi.so (see addon/mpi_loader.h) and its JS entry points:
//   mpiLoad(path)            dlopen(RTLD_NOW | RTLD_GLOBAL), ABI check, dlsym of every
//                            symbol (addon/dl_library.h); throws Error code SLN_MPI_LOAD
//                            with dlerror()'s text
//   mpiDescribe()            the MPI library's version string (no init needed)
//   mpiInit()                { rank, size, launched } (MPI_Init_thread once)
//   mpiAllreduce(a, op)      Promise: in place over the ranks; a Float32/Float64/Int32Array
//                            (or BigInt64Array), op 'sum' | 'max' | 'min'
//   mpiAllgather(bytes)      Promise<Uint8Array[]>: every rank's bytes (sizes may differ)
//   mpiBcast(bytes, root)    Promise: in place from root
//   mpiBarrier()             Promise
//   mpiAbort(code)           ends every rank (MPI_Abort)
//   mpiFinalize()
//   mpiStats()               { seconds, bytes, calls } in all-reduces/all-gathers since the last call
//   sinkhornShardRows(n, rank, ranks)   [begin, end) of a rank's rows (no MPI needed)
// Which file to load is decided in lib/distributed/mpi.ts.
#include "addon/mpi_loader.h"

#include <dlfcn.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <memory>
#include <mutex>

#include "addon/common.h"
#include "addon/dl_library.h"
#include "addon/nccl_loader.h"
#include "sln/mpi_api.h"
#include "sln/nccl_api.h"

namespace sln::addon {

namespace {

#define SLN_MPI_FUNCTIONS(X)                                                                            \
  X(sln_mpi, describe) X(sln_mpi, init) X(sln_mpi, allreduce) X(sln_mpi, allgatherv) X(sln_mpi, bcast) \
  X(sln_mpi, barrier) X(sln_mpi, abort) X(sln_mpi, finalize)

struct MpiLib : DlLib {
  SLN_MPI_FUNCTIONS(SLN_DL_MEMBER)
  explicit MpiLib(const DlOpen& dl) : DlLib(dl) { SLN_MPI_FUNCTIONS(SLN_DL_LOOKUP) }
};

std::mutex g_mu;                 // guards g_lib and serialises every MPI call
std::unique_ptr<MpiLib> g_lib;   // never unloaded once loaded
int g_rank = -1, g_size = 0;     // set by mpiInit
// Time spent inside the collectives (mpiStats; benchmarks report the all-reduce share).
struct Stats {
  double seconds = 0, bytes = 0, calls = 0;
} g_stats;
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// RTLD_GLOBAL: OpenMPI dlopens its components, which need libmpi's symbols globally.
const DlSpec kSpec = {"MPI", "SLN_MPI_LOAD", RTLD_NOW | RTLD_GLOBAL,
                      "rebuild it with `npm run build:mpi` (needs openmpi-bin and libopenmpi-dev)",
                      "rebuild it with `npm run build:mpi`", "sln_mpi_abi_version", SLN_MPI_ABI_VERSION};

// The library, initialised; call with g_mu held.
MpiLib& ready_or_throw(const char* what) {
  if (!g_lib || g_rank < 0)
    SLN_FAIL(Unsupported, "SLN_NO_MPI", what << ": MPI is not initialised (lib/distributed loads and initialises it "
                                               "for --distributed runs; see `selflabel-native info`)");
  return *g_lib;
}

[[noreturn]] void fail(const char* err) { SLN_FAIL(Library, "SLN_MPI", err); }

}  // namespace

bool mpi_ready() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_lib && g_rank >= 0;
}
int mpi_rank() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_rank;
}
int mpi_size() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_size;
}

void mpi_allreduce(void* buf, int64_t count, int dtype, int op) {
  std::lock_guard<std::mutex> lk(g_mu);
  MpiLib& lib = ready_or_throw("mpi_allreduce");
  char err[512] = {0};
  const double t = now_s();
  if (lib.allreduce(buf, count, dtype, op, err, sizeof err) != 0) fail(err);
  g_stats.seconds += now_s() - t;
  g_stats.bytes += static_cast<double>(count) * (dtype == SLN_MPI_F32 || dtype == SLN_MPI_I32 ? 4 : 8);
  g_stats.calls += 1;
}

void mpi_allgatherv(const void* send, int64_t send_bytes, void* recv, const std::vector<int64_t>& recv_bytes) {
  std::lock_guard<std::mutex> lk(g_mu);
  MpiLib& lib = ready_or_throw("mpi_allgatherv");
  if (static_cast<int>(recv_bytes.size()) != g_size)
    SLN_FAIL(Internal, "SLN_MPI", "mpi_allgatherv: " << recv_bytes.size() << " sizes for " << g_size << " ranks");
  char err[512] = {0};
  const double t = now_s();
  if (lib.allgatherv(send, send_bytes, recv, recv_bytes.data(), err, sizeof err) != 0) fail(err);
  g_stats.seconds += now_s() - t;
  for (int64_t b : recv_bytes) g_stats.bytes += static_cast<double>(b);
  g_stats.calls += 1;
}

const sinkhorn::Shard* parse_shard(Napi::Env env, const Napi::Value& v, const char* fn) {
  if (!v.IsObject())
    throw Napi::TypeError::New(env, std::string(fn) + ": options.shard must be an object { nTotal, exact }");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value nt = o.Get("nTotal");
  if (!nt.IsNumber()) throw Napi::TypeError::New(env, std::string(fn) + ": options.shard.nTotal must be a number");
  double n = nt.As<Napi::Number>().DoubleValue();
  if (!(n >= 1) || n > 2147483647.0 || std::floor(n) != n)
    throw Napi::RangeError::New(env, std::string(fn) + ": options.shard.nTotal must be an integer in [1, 2^31-1]");
  bool exact = o.Get("exact").IsUndefined() ? true : o.Get("exact").ToBoolean().Value();
  int rank, size;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    ready_or_throw(fn);
    rank = g_rank;
    size = g_size;
  }
  // One Shard per (nTotal, exact), kept for the life of the process (a few per run).
  static std::mutex cache_mu;
  static std::deque<sinkhorn::Shard> cache;
  std::lock_guard<std::mutex> lk(cache_mu);
  for (const auto& s : cache)
    if (s.n_total == static_cast<int64_t>(n) && s.exact == exact) return &s;
  sinkhorn::Shard s;
  s.n_total = static_cast<int64_t>(n);
  s.rank = rank;
  s.ranks = size;
  s.exact = exact;
  s.allgather = [](const double* mine, int64_t count, double* all, const std::vector<int64_t>& counts) {
    std::vector<int64_t> bytes(counts.size());
    for (size_t i = 0; i < counts.size(); ++i) bytes[i] = counts[i] * 8;
    mpi_allgatherv(mine, count * 8, all, bytes);
  };
  s.allreduce = [](double* p, int64_t count, int op) {
    mpi_allreduce(p, count, SLN_MPI_F64, op == 0 ? SLN_MPI_SUM : op == 1 ? SLN_MPI_MAX : SLN_MPI_MIN);
  };
  // the CUDA solver's sums in device memory (NCCL; throws SLN_NO_NCCL without a communicator)
  s.device_allreduce = [](double* dev, int64_t count, int op, void* stream) {
    nccl_allreduce(dev, count, SLN_NCCL_F64, op == 0 ? SLN_NCCL_SUM : op == 1 ? SLN_NCCL_MAX : SLN_NCCL_MIN, stream);
  };
  cache.push_back(std::move(s));
  return &cache.back();
}

const DistHooks* mpi_dist_hooks(bool sync_bn) {
  {
    std::lock_guard<std::mutex> lk(g_mu);
    ready_or_throw("distributed trainStep");
  }
  static const DistHooks hooks[2] = {
      {[](float* g, size_t n) { mpi_allreduce(g, static_cast<int64_t>(n), SLN_MPI_F32, SLN_MPI_SUM); }, nullptr},
      {[](float* g, size_t n) { mpi_allreduce(g, static_cast<int64_t>(n), SLN_MPI_F32, SLN_MPI_SUM); },
       [](double* v, size_t n) { mpi_allreduce(v, static_cast<int64_t>(n), SLN_MPI_F64, SLN_MPI_SUM); }},
  };
  return &hooks[sync_bn ? 1 : 0];
}

namespace {

Napi::Value MpiLoad(const Napi::CallbackInfo& info) { return load_entry(info, "mpiLoad", kSpec, g_mu, g_lib); }

Napi::Value MpiDescribe(const Napi::CallbackInfo& info) { return describe_entry(info, g_mu, g_lib); }

Napi::Value MpiInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::lock_guard<std::mutex> lk(g_mu);
    if (!g_lib) SLN_FAIL(Unsupported, "SLN_NO_MPI", "mpiInit: the MPI library is not loaded (mpiLoad first)");
    int rank = -1, size = 0, launched = 0;
    char err[512] = {0};
    if (g_lib->init(&rank, &size, &launched, err, sizeof err) != 0) fail(err);
    g_rank = rank;
    g_size = size;
    Napi::Object o = Napi::Object::New(env);
    o.Set("rank", rank);
    o.Set("size", size);
    o.Set("launched", Napi::Boolean::New(env, launched != 0));
    return o;
  });
}

// (typedArray, op) -> Promise<void>, in place
Napi::Value MpiAllreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsTypedArray())
      throw Napi::TypeError::New(env, "mpiAllreduce(array: Float32Array | Float64Array | Int32Array | BigInt64Array, op)");
    auto a = info[0].As<Napi::TypedArray>();
    int dtype;
    switch (a.TypedArrayType()) {
      case napi_float32_array: dtype = SLN_MPI_F32; break;
      case napi_float64_array: dtype = SLN_MPI_F64; break;
      case napi_int32_array: dtype = SLN_MPI_I32; break;
      case napi_bigint64_array: dtype = SLN_MPI_I64; break;
      default: throw Napi::TypeError::New(env, "mpiAllreduce: array must be a Float32Array, Float64Array, Int32Array or BigInt64Array");
    }
    std::string op = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "sum";
    int opc = op == "sum" ? SLN_MPI_SUM : op == "max" ? SLN_MPI_MAX : op == "min" ? SLN_MPI_MIN : -1;
    if (opc < 0) throw Napi::RangeError::New(env, "mpiAllreduce: op must be 'sum', 'max' or 'min', got '" + op + "'");
    {
      std::lock_guard<std::mutex> lk(g_mu);
      ready_or_throw("mpiAllreduce");
    }
    void* p = static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
    int64_t n = static_cast<int64_t>(a.ElementLength());
    return PromiseWorker::Start(
        env, "mpiAllreduce", [=] { mpi_allreduce(p, n, dtype, opc); }, [](Napi::Env e) { return e.Undefined(); }, {a});
  });
}

// (Uint8Array) -> Promise<Uint8Array[]>: each rank's bytes, in rank order
Napi::Value MpiAllgather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, "mpiAllgather(bytes: Uint8Array)");
    auto a = info[0].As<Napi::Uint8Array>();
    int size;
    {
      std::lock_guard<std::mutex> lk(g_mu);
      ready_or_throw("mpiAllgather");
      size = g_size;
    }
    const uint8_t* p = a.Data();
    const int64_t n = static_cast<int64_t>(a.ByteLength());
    auto sizes = std::make_shared<std::vector<int64_t>>(size);
    auto out = std::make_shared<std::vector<uint8_t>>();
    return PromiseWorker::Start(
        env, "mpiAllgather",
        [=] {
          std::vector<int64_t> eight(size, 8);
          mpi_allgatherv(&n, 8, sizes->data(), eight);
          int64_t total = 0;
          for (int64_t s : *sizes) total += s;
          out->resize(static_cast<size_t>(total));
          mpi_allgatherv(p, n, out->data(), *sizes);
        },
        [=](Napi::Env e) -> Napi::Value {
          Napi::Array arr = Napi::Array::New(e, sizes->size());
          int64_t off = 0;
          for (size_t r = 0; r < sizes->size(); ++r) {
            auto b = Napi::Uint8Array::New(e, static_cast<size_t>((*sizes)[r]));
            std::copy(out->begin() + off, out->begin() + off + (*sizes)[r], b.Data());
            off += (*sizes)[r];
            arr.Set(static_cast<uint32_t>(r), b);
          }
          return arr;
        },
        {a});
  });
}

// (Uint8Array, root) -> Promise<void>, in place
Napi::Value MpiBcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber())
      throw Napi::TypeError::New(env, "mpiBcast(bytes: TypedArray, root: number)");
    auto a = info[0].As<Napi::TypedArray>();
    int root = info[1].As<Napi::Number>().Int32Value();
    {
      std::lock_guard<std::mutex> lk(g_mu);
      ready_or_throw("mpiBcast");
      if (root < 0 || root >= g_size) throw Napi::RangeError::New(env, "mpiBcast: root " + std::to_string(root) + " is not a rank");
    }
    void* p = static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
    int64_t n = static_cast<int64_t>(a.ByteLength());
    return PromiseWorker::Start(
        env, "mpiBcast",
        [=] {
          std::lock_guard<std::mutex> lk(g_mu);
          char err[512] = {0};
          if (g_lib->bcast(p, n, root, err, sizeof err) != 0) fail(err);
        },
        [](Napi::Env e) { return e.Undefined(); }, {a});
  });
}

Napi::Value MpiBarrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    {
      std::lock_guard<std::mutex> lk(g_mu);
      ready_or_throw("mpiBarrier");
    }
    return PromiseWorker::Start(
        env, "mpiBarrier",
        [] {
          std::lock_guard<std::mutex> lk(g_mu);
          char err[512] = {0};
          if (g_lib->barrier(err, sizeof err) != 0) fail(err);
        },
        [](Napi::Env e) { return e.Undefined(); });
  });
}

Napi::Value MpiAbort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
    if (!g_lib || g_rank < 0) return env.Undefined();
    g_lib->abort(code);  // no lock: another thread may hold it inside a collective
    return env.Undefined();
  });
}

Napi::Value MpiFinalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::lock_guard<std::mutex> lk(g_mu);
    if (!g_lib || g_rank < 0) return env.Undefined();
    char err[512] = {0};
    if (g_lib->finalize(err, sizeof err) != 0) fail(err);
    g_rank = -1;
    return env.Undefined();
  });
}

// (n, rank, ranks) -> [begin, end): the rows a rank holds in a sharded Sinkhorn (sinkhorn::shard_rows)
Napi::Value ShardRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber())
      throw Napi::TypeError::New(env, "sinkhornShardRows(n: number, rank: number, ranks: number)");
    auto rows = sinkhorn::shard_rows(info[0].As<Napi::Number>().Int64Value(), info[1].As<Napi::Number>().Int32Value(),
                                     info[2].As<Napi::Number>().Int32Value());
    Napi::Array a = Napi::Array::New(env, 2);
    a.Set(0u, Napi::Number::New(env, static_cast<double>(rows.first)));
    a.Set(1u, Napi::Number::New(env, static_cast<double>(rows.second)));
    return a;
  });
}

// () -> { seconds, bytes, calls } spent in all-reduces and all-gathers since the last call (then reset)
Napi::Value MpiStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::lock_guard<std::mutex> lk(g_mu);
  Napi::Object o = Napi::Object::New(env);
  o.Set("seconds", g_stats.seconds);
  o.Set("bytes", g_stats.bytes);
  o.Set("calls", g_stats.calls);
  g_stats = Stats{};
  return o;
}

void init_mpi(Napi::Env env, Napi::Object exports) {
  exports.Set("mpiStats", Napi::Function::New(env, MpiStats, "mpiStats"));
  exports.Set("sinkhornShardRows", Napi::Function::New(env, ShardRows, "sinkhornShardRows"));
  exports.Set("mpiLoad", Napi::Function::New(env, MpiLoad, "mpiLoad"));
  exports.Set("mpiDescribe", Napi::Function::New(env, MpiDescribe, "mpiDescribe"));
  exports.Set("mpiInit", Napi::Function::New(env, MpiInit, "mpiInit"));
  exports.Set("mpiAllreduce", Napi::Function::New(env, MpiAllreduce, "mpiAllreduce"));
  exports.Set("mpiAllgather", Napi::Function::New(env, MpiAllgather, "mpiAllgather"));
  exports.Set("mpiBcast", Napi::Function::New(env, MpiBcast, "mpiBcast"));
  exports.Set("mpiBarrier", Napi::Function::New(env, MpiBarrier, "mpiBarrier"));
  exports.Set("mpiAbort", Napi::Function::New(env, MpiAbort, "mpiAbort"));
  exports.Set("mpiFinalize", Napi::Function::New(env, MpiFinalize, "mpiFinalize"));
}

}  // namespace

SLN_ADDON_INIT(init_mpi);

}  // namespace sln::addon
