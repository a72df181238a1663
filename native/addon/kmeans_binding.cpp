// k-means (core/kmeans.h) as a Promise:
//   kmeans(data: Float32Array (n*d), n, d, k, opts {restarts, maxIter, tol, seed})
//     -> { labels: Int32Array (n), centroids: Float32Array (k*d), inertia, iterations, restart, inertias: number[] }
// Types and sizes are checked here (TypeError / RangeError); data is read in
// place (kept alive while the work runs): do not write to it until it settles.
#include <cmath>
#include <memory>
#include <string>

#include "addon/common.h"
#include "core/kmeans.h"
#include "sln/ops.h"

namespace sln::addon {

namespace {

int64_t count_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(env, std::string("kmeans: ") + name + " must be an integer >= " + std::to_string(lo));
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || std::floor(v) != v || v < static_cast<double>(lo) || v > 2147483647.0)
    throw Napi::RangeError::New(env, std::string("kmeans: ") + name + " must be an integer >= " + std::to_string(lo) + ", got " +
                                         info[i].ToString().Utf8Value());
  return static_cast<int64_t>(v);
}

double opt_number(Napi::Object o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    throw Napi::TypeError::New(o.Env(), std::string("kmeans: options.") + key + " must be a finite number");
  return v.As<Napi::Number>().DoubleValue();
}

}  // namespace

static Napi::Value Kmeans(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(env, "kmeans: data must be a Float32Array");
    const int64_t n = count_arg(info, 1, "n", 1);
    const int64_t d = count_arg(info, 2, "d", 1);
    const int64_t k = count_arg(info, 3, "k", 1);
    auto data = info[0].As<Napi::Float32Array>();
    if (static_cast<int64_t>(data.ElementLength()) != n * d)
      throw Napi::RangeError::New(env, "kmeans: data has " + std::to_string(data.ElementLength()) + " elements, expected n x d = " +
                                           std::to_string(n) + " x " + std::to_string(d));
    if (k > n)
      throw Napi::RangeError::New(env, "kmeans: k = " + std::to_string(k) + " is larger than the number of rows n = " + std::to_string(n));
    kmeans::Options o;
    if (info.Length() > 4 && !info[4].IsUndefined()) {
      if (!info[4].IsObject()) throw Napi::TypeError::New(env, "kmeans: options must be an object");
      Napi::Object op = info[4].As<Napi::Object>();
      const double restarts = opt_number(op, "restarts", 3), max_iter = opt_number(op, "maxIter", 300);
      const double tol = opt_number(op, "tol", 1e-4), seed = opt_number(op, "seed", 0);
      if (!(restarts >= 1 && std::floor(restarts) == restarts && restarts <= 1e6))
        throw Napi::RangeError::New(env, "kmeans: options.restarts must be an integer >= 1");
      if (!(max_iter >= 1 && std::floor(max_iter) == max_iter && max_iter <= 1e9))
        throw Napi::RangeError::New(env, "kmeans: options.maxIter must be an integer >= 1");
      if (!(tol >= 0)) throw Napi::RangeError::New(env, "kmeans: options.tol must be >= 0");
      if (!(seed >= 0 && std::floor(seed) == seed && seed <= 9007199254740991.0))
        throw Napi::RangeError::New(env, "kmeans: options.seed must be a non-negative integer");
      o.restarts = static_cast<int64_t>(restarts);
      o.max_iter = static_cast<int64_t>(max_iter);
      o.tol = tol;
      o.seed = static_cast<uint64_t>(seed);
    }
    o.threads = cpu_backend().num_threads();
    const float* x = data.Data();
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

static void init_kmeans(Napi::Env env, Napi::Object exports) { exports.Set("kmeans", Napi::Function::New(env, Kmeans, "kmeans")); }
SLN_ADDON_INIT(init_kmeans);

}  // namespace sln::addon
