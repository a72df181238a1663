// NativeModel's tensors: names and shapes, and the parameters, buffers and
// momentum exported to / imported from JS (state dicts, checkpoints).
#include <cmath>
#include <cstring>

#include "addon/cuda_loader.h"
#include "addon/model_wrap.h"

namespace sln::addon {

// tensors(): [{ name, shape, kind: "param" | "buffer" }]
Napi::Value ModelWrap::Tensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    const auto& es = m->arena().entries();
    Napi::Array a = Napi::Array::New(env, es.size());
    for (size_t i = 0; i < es.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", es[i].name);
      Napi::Array sh = Napi::Array::New(env, es[i].shape.size());
      for (size_t j = 0; j < es[i].shape.size(); j++) sh.Set(j, es[i].shape[j]);
      o.Set("shape", sh);
      o.Set("kind", es[i].is_param ? "param" : "buffer");
      a.Set(i, o);
    }
    return a;
  });
}

// exportState(what: "model" | "momentum") -> Promise<{ name: Float32Array }>
// model: parameters and buffers; momentum: SGD momentum buffers of the
// parameters (empty object before the first step, as torch).
Napi::Value ModelWrap::ExportState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    std::string what = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "model";
    if (what != "model" && what != "momentum")
      throw Napi::TypeError::New(env, "exportState: what must be 'model' or 'momentum'");
    auto copy = std::make_shared<std::vector<std::pair<std::string, std::vector<float>>>>();
    return PromiseWorker::Start(
        env, "sln.exportState",
        [m, what, copy] {
          std::lock_guard<std::mutex> lk(m->mutex());
          auto dl = lock_backend(m->backend());
          Arena& a = m->arena();
          for (auto& e : a.entries()) {
            const bool mom = what == "momentum";
            if (mom && (!e.is_param || !a.has_momentum)) continue;
            std::vector<float> v(e.size);
            a.read(e, v.data(), mom);   // download (a memcpy on the CPU)
            copy->emplace_back(e.name, std::move(v));
          }
        },
        [copy](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          for (auto& [name, v] : *copy) {
            Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
            std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
            o.Set(name, a);
          }
          return o;
        });
  });
}

// importState(what, { name: Float32Array }): every entry must match a tensor
// of the right size; checked completely before anything is written, so a bad
// dict changes nothing. "model" requires every tensor; "momentum" every
// parameter (or an empty dict = no momentum yet).
Napi::Value ModelWrap::ImportState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto m = live(env);
    std::string what = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    if ((what != "model" && what != "momentum") || info.Length() < 2 || !info[1].IsObject())
      throw Napi::TypeError::New(env, "importState(what: 'model' | 'momentum', dict: { [name]: Float32Array })");
    Napi::Object d = info[1].As<Napi::Object>();
    Napi::Array keys = d.GetPropertyNames();
    Arena& a = m->arena();
    std::vector<std::string> missing, unexpected, wrong;
    auto vals = std::make_shared<std::vector<std::pair<const TensorEntry*, std::vector<float>>>>();
    for (uint32_t i = 0; i < keys.Length(); i++) {
      std::string k = keys.Get(i).As<Napi::String>();
      const TensorEntry* e = a.find(k);
      if (!e || (what == "momentum" && !e->is_param)) {
        unexpected.push_back(k);
        continue;
      }
      Napi::Value v = d.Get(k);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        wrong.push_back(k + " (not a Float32Array)");
        continue;
      }
      Napi::Float32Array f = v.As<Napi::Float32Array>();
      if (f.ElementLength() != e->size) {
        wrong.push_back(k + " (" + std::to_string(f.ElementLength()) + " values, expected " + std::to_string(e->size) + ")");
        continue;
      }
      for (size_t j = 0; j < f.ElementLength(); j++) {
        if (!std::isfinite(f[j])) {
          wrong.push_back(k + " (non-finite value at " + std::to_string(j) + ")");
          break;
        }
      }
      vals->emplace_back(e, std::vector<float>(f.Data(), f.Data() + f.ElementLength()));
    }
    bool empty_momentum = what == "momentum" && keys.Length() == 0;
    if (!empty_momentum) {
      for (auto& e : a.entries()) {
        if (what == "momentum" && !e.is_param) continue;
        if (!d.Has(e.name)) missing.push_back(e.name);
      }
    }
    if (!missing.empty() || !unexpected.empty() || !wrong.empty()) {
      auto join = [](const std::vector<std::string>& v) {
        std::string s;
        for (size_t i = 0; i < v.size() && i < 8; i++) s += (i ? ", " : "") + v[i];
        if (v.size() > 8) s += ", ... (" + std::to_string(v.size()) + " in all)";
        return s;
      };
      std::string msg = "loadStateDict: the dict does not match this model (nothing was changed).";
      if (!missing.empty()) msg += " Missing: " + join(missing) + ".";
      if (!unexpected.empty()) msg += " Unexpected: " + join(unexpected) + ".";
      if (!wrong.empty()) msg += " Wrong: " + join(wrong) + ".";
      throw make_error(env, "SLN_STATE_MISMATCH", msg, ErrorKind::InvalidArgument);
    }
    return PromiseWorker::Start(
        env, "sln.importState",
        [m, what, vals, empty_momentum] {
          std::lock_guard<std::mutex> lk(m->mutex());
          auto dl = lock_backend(m->backend());
          Arena& a = m->arena();
          if (what == "momentum") {
            a.has_momentum = !empty_momentum;
            a.zero_momentum();
            for (auto& [e, v] : *vals) a.write(*e, v.data(), true);
          } else {
            for (auto& [e, v] : *vals) a.write(*e, v.data());
          }
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
}

}  // namespace sln::addon
