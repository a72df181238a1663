// NativeModel: the JS handle of an sln::Model. Validation happens on the JS
// thread (TypeError / RangeError saying what was expected); the arithmetic
// runs in PromiseWorkers holding a shared_ptr, so dispose() while a step runs
// is safe, and the model's mutex serialises calls that overlap. The methods
// live in one file per concern:
//   addon/model_binding.cpp         construction, training steps, forward, taps
//   addon/model_state_binding.cpp   tensors(), exportState(), importState()
//   addon/model_labels_binding.cpp  setLabels(), labels(), collect(), relabel()
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "addon/common.h"
#include "sln/model.h"

namespace sln::addon {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit ModelWrap(const Napi::CallbackInfo& info);

 private:
  std::shared_ptr<Model> live(Napi::Env env);
  // images: Float32Array with N * C * H * W values; returns N
  int batch_of(Napi::Env env, Napi::Value v, const char* what);
  // The batch's labels: one Int32Array of N per head (copied), or null when
  // `v` is an Int32Array of N dataset indices (then `indices` holds them and
  // the model gathers the labels from its label state).
  struct StepArgs {
    std::shared_ptr<std::vector<std::vector<int32_t>>> labels;
    std::shared_ptr<std::vector<int32_t>> indices;
    StepOptions opt;
  };
  StepArgs step_args(Napi::Env env, const std::shared_ptr<Model>& m, int N, Napi::Value labels_v, Napi::Value opts_v,
                     const char* usage);
  // The step by labels or by indices, whichever the arguments hold.
  static StepResult run_step(const StepArgs& a,
                             const std::function<StepResult(const std::vector<const int32_t*>&)>& by_labels,
                             const std::function<StepResult(const int32_t*)>& by_indices);
  static Napi::Value step_result(Napi::Env env, const StepResult& res);

  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  Napi::Value TrainStepAugment(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value TrunkLayers(const Napi::CallbackInfo& info);
  Napi::Value ForwardTaps(const Napi::CallbackInfo& info);
  // model_state_binding.cpp
  Napi::Value Tensors(const Napi::CallbackInfo& info);
  Napi::Value ExportState(const Napi::CallbackInfo& info);
  Napi::Value ImportState(const Napi::CallbackInfo& info);
  // model_labels_binding.cpp
  Napi::Value SetLabels(const Napi::CallbackInfo& info);
  Napi::Value Labels(const Napi::CallbackInfo& info);
  Napi::Value Collect(const Napi::CallbackInfo& info);
  Napi::Value SetLabelRows(const Napi::CallbackInfo& info);
  Napi::Value Relabel(const Napi::CallbackInfo& info);
  Napi::Value FusedTrunk(const Napi::CallbackInfo& info);

  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value FeatureDim(const Napi::CallbackInfo& info);
  Napi::Value GetStep(const Napi::CallbackInfo& info);
  void SetStep(const Napi::CallbackInfo& info, const Napi::Value& v);
  Napi::Value SmallInput(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);

  std::shared_ptr<Model> model_;
};

}  // namespace sln::addon
