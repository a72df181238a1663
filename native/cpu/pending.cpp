// TEMPORARY scaffolding while the op files land; each op file replaces its line.
#include "cpu/cpu.h"
namespace sln::cpu {
#define SLN_PENDING(what) SLN_FAIL(Unsupported, "SLN_UNSUPPORTED", what " is not implemented yet")
std::unique_ptr<BatchNormOp> make_batchnorm(const BatchNormDesc&) { SLN_PENDING("batchnorm"); }
std::unique_ptr<ReluOp> make_relu(const EltwiseDesc&) { SLN_PENDING("relu"); }
std::unique_ptr<Pool2dOp> make_maxpool2d(const Pool2dDesc&) { SLN_PENDING("maxpool2d"); }
std::unique_ptr<Pool2dOp> make_avgpool2d(const Pool2dDesc&) { SLN_PENDING("avgpool2d"); }
std::unique_ptr<DropoutOp> make_dropout(const DropoutDesc&) { SLN_PENDING("dropout"); }
double cross_entropy(const float*, const int32_t*, int, int, float*, float) { SLN_PENDING("cross_entropy"); }
void sgd_step(float*, const float*, float*, size_t, float, float, float, bool) { SLN_PENDING("sgd_step"); }
}  // namespace sln::cpu
