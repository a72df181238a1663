// kNN and linear probe on frozen features (core/knn.h) as Promises:
//   knnClassify(bank: Float32Array (N*D), bankLabels: Int32Array (N), queries: Float32Array (M*D),
//               d, numClasses, ks: number[], opts {temperature, queryBlock, bankBlock})
//     -> { k, indices: Int32Array (M*k), similarities: Float32Array (M*k), predictions: Int32Array[] (one per ks) }
//   linearProbe(x: Float32Array (N*D), y: Int32Array (N), xTest: Float32Array (M*D), d, numClasses,
//               order: Int32Array (epochs*N), opts {epochs, batch, lr, momentum, weightDecay})
//     -> { trainPredictions: Int32Array, testPredictions: Int32Array, epochLoss: number[] }
// Types and sizes are checked here (TypeError / RangeError); the inputs are copied
// before the work starts, so the caller may reuse its arrays at once.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "addon/args.h"
#include "addon/common.h"
#include "core/knn.h"
#include "sln/ops.h"

namespace sln::addon {

namespace {

template <typename T, napi_typedarray_type TYPE>
std::shared_ptr<std::vector<T>> array_at(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name,
                                         const char* type, int64_t rows, int64_t cols) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != TYPE)
    throw Napi::TypeError::New(env, std::string(fn) + ": " + name + " must be a " + type);
  auto a = info[i].As<Napi::TypedArrayOf<T>>();
  const size_t len = a.ElementLength();
  if (rows >= 0 && static_cast<int64_t>(len) != rows * cols)
    throw Napi::RangeError::New(env, std::string(fn) + ": " + name + " has " + std::to_string(len) + " elements, expected " +
                                         std::to_string(rows) + " x " + std::to_string(cols));
  return std::make_shared<std::vector<T>>(a.Data(), a.Data() + len);
}

double opt_num(Napi::Object o, const char* fn, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    throw Napi::TypeError::New(o.Env(), std::string(fn) + ": options." + key + " must be a finite number");
  return v.As<Napi::Number>().DoubleValue();
}

Napi::Object opts_at(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return Napi::Object::New(info.Env());
  if (!info[i].IsObject()) throw Napi::TypeError::New(info.Env(), "options must be an object");
  return info[i].As<Napi::Object>();
}

}  // namespace

static Napi::Value KnnClassify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const char* fn = "knnClassify";
    const int64_t d = int_arg(info, 3, fn, "d", 1);
    const int64_t C = int_arg(info, 4, fn, "numClasses", 1);
    if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "knnClassify: bank must be a Float32Array");
    const int64_t blen = info[0].As<Napi::TypedArray>().ElementLength();
    if (blen % d != 0 || blen == 0)
      throw Napi::RangeError::New(env, "knnClassify: bank has " + std::to_string(blen) + " elements, not a positive multiple of d = " + std::to_string(d));
    const int64_t n = blen / d;
    auto bank = array_at<float, napi_float32_array>(info, 0, fn, "bank", "Float32Array", n, d);
    auto labels = array_at<int32_t, napi_int32_array>(info, 1, fn, "bankLabels", "Int32Array", n, 1);
    if (!info[2].IsTypedArray()) throw Napi::TypeError::New(env, "knnClassify: queries must be a Float32Array");
    const int64_t qlen = info[2].As<Napi::TypedArray>().ElementLength();
    if (qlen % d != 0) throw Napi::RangeError::New(env, "knnClassify: queries has " + std::to_string(qlen) + " elements, not a multiple of d = " + std::to_string(d));
    const int64_t m = qlen / d;
    auto queries = array_at<float, napi_float32_array>(info, 2, fn, "queries", "Float32Array", m, d);
    if (info.Length() <= 5 || !info[5].IsArray()) throw Napi::TypeError::New(env, "knnClassify: ks must be an array of integers >= 1");
    auto ksa = info[5].As<Napi::Array>();
    std::vector<int64_t> ks;
    int64_t kmax = 0;
    for (uint32_t i = 0; i < ksa.Length(); ++i) {
      Napi::Value v = ksa.Get(i);
      const double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(x >= 1 && std::floor(x) == x && x <= 2147483647.0))
        throw Napi::RangeError::New(env, "knnClassify: ks must hold integers >= 1, got " + v.ToString().Utf8Value());
      ks.push_back(std::min<int64_t>(static_cast<int64_t>(x), n));  // k larger than the bank: all of it
      kmax = std::max(kmax, ks.back());
    }
    if (ks.empty()) throw Napi::RangeError::New(env, "knnClassify: ks is empty");
    Napi::Object o = opts_at(info, 6);
    const double temperature = opt_num(o, fn, "temperature", 0.1);
    const double qb = opt_num(o, fn, "queryBlock", 512), bb = opt_num(o, fn, "bankBlock", 1024);
    if (!(temperature > 0)) throw Napi::RangeError::New(env, "knnClassify: temperature must be > 0");
    if (!(qb >= 1 && bb >= 1 && std::floor(qb) == qb && std::floor(bb) == bb))
      throw Napi::RangeError::New(env, "knnClassify: queryBlock and bankBlock must be integers >= 1");
    const int threads = cpu_backend().num_threads();
    auto top = std::make_shared<knn::TopK>();
    auto preds = std::make_shared<std::vector<int32_t>>();
    return PromiseWorker::Start(
        env, "selflabel.knnClassify",
        [=] {
          *top = knn::topk(bank->data(), n, queries->data(), m, d, kmax, static_cast<int64_t>(qb), static_cast<int64_t>(bb), threads);
          *preds = knn::vote(*top, m, labels->data(), C, ks, temperature);
        },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("k", static_cast<double>(top->k));
          auto idx = Napi::Int32Array::New(env, top->idx.size());
          std::copy(top->idx.begin(), top->idx.end(), idx.Data());
          auto sim = Napi::Float32Array::New(env, top->sim.size());
          std::copy(top->sim.begin(), top->sim.end(), sim.Data());
          r.Set("indices", idx);
          r.Set("similarities", sim);
          Napi::Array p = Napi::Array::New(env, ks.size());
          for (size_t a = 0; a < ks.size(); ++a) {
            auto row = Napi::Int32Array::New(env, m);
            std::copy(preds->begin() + a * m, preds->begin() + (a + 1) * m, row.Data());
            p.Set(static_cast<uint32_t>(a), row);
          }
          r.Set("predictions", p);
          return r;
        });
  });
}

static Napi::Value LinearProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const char* fn = "linearProbe";
    const int64_t d = int_arg(info, 3, fn, "d", 1);
    const int64_t C = int_arg(info, 4, fn, "numClasses", 2);
    if (!info[0].IsTypedArray() || !info[2].IsTypedArray())
      throw Napi::TypeError::New(env, "linearProbe: x and xTest must be Float32Arrays");
    const int64_t xlen = info[0].As<Napi::TypedArray>().ElementLength(), tlen = info[2].As<Napi::TypedArray>().ElementLength();
    if (xlen == 0 || xlen % d != 0 || tlen % d != 0)
      throw Napi::RangeError::New(env, "linearProbe: x (" + std::to_string(xlen) + ") and xTest (" + std::to_string(tlen) +
                                           ") must hold whole rows of d = " + std::to_string(d) + " (x at least one)");
    const int64_t n = xlen / d, m = tlen / d;
    // x and xTest can be large (N x ~9600 conv-probe features): read in place, kept alive below
    if (info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
        info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(env, "linearProbe: x and xTest must be Float32Arrays");
    const float* x = info[0].As<Napi::Float32Array>().Data();
    auto y = array_at<int32_t, napi_int32_array>(info, 1, fn, "y", "Int32Array", n, 1);
    const float* xt = info[2].As<Napi::Float32Array>().Data();
    Napi::Object o = opts_at(info, 6);
    knn::ProbeOptions po;
    po.epochs = static_cast<int64_t>(opt_num(o, fn, "epochs", 10));
    po.batch = static_cast<int64_t>(opt_num(o, fn, "batch", 256));
    po.lr = opt_num(o, fn, "lr", 0.1);
    po.momentum = opt_num(o, fn, "momentum", 0.9);
    po.weight_decay = opt_num(o, fn, "weightDecay", 1e-4);
    po.spatial = static_cast<int64_t>(opt_num(o, fn, "spatial", 1));
    po.gamma = opt_num(o, fn, "gamma", 0.1);
    Napi::Value ms = o.Get("milestones");
    if (!ms.IsUndefined()) {
      if (!ms.IsArray()) throw Napi::TypeError::New(env, "linearProbe: options.milestones must be an array of epochs");
      Napi::Array ma = ms.As<Napi::Array>();
      for (uint32_t i = 0; i < ma.Length(); ++i) {
        const double q = ma.Get(i).IsNumber() ? ma.Get(i).As<Napi::Number>().DoubleValue() : -1;
        if (!(q >= 1 && std::floor(q) == q)) throw Napi::RangeError::New(env, "linearProbe: milestones must hold integer epochs >= 1");
        po.milestones.push_back(static_cast<int64_t>(q));
      }
    }
    if (po.epochs < 1 || po.batch < 1) throw Napi::RangeError::New(env, "linearProbe: epochs and batch must be >= 1");
    if (po.spatial < 1 || d % po.spatial != 0)
      throw Napi::RangeError::New(env, "linearProbe: options.spatial must be an integer >= 1 dividing d = " + std::to_string(d));
    if (!(po.gamma > 0)) throw Napi::RangeError::New(env, "linearProbe: options.gamma must be > 0");
    auto order = array_at<int32_t, napi_int32_array>(info, 5, fn, "order", "Int32Array", po.epochs, n);
    auto out = std::make_shared<knn::ProbeResult>();
    return PromiseWorker::Start(
        env, "selflabel.linearProbe",
        [=] { *out = knn::linear_probe(x, y->data(), n, xt, m, d, C, order->data(), po); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          auto tp = Napi::Int32Array::New(env, out->train_pred.size());
          std::copy(out->train_pred.begin(), out->train_pred.end(), tp.Data());
          auto vp = Napi::Int32Array::New(env, out->test_pred.size());
          std::copy(out->test_pred.begin(), out->test_pred.end(), vp.Data());
          Napi::Array l = Napi::Array::New(env, out->epoch_loss.size());
          for (size_t i = 0; i < out->epoch_loss.size(); ++i) l.Set(static_cast<uint32_t>(i), out->epoch_loss[i]);
          r.Set("trainPredictions", tp);
          r.Set("testPredictions", vp);
          r.Set("epochLoss", l);
          return r;
        },
        {info[0], info[2]});
  });
}

static void init_knn(Napi::Env env, Napi::Object exports) {
  exports.Set("knnClassify", Napi::Function::New(env, KnnClassify, "knnClassify"));
  exports.Set("linearProbe", Napi::Function::New(env, LinearProbe, "linearProbe"));
}
SLN_ADDON_INIT(init_knn);

}  // namespace sln::addon
