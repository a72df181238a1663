// Descriptor validation shared by the backends and the harness: a bad shape
// becomes sln::Error(InvalidArgument) whose message is a repro, never a crash
// or a zero-sized primitive.
#pragma once
#include <ostream>
#include <sstream>
#include <string>

#include "sln/errors.h"
#include "sln/ops.h"

namespace sln {

inline std::ostream& operator<<(std::ostream& os, const Conv2dDesc& d) {
  return os << "{N:" << d.N << ", C:" << d.C << ", H:" << d.H << ", W:" << d.W << ", K:" << d.K
            << ", R:" << d.R << ", S:" << d.S << ", stride:" << d.stride << ", pad:" << d.pad
            << ", bias:" << (d.bias ? "true" : "false") << (d.bf16 ? ", bf16" : "") << "}";
}

inline std::ostream& operator<<(std::ostream& os, const LinearDesc& d) {
  return os << "{N:" << d.N << ", in:" << d.in << ", out:" << d.out
            << ", bias:" << (d.bias ? "true" : "false") << "}";
}

inline void check_conv2d(const Conv2dDesc& d) {
  SLN_CHECK_ARG(d.N >= 1 && d.C >= 1 && d.H >= 1 && d.W >= 1 && d.K >= 1 && d.R >= 1 && d.S >= 1,
                "conv2d: every size must be >= 1, got " << d);
  SLN_CHECK_ARG(d.stride >= 1 && d.pad >= 0, "conv2d: need stride >= 1 and pad >= 0, got " << d);
  SLN_CHECK_ARG(d.H + 2 * d.pad >= d.R && d.W + 2 * d.pad >= d.S,
                "conv2d: empty output: padded input " << d.H + 2 * d.pad << "x" << d.W + 2 * d.pad
                    << " (H+2*pad x W+2*pad) is smaller than the kernel " << d.R << "x" << d.S
                    << " in " << d);
}

inline void check_linear(const LinearDesc& d) {
  SLN_CHECK_ARG(d.N >= 1 && d.in >= 1 && d.out >= 1, "linear: every size must be >= 1, got " << d);
}

inline std::string pool_shape(const char* op, const Pool2dDesc& d) {
  std::ostringstream os;
  os << op << " (N,C,H,W) = (" << d.N << "," << d.C << "," << d.H << "," << d.W << "), kernel "
     << d.KH() << "x" << d.KW() << ", stride " << d.stride << ", pad " << d.pad;
  return os.str();
}

inline void check_pool(const char* op, const Pool2dDesc& d) {
  SLN_CHECK_ARG(d.N >= 1 && d.C >= 1 && d.H >= 1 && d.W >= 1, pool_shape(op, d) << ": every size must be >= 1");
  SLN_CHECK_ARG(d.KH() >= 1 && d.KW() >= 1 && d.stride >= 1 && d.pad >= 0,
                pool_shape(op, d) << ": kernel and stride must be >= 1, pad >= 0");
  SLN_CHECK_ARG(2 * d.pad <= d.KH() && 2 * d.pad <= d.KW(),
                pool_shape(op, d) << ": pad must be at most half the kernel (as torch)");
  SLN_CHECK_ARG(d.H + 2 * d.pad >= d.KH() && d.W + 2 * d.pad >= d.KW(),
                pool_shape(op, d) << ": kernel larger than the padded input, output would be empty");
}

}  // namespace sln
