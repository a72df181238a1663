// The batched augmentation's arguments as the addon takes them from JS
// (src: Uint8Array, desc: the NativeAugmentDesc of lib/binding.ts), checked
// and converted on the JS thread. Shared by augmentBatch / cudaAugmentBatch
// (addon/augment_binding.cpp) and the model's trainStepAugment
// (addon/model_binding.cpp), so every entry gives the same errors.
#pragma once
#include <memory>
#include <vector>

#include "addon/common.h"
#include "sln/augment.h"

namespace sln::addon {

struct AugmentJob {
  AugmentBatchDesc desc;
  std::vector<AugmentImage> images;   // pointers into src: keep src alive while the job runs
  std::vector<AugmentParams> params;
  // floats of the output: n * out_channels * out_h * out_w
  size_t out_floats() const {
    return static_cast<size_t>(desc.n) * desc.out_channels * static_cast<size_t>(desc.out_h) * desc.out_w;
  }
};

// Throws Napi::TypeError / RangeError (prefixed with `fn`) or sln::Error from
// validate_augment; returns a job whose images point into src.
std::shared_ptr<AugmentJob> parse_augment_job(Napi::Env env, Napi::Value src, Napi::Value desc, const char* fn);

}  // namespace sln::addon
