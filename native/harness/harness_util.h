// Small helpers shared by the harness_<op>.cpp cases.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "sln/errors.h"
#include "harness/harness.h"

namespace sln {

// The named input, checked to hold exactly n values.
inline const std::vector<double>& input_n(const Tensors& t, const char* op, const char* name, size_t n) {
  const auto& v = input(t, name);
  SLN_CHECK_ARG(v.size() == n, op << ": input '" << name << "' has " << v.size() << " values, expected " << n);
  return v;
}

// Class labels given as float64 integers -> int32, each checked to lie in [0, K).
inline std::vector<int32_t> to_labels(const std::vector<double>& v, int K, const char* op) {
  std::vector<int32_t> out(v.size());
  for (size_t i = 0; i < v.size(); i++) {
    SLN_CHECK_ARG(v[i] == std::floor(v[i]) && v[i] >= 0 && v[i] < K,
                  op << ": label[" << i << "] = " << v[i] << " is not an integer in [0, " << K << ")");
    out[i] = static_cast<int32_t>(v[i]);
  }
  return out;
}

}  // namespace sln
