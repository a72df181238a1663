// Clustering of float32 rows as Promises:
//   kmeans (core/kmeans.h): kmeans(data: Float32Array (n*d), n, d, k, opts {restarts, maxIter, tol, seed})
//     -> { labels: Int32Array (n), centroids: Float32Array (k*d), inertia, iterations, restart, inertias: number[] }
//   spectral (core/spectral.h): spectral(data, n, d, k, opts {neighbors, dims, restarts, seed})
//     -> { labels: Int32Array (n), eigenvalues: number[], within, edges, residual, products, dims }
// Types and sizes are checked here (TypeError / RangeError); data is read in
// place (kept alive while the work runs): do not write to it until it settles.
#include <cmath>
#include <memory>
#include <string>

#include "addon/args.h"
#include "addon/common.h"
#include "core/kmeans.h"
#include "core/spectral.h"
#include "sln/ops.h"

namespace sln::addon {

namespace {

double opt_number(Napi::Object o, const char* fn, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    throw Napi::TypeError::New(o.Env(), std::string(fn) + ": options." + key + " must be a finite number");
  return v.As<Napi::Number>().DoubleValue();
}

// An integer option in [lo, hi].
int64_t opt_count(Napi::Object o, const char* fn, const char* key, double dflt, double lo, double hi) {
  const double v = opt_number(o, fn, key, dflt);
  if (!(v >= lo && v <= hi && std::floor(v) == v))
    throw Napi::RangeError::New(o.Env(), std::string(fn) + ": options." + key + " must be an integer >= " +
                                             std::to_string(static_cast<int64_t>(lo)) + " (at most " + std::to_string(static_cast<int64_t>(hi)) +
                                             "), got " + o.Get(key).ToString().Utf8Value());
  return static_cast<int64_t>(v);
}

// data (Float32Array n*d), n, d, k as the first four arguments, checked.
struct Rows {
  const float* x;
  int64_t n, d, k;
};
Rows rows_args(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, std::string(fn) + ": data must be a Float32Array");
  const int64_t n = int_arg(info, 1, fn, "n", 1);
  const int64_t d = int_arg(info, 2, fn, "d", 1);
  const int64_t k = int_arg(info, 3, fn, "k", 1);
  auto data = info[0].As<Napi::Float32Array>();
  if (static_cast<int64_t>(data.ElementLength()) != n * d)
    throw Napi::RangeError::New(env, std::string(fn) + ": data has " + std::to_string(data.ElementLength()) +
                                         " elements, expected n x d = " + std::to_string(n) + " x " + std::to_string(d));
  if (k > n)
    throw Napi::RangeError::New(env, std::string(fn) + ": k = " + std::to_string(k) + " is larger than the number of rows n = " +
                                         std::to_string(n));
  return {data.Data(), n, d, k};
}

Napi::Object options_arg(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    if (!info[4].IsObject()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": options must be an object");
    return info[4].As<Napi::Object>();
  }
  return Napi::Object::New(info.Env());
}

}  // namespace

static Napi::Value Kmeans(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const Rows a = rows_args(info, "kmeans");
    const int64_t n = a.n, d = a.d, k = a.k;
    Napi::Object op = options_arg(info, "kmeans");
    kmeans::Options o;
    o.restarts = opt_count(op, "kmeans", "restarts", 3, 1, 1e6);
    o.max_iter = opt_count(op, "kmeans", "maxIter", 300, 1, 1e9);
    o.tol = opt_number(op, "kmeans", "tol", 1e-4);
    if (!(o.tol >= 0)) throw Napi::RangeError::New(env, "kmeans: options.tol must be >= 0");
    o.seed = static_cast<uint64_t>(opt_count(op, "kmeans", "seed", 0, 0, 9007199254740991.0));
    o.threads = cpu_backend().num_threads();
    const float* x = a.x;
    auto out = std::make_shared<kmeans::Result>();
    return PromiseWorker::Start(
        env, "selflabel.kmeans", [=] { *out = kmeans::run(x, n, d, k, o); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          auto l = Napi::Int32Array::New(env, out->labels.size());
          std::copy(out->labels.begin(), out->labels.end(), l.Data());
          auto c = Napi::Float32Array::New(env, out->centroids.size());
          std::copy(out->centroids.begin(), out->centroids.end(), c.Data());
          Napi::Array in = Napi::Array::New(env, out->inertias.size());
          for (size_t i = 0; i < out->inertias.size(); ++i) in.Set(static_cast<uint32_t>(i), out->inertias[i]);
          r.Set("labels", l);
          r.Set("centroids", c);
          r.Set("inertia", out->inertia);
          r.Set("iterations", static_cast<double>(out->iterations));
          r.Set("restart", static_cast<double>(out->restart));
          r.Set("inertias", in);
          return r;
        },
        {info[0]});
  });
}

static Napi::Value Spectral(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const Rows a = rows_args(info, "spectral");
    if (a.n < 2) throw Napi::RangeError::New(env, "spectral: needs at least 2 rows");
    Napi::Object op = options_arg(info, "spectral");
    spectral::Options o;
    o.neighbors = opt_count(op, "spectral", "neighbors", 10, 1, 1000);
    o.dims = opt_count(op, "spectral", "dims", 64, 0, 1e6);
    o.restarts = opt_count(op, "spectral", "restarts", 10, 1, 1e6);
    o.seed = static_cast<uint64_t>(opt_count(op, "spectral", "seed", 0, 0, 9007199254740991.0));
    o.threads = cpu_backend().num_threads();
    auto out = std::make_shared<spectral::Result>();
    return PromiseWorker::Start(
        env, "selflabel.spectral", [=] { *out = spectral::run(a.x, a.n, a.d, a.k, o); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          auto l = Napi::Int32Array::New(env, out->labels.size());
          std::copy(out->labels.begin(), out->labels.end(), l.Data());
          Napi::Array ev = Napi::Array::New(env, out->eigenvalues.size());
          for (size_t i = 0; i < out->eigenvalues.size(); ++i) ev.Set(static_cast<uint32_t>(i), out->eigenvalues[i]);
          r.Set("labels", l);
          r.Set("eigenvalues", ev);
          r.Set("within", out->within);
          r.Set("edges", static_cast<double>(out->edges));
          r.Set("residual", out->residual);
          r.Set("products", static_cast<double>(out->products));
          r.Set("dims", static_cast<double>(out->dims));
          return r;
        },
        {info[0]});
  });
}

static void init_kmeans(Napi::Env env, Napi::Object exports) {
  exports.Set("kmeans", Napi::Function::New(env, Kmeans, "kmeans"));
  exports.Set("spectral", Napi::Function::New(env, Spectral, "spectral"));
}
SLN_ADDON_INIT(init_kmeans);

}  // namespace sln::addon
