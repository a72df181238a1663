// Errors: native code never exits or aborts. Everything that can fail throws
// sln::Error with a stable code (shown to JS as err.code) and a message that
// carries the failing call and the shapes, so a report is a repro.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace sln {

enum class ErrorKind { Internal, InvalidArgument, Range, OutOfMemory, Library, Unsupported };

// Default visibility: libselflabel_cuda.so throws it across the dlopen boundary
// and the addon catches it by type.
class __attribute__((visibility("default"))) Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& code, const std::string& msg)
      : std::runtime_error(msg), kind_(kind), code_(code) {}
  ErrorKind kind() const { return kind_; }
  const std::string& code() const { return code_; }

 private:
  ErrorKind kind_;
  std::string code_;
};

// Build a message from stream pieces: SLN_FAIL(kind, "SLN_X", "conv2d: " << n).
#define SLN_FAIL(kind, code, stream_expr)                         \
  do {                                                             \
    std::ostringstream sln_os_;                                    \
    sln_os_ << stream_expr;                                        \
    throw ::sln::Error(::sln::ErrorKind::kind, code, sln_os_.str()); \
  } while (0)

#define SLN_CHECK_ARG(cond, stream_expr)                                  \
  do {                                                                     \
    if (!(cond)) SLN_FAIL(InvalidArgument, "SLN_INVALID_ARGUMENT", stream_expr); \
  } while (0)

}  // namespace sln
