// Module entry: each concern registers its own exports (see common.h).
#include <napi.h>

#include "addon/common.h"

namespace sln::addon {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  init_info(env, exports);
  init_harness(env, exports);
  return exports;
}

}  // namespace sln::addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return sln::addon::Init(env, exports);
}

NODE_API_MODULE(selflabel_native, InitModule)
