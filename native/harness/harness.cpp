#include "harness/harness.h"

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

Buffer upload_f32(Backend& be, const std::vector<double>& v) {
  Buffer b(be, v.size() * sizeof(float));
  const auto f = to_f32(v);
  be.upload(b.data(), f.data(), f.size() * sizeof(float));
  return b;
}

Buffer upload_i32(Backend& be, const std::vector<int32_t>& v) {
  Buffer b(be, v.size() * sizeof(int32_t));
  be.upload(b.data(), v.data(), v.size() * sizeof(int32_t));
  return b;
}

Buffer alloc_f32(Backend& be, size_t n) { return Buffer(be, n * sizeof(float)); }

std::vector<double> download_f64(Backend& be, const Buffer& b, size_t n) {
  std::vector<float> f(n);
  be.download(f.data(), b.data(), n * sizeof(float));
  return to_f64(f);
}

}  // namespace sln
