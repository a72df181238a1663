// Reading the bindings' integer arguments: one set of helpers and one wording for
// every binding (each binding file had its own copy: int_arg, int_at, count_arg,
// int_field, int_of). `what` names the value as the caller wrote it:
// "sinkhornLogits: n", "augmentBatch: desc.outHeight", "forwardTaps: taps[2].kernel".
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace sln::addon {

constexpr int64_t kInt32Max = 2147483647;

// "an integer >= 1", "an integer in [1, 1024]", "an integer" (no bound given).
inline std::string integer_in(int64_t lo, int64_t hi) {
  if (lo == -kInt32Max && hi == kInt32Max) return "an integer";
  if (hi == kInt32Max) return "an integer >= " + std::to_string(lo);
  return "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

// An integer in [lo, hi] (within +-(2^31 - 1)): a TypeError when v is not a number,
// a RangeError naming the value when it is not such an integer.
inline int64_t int_value(Napi::Env env, Napi::Value v, const std::string& what, int64_t lo = -kInt32Max,
                         int64_t hi = kInt32Max) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, what + " must be a number (" + integer_in(lo, hi) + ")");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(lo) || d > static_cast<double>(hi))
    throw Napi::RangeError::New(env, what + " must be " + integer_in(lo, hi) + ", got " + v.ToString().Utf8Value());
  return static_cast<int64_t>(d);
}

// The i-th positional argument of fn.
inline int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, int64_t lo,
                       int64_t hi = kInt32Max) {
  Napi::Env env = info.Env();
  return int_value(env, i < info.Length() ? info[i] : env.Undefined(), std::string(fn) + ": " + name, lo, hi);
}

// Field `key` of object o; `where` is how messages name o ("augmentBatch: desc").
inline int64_t int_field(Napi::Object o, const char* key, const std::string& where, int64_t lo = -kInt32Max,
                         int64_t hi = kInt32Max) {
  return int_value(o.Env(), o.Get(key), where + "." + key, lo, hi);
}

// The same, or dflt when the field is absent (undefined).
inline int64_t int_field_or(Napi::Object o, const char* key, const std::string& where, int64_t dflt,
                            int64_t lo = -kInt32Max, int64_t hi = kInt32Max) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? dflt : int_value(o.Env(), v, where + "." + key, lo, hi);
}

}  // namespace sln::addon
