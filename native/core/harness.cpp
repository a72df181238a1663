#include "sln/harness.h"

#include "sln/errors.h"

namespace sln {

static std::map<std::string, HarnessFn>& registry() {
  static std::map<std::string, HarnessFn> r;
  return r;
}

HarnessRegistrar::HarnessRegistrar(const char* op, HarnessFn fn) { registry()[op] = fn; }

const std::map<std::string, HarnessFn>& harness_cases() { return registry(); }

double param(const Params& p, const char* name, double dflt) {
  auto it = p.find(name);
  return it == p.end() ? dflt : it->second;
}

int iparam(const Params& p, const char* name, int dflt) {
  return static_cast<int>(param(p, name, dflt));
}

const std::vector<double>& input(const Tensors& t, const char* name) {
  auto it = t.find(name);
  SLN_CHECK_ARG(it != t.end(), "harness: missing input '" << name << "'");
  return it->second;
}

bool has(const Tensors& t, const char* name) { return t.find(name) != t.end(); }

std::vector<float> to_f32(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }
std::vector<double> to_f64(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

}  // namespace sln
