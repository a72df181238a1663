// Sinkhorn options and results between JS and C++ (addon/sinkhorn_binding.cpp),
// shared by the solver bindings and the model's relabel().
#pragma once
#include <memory>
#include <vector>

#include "addon/common.h"
#include "core/sinkhorn.h"

namespace sln::addon {

// SinkhornOptions (lib/sinkhorn.ts) from a JS object or undefined; range checks
// that need no N are done here (TypeError / RangeError naming fn and the key).
// A warm start is copied into `warm`, which must outlive the returned Options.
sinkhorn::Options parse_sinkhorn_options(Napi::Env env, Napi::Value v, const char* fn, int64_t k,
                                         std::shared_ptr<std::vector<double>>& warm);

// A SinkhornResult (lib/sinkhorn.ts) object.
Napi::Value sinkhorn_result_to_js(Napi::Env env, const sinkhorn::Result& r);

}  // namespace sln::addon
