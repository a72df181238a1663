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

Layout layout_param(const Params& p, const char* name) {
  const int v = iparam(p, name, 0);
  SLN_CHECK_ARG(v == 0 || v == 1, "harness: param " << name << " must be 0 (plain) or 1 (blocked16), got " << v);
  return v == 1 ? Layout::blocked16 : Layout::plain;
}

static std::vector<double> relayout(const std::vector<double>& v, Layout l, int N, int C, int H, int W, bool to) {
  if (l == Layout::plain) return v;
  SLN_CHECK_ARG(C % 16 == 0 && v.size() == size_t(N) * C * H * W,
                "harness: a blocked16 tensor needs C % 16 == 0 and N*C*H*W elements");
  std::vector<double> r(v.size());
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
      for (int h = 0; h < H; h++)
        for (int w = 0; w < W; w++) {
          const size_t pi = layout_index(Layout::plain, n, c, h, w, C, H, W), bi = layout_index(l, n, c, h, w, C, H, W);
          if (to) r[bi] = v[pi];
          else r[pi] = v[bi];
        }
  return r;
}
std::vector<double> to_layout(const std::vector<double>& v, Layout l, int N, int C, int H, int W) {
  return relayout(v, l, N, C, H, W, true);
}
std::vector<double> from_layout(const std::vector<double>& v, Layout l, int N, int C, int H, int W) {
  return relayout(v, l, N, C, H, W, false);
}

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
