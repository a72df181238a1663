// Shared addon helpers: the only place besides addon/*.cpp (and the test addon,
// harness/addon.cpp) that includes napi.h.
// - guarded / make_error: sln::Error / std::exception -> JS Error with .code
// - PromiseWorker: run a C++ callable on the libuv pool, settle a Promise
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sln/errors.h"

namespace sln::addon {

inline Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& msg,
                              ErrorKind kind) {
  Napi::Error e;
  if (kind == ErrorKind::InvalidArgument) {
    e = Napi::TypeError::New(env, msg);
  } else if (kind == ErrorKind::Range) {
    e = Napi::RangeError::New(env, msg);
  } else {
    e = Napi::Error::New(env, msg);
  }
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// Run f(); convert native exceptions to JS exceptions (thrown).
template <typename F>
auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const sln::Error& e) {
    throw make_error(env, e.code(), e.what(), e.kind());
  } catch (const std::bad_alloc&) {
    throw make_error(env, "SLN_OUT_OF_MEMORY", "out of memory", ErrorKind::OutOfMemory);
  } catch (const std::exception& e) {
    throw make_error(env, "SLN_INTERNAL", e.what(), ErrorKind::Internal);
  }
}

// A Promise-returning AsyncWorker. `work` runs off the JS thread and must not
// touch napi values; `done` runs on the JS thread and builds the result. Keep
// the inputs alive by capturing Napi::Reference / ObjectReference in `keep`.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;

  static Napi::Promise Start(Napi::Env env, const char* name, Work work, Done done,
                             std::vector<Napi::Value> keep = {}) {
    auto* w = new PromiseWorker(env, name, std::move(work), std::move(done));
    for (auto& v : keep) {
      if (v.IsObject()) w->refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    }
    auto promise = w->deferred_.Promise();
    w->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    try {
      work_();
    } catch (const sln::Error& e) {
      code_ = e.code();
      kind_ = e.kind();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "SLN_OUT_OF_MEMORY";
      kind_ = ErrorKind::OutOfMemory;
      SetError("out of memory");
    } catch (const std::exception& e) {
      code_ = "SLN_INTERNAL";
      kind_ = ErrorKind::Internal;
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(guarded(env, [&] { return done_(env); }));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    deferred_.Reject(make_error(Env(), code_, e.Message(), kind_).Value());
  }

 private:
  PromiseWorker(Napi::Env env, const char* name, Work work, Done done)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), done_(std::move(done)) {}
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  std::vector<Napi::ObjectReference> refs_;
  std::string code_ = "SLN_INTERNAL";
  ErrorKind kind_ = ErrorKind::Internal;
};

// Each concern (addon/<concern>.cpp) registers its exports with
// SLN_ADDON_INIT(fn); addon.cpp calls them all at module load.
using InitFn = void (*)(Napi::Env env, Napi::Object exports);
std::vector<InitFn>& init_functions();
struct InitRegistrar {
  explicit InitRegistrar(InitFn fn) { init_functions().push_back(fn); }
};
#define SLN_ADDON_INIT(fn) static ::sln::addon::InitRegistrar sln_addon_init_##fn(fn)

}  // namespace sln::addon
