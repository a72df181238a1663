// Module entry: each concern registers its own exports (see common.h).
#include <napi.h>

#include "addon/common.h"

namespace sln::addon {

std::vector<InitFn>& init_functions() {
  static std::vector<InitFn> fns;
  return fns;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (InitFn fn : init_functions()) fn(env, exports);
  return exports;
}

}  // namespace sln::addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return sln::addon::Init(env, exports);
}

NODE_API_MODULE(selflabel_native, InitModule)
