// A backend of this addon lent to the test-only addon (native/harness, built
// by scripts/build-test-addon.js) loaded into the same process: the addon's
// backendHandle("cpu" | "cuda") (addon/backend_handle.cpp) returns one of these
// in a type-tagged JS External, and the harness runs its op cases on it. Both
// addons are compiled from the same sln/ops.h, so the Backend's virtual calls
// agree. Handles live as long as the process (the backends are never destroyed).
#pragma once
#include <napi.h>

#include <mutex>

#include "sln/ops.h"

namespace sln::addon {

struct BackendHandle {
  Backend* backend = nullptr;
  std::mutex* mutex = nullptr;   // held around every call (lock_backend's); null for host memory
};

// The External's type tag: a value that is not such a handle is refused.
inline const napi_type_tag* backend_handle_tag() {
  static const napi_type_tag tag = {0x736c6e5f62656b64ULL, 0x68616e646c653031ULL};
  return &tag;
}

}  // namespace sln::addon
