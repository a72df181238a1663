// TEMPORARY scaffolding while the op files land; each op file replaces its line.
#include "cpu/cpu.h"
namespace sln::cpu {
#define SLN_PENDING(what) SLN_FAIL(Unsupported, "SLN_UNSUPPORTED", what " is not implemented yet")
std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dDesc&) { SLN_PENDING("conv2d"); }
std::unique_ptr<LinearOp> make_linear(const LinearDesc&) { SLN_PENDING("linear"); }
}  // namespace sln::cpu
