// sinkhornLogits / sinkhornFeatures / sinkhornTwoPass / sinkhornPlannedBytes:
// the label-assignment solver (core/sinkhorn.h) as Promises.
// Inputs are validated here (TypeError for a wrong type, RangeError for a wrong
// value or size); the typed arrays are kept alive while the solve runs.
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/common.h"
#include "addon/cuda_loader.h"
#include "addon/mpi_loader.h"
#include "addon/sinkhorn_js.h"
#include "core/sinkhorn.h"
#include "sln/ops.h"

namespace sln::addon {

namespace {

using sinkhorn::Options;
using sinkhorn::Result;
using sinkhorn::Storage;

Napi::Float32Array f32_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name,
                           uint64_t expect_len, const std::string& shape) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, std::string(fn) + ": " + name + " must be a Float32Array of " + shape);
  auto a = info[i].As<Napi::Float32Array>();
  if (a.ElementLength() != expect_len)
    throw Napi::RangeError::New(env, std::string(fn) + ": " + name + " has " + std::to_string(a.ElementLength()) +
                                         " elements, expected " + shape + " = " + std::to_string(expect_len));
  return a;
}

double num_opt(Napi::Env env, Napi::Object o, const char* fn, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(fn) + ": options." + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

// Options from a JS object; range checks that do not need N/K are done here,
// the rest (N >= K, lambda > 0, ...) by the core with the same wording.
}  // namespace

Options parse_sinkhorn_options(Napi::Env env, Napi::Value v, const char* fn, int64_t k,
                               std::shared_ptr<std::vector<double>>& warm) {
  Options o;
  o.threads = cpu_backend().num_threads();
  if (v.IsEmpty() || v.IsUndefined() || v.IsNull()) return o;
  if (!v.IsObject()) throw Napi::TypeError::New(env, std::string(fn) + ": options must be an object");
  Napi::Object obj = v.As<Napi::Object>();
  o.lambda = num_opt(env, obj, fn, "lambda", o.lambda);
  if (!(o.lambda > 0) || !std::isfinite(o.lambda))
    throw Napi::RangeError::New(env, std::string(fn) + ": options.lambda must be a finite number > 0, got " +
                                         obj.Get("lambda").ToString().Utf8Value());
  o.tol = num_opt(env, obj, fn, "tol", o.tol);
  if (!(o.tol >= 0) || !std::isfinite(o.tol))
    throw Napi::RangeError::New(env, std::string(fn) + ": options.tol must be a finite number >= 0");
  double mi = num_opt(env, obj, fn, "maxIters", o.max_iters);
  if (!(mi >= 1) || std::floor(mi) != mi || mi > 2147483647.0)
    throw Napi::RangeError::New(env, std::string(fn) + ": options.maxIters must be an integer >= 1");
  o.max_iters = static_cast<int>(mi);
  double th = num_opt(env, obj, fn, "threads", o.threads);
  if (!(th >= 1) || std::floor(th) != th || th > 1024)
    throw Napi::RangeError::New(env, std::string(fn) + ": options.threads must be an integer in [1, 1024]");
  o.threads = static_cast<int>(th);
  double mb = num_opt(env, obj, fn, "memoryBudget", 0);
  if (!(mb >= 0) || !std::isfinite(mb))
    throw Napi::RangeError::New(env, std::string(fn) + ": options.memoryBudget must be a number of bytes >= 0");
  o.memory_budget = static_cast<uint64_t>(mb);
  Napi::Value dt = obj.Get("dtype");
  if (!dt.IsUndefined()) {
    if (!dt.IsString()) throw Napi::TypeError::New(env, std::string(fn) + ": options.dtype must be 'f64' or 'f32'");
    std::string s = dt.As<Napi::String>().Utf8Value();
    if (s == "f64") o.storage = Storage::F64;
    else if (s == "f32") o.storage = Storage::F32;
    else throw Napi::RangeError::New(env, std::string(fn) + ": options.dtype must be 'f64' or 'f32', got '" + s + "'");
  }
  Napi::Value sh = obj.Get("shard");  // a row-sharded solve over MPI (lib/distributed/sinkhorn.ts)
  if (!sh.IsUndefined() && !sh.IsNull()) o.shard = parse_shard(env, sh, fn);
  Napi::Value ws = obj.Get("warmStart");
  if (!ws.IsUndefined() && !ws.IsNull()) {
    if (!ws.IsTypedArray() || ws.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(env, std::string(fn) + ": options.warmStart must be a Float64Array of K log-scalings "
                                                        "(result.scaling.logR of a previous solve)");
    auto a = ws.As<Napi::Float64Array>();
    if (static_cast<int64_t>(a.ElementLength()) != k)
      throw Napi::RangeError::New(env, std::string(fn) + ": options.warmStart has " + std::to_string(a.ElementLength()) +
                                           " elements, expected K = " + std::to_string(k));
    warm = std::make_shared<std::vector<double>>(a.Data(), a.Data() + a.ElementLength());
    o.warm_log_r = warm->data();
  }
  return o;
}

Napi::Value sinkhorn_result_to_js(Napi::Env env, const Result& r) {
  Napi::Object o = Napi::Object::New(env);
  auto labels = Napi::Int32Array::New(env, r.labels.size());
  std::copy(r.labels.begin(), r.labels.end(), labels.Data());
  auto counts = Napi::Int32Array::New(env, r.counts.size());
  std::copy(r.counts.begin(), r.counts.end(), counts.Data());
  auto lr = Napi::Float64Array::New(env, r.log_r.size());
  std::copy(r.log_r.begin(), r.log_r.end(), lr.Data());
  auto lc = Napi::Float64Array::New(env, r.log_c.size());
  std::copy(r.log_c.begin(), r.log_c.end(), lc.Data());
  o.Set("labels", labels);
  o.Set("counts", counts);
  o.Set("iterations", Napi::Number::New(env, r.iterations));
  o.Set("error", Napi::Number::New(env, r.error));
  o.Set("cost", Napi::Number::New(env, r.cost));
  o.Set("converged", Napi::Boolean::New(env, r.converged));
  if (!r.warning.empty()) o.Set("warning", Napi::String::New(env, r.warning));
  Napi::Object sc = Napi::Object::New(env);
  sc.Set("logR", lr);
  sc.Set("logC", lc);
  o.Set("scaling", sc);
  o.Set("buildSeconds", Napi::Number::New(env, r.build_seconds));
  o.Set("solveSeconds", Napi::Number::New(env, r.solve_seconds));
  o.Set("medianIterSeconds", Napi::Number::New(env, r.median_iter_seconds));
  return o;
}

namespace {

Options parse_options(const Napi::CallbackInfo& info, size_t i, const char* fn, int64_t k,
                      std::shared_ptr<std::vector<double>>& warm) {
  return parse_sinkhorn_options(info.Env(), info.Length() > i ? info[i] : info.Env().Undefined(), fn, k, warm);
}

// (logits, n, k, options) -> Promise<result>: the arguments parsed and checked
// once here for every logits solver; `solve` runs on the worker thread.
using LogitsSolver = std::function<void(const float* z, int64_t n, int64_t k, const Options& o, Result& out)>;
Napi::Value logits_entry(const Napi::CallbackInfo& info, const char* fn, LogitsSolver solve) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    int64_t n = int_arg(info, 1, fn, "n", 0);
    int64_t k = int_arg(info, 2, fn, "k", 0);
    auto z = f32_arg(info, 0, fn, "logits", static_cast<uint64_t>(n) * static_cast<uint64_t>(k),
                     "n*k = " + std::to_string(n) + "*" + std::to_string(k));
    std::shared_ptr<std::vector<double>> warm;
    Options o = parse_options(info, 3, fn, k, warm);
    auto res = std::make_shared<Result>();
    const float* zp = z.Data();
    return PromiseWorker::Start(
        env, fn,
        [=] {
          (void)warm;  // keeps the warm-start copy alive
          solve(zp, n, k, o, *res);
        },
        [res](Napi::Env e) { return sinkhorn_result_to_js(e, *res); }, {z});
  });
}

Napi::Value SinkhornLogits(const Napi::CallbackInfo& info) {
  return logits_entry(info, "sinkhorn", [](const float* z, int64_t n, int64_t k, const Options& o, Result& r) {
    r = sinkhorn::solve_logits(z, n, k, o);
  });
}

// cudaSinkhorn(logits, n, k, options) -> Promise<result>: the same solve on the
// GPU through sln_cuda_sinkhorn (same contract as solve_logits): the host
// logits are uploaded into the CUDA backend's memory first (a model's label
// pass hands over its device-resident logits instead: Model.relabel).
// Options.threads is ignored there. options.shard { nTotal, exact: false }: this
// rank's rows of a row-sharded solve over NCCL (--distributed --device cuda).
Napi::Value CudaSinkhorn(const Napi::CallbackInfo& info) {
  const char* fn = "cudaSinkhorn";
  return guarded(info.Env(), [&]() -> Napi::Value {
    auto solve = cuda_lib_or_throw(fn).sinkhorn;   // before the arguments, as a missing library is the first error
    return logits_entry(info, fn, [solve](const float* z, int64_t n, int64_t k, const Options& o, Result& r) {
      Backend& be = cuda_backend();
      auto lk = lock_backend(be);
      const size_t bytes = static_cast<size_t>(n) * static_cast<size_t>(k) * sizeof(float);
      Buffer zd(be, std::max<size_t>(bytes, sizeof(float)));
      be.upload(zd.data(), z, bytes);
      char err[512] = {0};
      if (solve(&be, zd.f32(), n, k, &o, &r, err, sizeof err) != 0) SLN_FAIL(Internal, "SLN_CUDA", "cudaSinkhorn: " << err);
    });
  });
}
Napi::Value SinkhornTwoPass(const Napi::CallbackInfo& info) {
  return logits_entry(info, "sinkhornTwoPass", [](const float* z, int64_t n, int64_t k, const Options& o, Result& r) {
    if (o.shard) SLN_FAIL(Unsupported, "SLN_UNSUPPORTED", "sinkhornTwoPass: options.shard is not supported by the reference solver");
    r = sinkhorn::solve_two_pass_reference(z, n, k, o);
  });
}

// (features, n, d, weight, bias|null, k, options) -> Promise<result>
Napi::Value SinkhornFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "sinkhornFromFeatures";
  return guarded(env, [&]() -> Napi::Value {
    int64_t n = int_arg(info, 1, fn, "n", 0);
    int64_t d = int_arg(info, 2, fn, "d", 1);
    int64_t k = int_arg(info, 5, fn, "k", 0);
    auto f = f32_arg(info, 0, fn, "features", static_cast<uint64_t>(n) * static_cast<uint64_t>(d),
                     "n*d = " + std::to_string(n) + "*" + std::to_string(d));
    auto w = f32_arg(info, 3, fn, "weight", static_cast<uint64_t>(k) * static_cast<uint64_t>(d),
                     "k*d = " + std::to_string(k) + "*" + std::to_string(d));
    std::vector<Napi::Value> keep = {f, w};
    const float* bp = nullptr;
    if (info.Length() > 4 && !info[4].IsNull() && !info[4].IsUndefined()) {
      auto b = f32_arg(info, 4, fn, "bias", static_cast<uint64_t>(k), "k = " + std::to_string(k));
      bp = b.Data();
      keep.push_back(b);
    }
    std::shared_ptr<std::vector<double>> warm;
    Options o = parse_options(info, 6, fn, k, warm);
    auto res = std::make_shared<Result>();
    const float* fp = f.Data();
    const float* wp = w.Data();
    return PromiseWorker::Start(
        env, fn,
        [=] {
          (void)warm;
          *res = sinkhorn::solve_features(fp, n, d, wp, bp, k, o);
        },
        [res](Napi::Env e) { return sinkhorn_result_to_js(e, *res); }, keep);
  });
}

// (n, k, dtype) -> bytes one solve allocates
Napi::Value PlannedBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    int64_t n = int_arg(info, 0, "sinkhornPlannedBytes", "n", 0);
    int64_t k = int_arg(info, 1, "sinkhornPlannedBytes", "k", 0);
    std::string dt = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "f64";
    if (dt != "f64" && dt != "f32") throw Napi::RangeError::New(env, "sinkhornPlannedBytes: dtype must be 'f64' or 'f32'");
    return Napi::Number::New(env, static_cast<double>(sinkhorn::planned_bytes(n, k, dt == "f64" ? Storage::F64 : Storage::F32)));
  });
}

void init_sinkhorn(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaSinkhorn", Napi::Function::New(env, CudaSinkhorn, "cudaSinkhorn"));
  exports.Set("sinkhornLogits", Napi::Function::New(env, SinkhornLogits, "sinkhornLogits"));
  exports.Set("sinkhornFeatures", Napi::Function::New(env, SinkhornFeatures, "sinkhornFeatures"));
  exports.Set("sinkhornTwoPass", Napi::Function::New(env, SinkhornTwoPass, "sinkhornTwoPass"));
  exports.Set("sinkhornPlannedBytes", Napi::Function::New(env, PlannedBytes, "sinkhornPlannedBytes"));
}

}  // namespace

SLN_ADDON_INIT(init_sinkhorn);

}  // namespace sln::addon
