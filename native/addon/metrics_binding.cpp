// Clustering metrics for JS. Every function validates its arguments on the JS
// thread (TypeError for wrong types, RangeError for wrong sizes), copies the
// inputs, and computes on the libuv pool, returning a Promise:
//   metricsScores(a: Int32Array, b: Int32Array, which: number) -> {nmi, ami, ari, ...}
//     which: bit mask 1 = NMI, 2 = AMI, 4 = ARI
//   metricsClusterAccuracy(pred: Int32Array, truth: Int32Array) -> {...}
//   metricsExpectedMI(rowSums: Float64Array, colSums: Float64Array, method: "fast" | "naive") -> number
//   metricsLinearSumAssignment(cost: Float64Array, rows, cols, maximize: boolean) -> Int32Array
// Negative labels are reported (as a rejected RangeError) by the worker.
#include <array>
#include <cmath>
#include <memory>

#include "addon/common.h"
#include "core/metrics.h"
#include "sln/ops.h"

namespace sln::addon {

namespace {

std::vector<int32_t> int32_arg(const Napi::CallbackInfo& info, size_t k, const char* fn, const char* name) {
  Napi::Env env = info.Env();
  if (k >= info.Length() || !info[k].IsTypedArray() || info[k].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, std::string(fn) + ": " + name + " must be an Int32Array of labels");
  Napi::Int32Array a = info[k].As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

std::vector<double> float64_arg(const Napi::CallbackInfo& info, size_t k, const char* fn, const char* name) {
  Napi::Env env = info.Env();
  if (k >= info.Length() || !info[k].IsTypedArray() || info[k].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, std::string(fn) + ": " + name + " must be a Float64Array");
  Napi::Float64Array a = info[k].As<Napi::Float64Array>();
  return std::vector<double>(a.Data(), a.Data() + a.ElementLength());
}

void same_length(Napi::Env env, const char* fn, size_t na, size_t nb) {
  if (na != nb)
    throw Napi::RangeError::New(env, std::string(fn) + ": the two labelings must have the same length, got " +
                                         std::to_string(na) + " and " + std::to_string(nb));
}

Napi::Int32Array to_js(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

}  // namespace

static Napi::Value MetricsScores(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const char* fn = "metricsScores";
    auto a = std::make_shared<std::vector<int32_t>>(int32_arg(info, 0, fn, "a"));
    auto b = std::make_shared<std::vector<int32_t>>(int32_arg(info, 1, fn, "b"));
    same_length(env, fn, a->size(), b->size());
    if (info.Length() < 3 || !info[2].IsNumber()) throw Napi::TypeError::New(env, "metricsScores: which must be a number (bit mask 1|2|4)");
    const unsigned which = info[2].As<Napi::Number>().Uint32Value() & 7u;
    const int threads = cpu_backend().num_threads();
    auto out = std::make_shared<metrics::Scores>();
    auto shape = std::make_shared<std::array<int64_t, 3>>();
    return PromiseWorker::Start(
        env, "selflabel.metricsScores",
        [=] {
          metrics::Contingency c = metrics::contingency(a->data(), b->data(), a->size());
          *out = metrics::scores(c, which, threads);
          *shape = {c.n, c.rows, c.cols};
        },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          if (which & metrics::kNMI) o.Set("nmi", out->nmi);
          if (which & metrics::kAMI) o.Set("ami", out->ami);
          if (which & metrics::kARI) o.Set("ari", out->ari);
          if (which & (metrics::kNMI | metrics::kAMI)) {
            o.Set("mutualInfo", out->mi);
            o.Set("entropyA", out->h_a);
            o.Set("entropyB", out->h_b);
          }
          if (which & metrics::kAMI) o.Set("expectedMutualInfo", out->emi);
          o.Set("n", static_cast<double>((*shape)[0]));
          o.Set("labelsA", static_cast<double>((*shape)[1]));
          o.Set("labelsB", static_cast<double>((*shape)[2]));
          return o;
        });
  });
}

static Napi::Value MetricsClusterAccuracy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const char* fn = "clusterAccuracy";
    auto pred = std::make_shared<std::vector<int32_t>>(int32_arg(info, 0, fn, "pred"));
    auto truth = std::make_shared<std::vector<int32_t>>(int32_arg(info, 1, fn, "truth"));
    same_length(env, fn, pred->size(), truth->size());
    if (pred->empty()) throw Napi::RangeError::New(env, "clusterAccuracy: the labelings are empty; accuracy needs at least one sample");
    auto out = std::make_shared<metrics::Accuracy>();
    return PromiseWorker::Start(
        env, "selflabel.clusterAccuracy",
        [=] {
          metrics::Contingency c = metrics::contingency(pred->data(), truth->data(), pred->size(), "clusterAccuracy: pred", "clusterAccuracy: truth");
          *out = metrics::cluster_accuracy(c);
        },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          o.Set("n", static_cast<double>(out->n));
          o.Set("matchedCorrect", static_cast<double>(out->matched_correct));
          o.Set("majorityCorrect", static_cast<double>(out->majority_correct));
          o.Set("clusterValues", to_js(env, out->cluster_values));
          o.Set("classValues", to_js(env, out->class_values));
          o.Set("matchedClass", to_js(env, out->matched_class));
          o.Set("majorityClass", to_js(env, out->majority_class));
          return o;
        });
  });
}

static Napi::Value MetricsExpectedMI(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const char* fn = "expectedMutualInfo";
    std::vector<double> ra = float64_arg(info, 0, fn, "rowSums");
    std::vector<double> rb = float64_arg(info, 1, fn, "colSums");
    if (info.Length() < 3 || !info[2].IsString()) throw Napi::TypeError::New(env, "expectedMutualInfo: method must be 'fast' or 'naive'");
    const std::string method = info[2].As<Napi::String>();
    if (method != "fast" && method != "naive")
      throw Napi::RangeError::New(env, "expectedMutualInfo: method must be 'fast' or 'naive', got '" + method + "'");
    auto a = std::make_shared<std::vector<int64_t>>();
    auto b = std::make_shared<std::vector<int64_t>>();
    int64_t na = 0, nb = 0;
    for (int side = 0; side < 2; side++) {
      const std::vector<double>& src = side ? rb : ra;
      for (size_t k = 0; k < src.size(); k++) {
        const double v = src[k];
        if (!(v >= 1 && v <= 2147483647.0 && std::floor(v) == v))
          throw Napi::RangeError::New(env, std::string("expectedMutualInfo: ") + (side ? "colSums" : "rowSums") +
                                               " must hold integers in [1, 2^31), got " + std::to_string(v) +
                                               " at index " + std::to_string(k));
        (side ? b : a)->push_back(static_cast<int64_t>(v));
        (side ? nb : na) += static_cast<int64_t>(v);
      }
    }
    if (na != nb)
      throw Napi::RangeError::New(env, "expectedMutualInfo: rowSums and colSums must have the same total, got " +
                                           std::to_string(na) + " and " + std::to_string(nb));
    const bool naive = method == "naive";
    const int threads = cpu_backend().num_threads();
    auto out = std::make_shared<double>(0.0);
    return PromiseWorker::Start(
        env, "selflabel.expectedMutualInfo",
        [=] {
          *out = naive ? metrics::expected_mutual_info_naive(*a, *b, na)
                       : metrics::expected_mutual_info(*a, *b, na, threads);
        },
        [=](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *out); });
  });
}

static Napi::Value MetricsLinearSumAssignment(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const char* fn = "linearSumAssignment";
    auto cost = std::make_shared<std::vector<double>>(float64_arg(info, 0, fn, "cost"));
    if (info.Length() < 4 || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsBoolean())
      throw Napi::TypeError::New(env, "linearSumAssignment(cost: Float64Array, rows: number, cols: number, maximize: boolean)");
    const double rd = info[1].As<Napi::Number>().DoubleValue(), cd = info[2].As<Napi::Number>().DoubleValue();
    if (!(rd >= 0 && cd >= 0 && rd < 2147483648.0 && cd < 2147483648.0 && std::floor(rd) == rd && std::floor(cd) == cd))
      throw Napi::RangeError::New(env, "linearSumAssignment: rows and cols must be non-negative integers");
    const int32_t rows = static_cast<int32_t>(rd), cols = static_cast<int32_t>(cd);
    if (static_cast<double>(cost->size()) != rd * cd)
      throw Napi::RangeError::New(env, "linearSumAssignment: cost has " + std::to_string(cost->size()) +
                                           " entries, expected rows * cols = " + std::to_string(rows) + " * " +
                                           std::to_string(cols));
    const bool maximize = info[3].As<Napi::Boolean>().Value();
    auto out = std::make_shared<std::vector<int32_t>>();
    return PromiseWorker::Start(
        env, "selflabel.linearSumAssignment",
        [=] { *out = metrics::linear_sum_assignment(cost->data(), rows, cols, maximize); },
        [=](Napi::Env env) -> Napi::Value { return to_js(env, *out); });
  });
}

static void init_metrics(Napi::Env env, Napi::Object exports) {
  exports.Set("metricsScores", Napi::Function::New(env, MetricsScores, "metricsScores"));
  exports.Set("metricsClusterAccuracy", Napi::Function::New(env, MetricsClusterAccuracy, "metricsClusterAccuracy"));
  exports.Set("metricsExpectedMI", Napi::Function::New(env, MetricsExpectedMI, "metricsExpectedMI"));
  exports.Set("metricsLinearSumAssignment", Napi::Function::New(env, MetricsLinearSumAssignment, "metricsLinearSumAssignment"));
}

SLN_ADDON_INIT(init_metrics);

}  // namespace sln::addon
