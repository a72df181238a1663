// linear on cuBLAS (column-major), for row-major x (N,in), w (out,in), y (N,out).
// A row-major (r, c) matrix is the column-major (c, r) matrix, so:
//   forward   y = x w^T      : col-major y^T (out,N) = w^T(col (in,out))^T . x^T(col (in,N))
//             -> sgemm(T, N, m=out, n=N, k=in, w, lda=in, x, ldb=in, y, ldc=out)
//   bias      y += 1_N b^T   : sger(m=out, n=N, b, 1, ones, 1, y, lda=out) (level 2: never
//                               TF32, so b is added in full FP32 as PyTorch's addmm
//                               does; a k=1 sgemm would round b to TF32 under --tf32)
//   backward  dx = dy w      : sgemm(N, N, m=in, n=N, k=out, w, in, dy, out, dx, in)
//             dw = dy^T x    : sgemm(N, T, m=in, n=out, k=N, x, in, dy, out, dw, in)
//             db = dy^T 1_N  : sgemv(N, m=out, n=N, dy, lda=out, ones)
// Math mode is the backend's (CUBLAS_DEFAULT_MATH: full FP32; TF32 only when
// enabled). No own kernels: the ones vector is uploaded once.
#include <vector>

#include "cuda/common.h"
#include "sln/shape_checks.h"

namespace sln::cuda {

namespace {

class CudaLinear final : public LinearOp {
 public:
  CudaLinear(CudaBackend& be, const LinearDesc& d) : be_(be), d_(d) {
    check_linear(d);
    auto lk = be_.enter();
    ones_.reserve(be_, static_cast<size_t>(d.N) * sizeof(float));   // (N)
    std::vector<float> h(static_cast<size_t>(d.N), 1.f);
    be_.upload(ones_.data(), h.data(), h.size() * sizeof(float));
  }

  // x (N,in), w (out,in), b (out) or null, y (N,out)
  void forward(const float* x, const float* w, const float* b, float* y) override {
    SLN_CHECK_ARG(x && w && y, "linear forward " << d_ << ": x, w and y must not be null");
    SLN_CHECK_ARG(d_.bias == (b != nullptr),
                  "linear forward " << d_ << ": b must be given exactly when the descriptor has bias");
    auto lk = be_.enter();
    const float one = 1.f, zero = 0.f;
    cublasHandle_t h = be_.cublas();
    SLN_CUBLAS(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, d_.out, d_.N, d_.in, &one, w, d_.in, x, d_.in, &zero, y, d_.out),
               "linear forward " << d_);
    if (b)
      SLN_CUBLAS(cublasSger(h, d_.out, d_.N, &one, b, 1, ones_.f32(), 1, y, d_.out), "linear forward bias " << d_);
  }

  // dy (N,out) -> dx (N,in) or null, dw (out,in) or null, db (out) or null; overwritten.
  void backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db) override {
    SLN_CHECK_ARG(x && w && dy, "linear backward " << d_ << ": x, w and dy must not be null");
    SLN_CHECK_ARG(d_.bias || !db, "linear backward " << d_ << ": db requested but the descriptor has no bias");
    auto lk = be_.enter();
    const float one = 1.f, zero = 0.f;
    cublasHandle_t h = be_.cublas();
    if (dx)
      SLN_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, d_.in, d_.N, d_.out, &one, w, d_.in, dy, d_.out, &zero, dx, d_.in),
                 "linear backward data " << d_);
    if (dw)
      SLN_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, d_.in, d_.out, d_.N, &one, x, d_.in, dy, d_.out, &zero, dw, d_.in),
                 "linear backward weights " << d_);
    if (db)
      SLN_CUBLAS(cublasSgemv(h, CUBLAS_OP_N, d_.out, d_.N, &one, dy, d_.out, ones_.f32(), 1, &zero, db, 1),
                 "linear backward bias " << d_);
  }

 private:
  CudaBackend& be_;
  LinearDesc d_;
  Buffer ones_;   // (N) of 1.0f
};

}  // namespace

std::unique_ptr<LinearOp> make_linear(CudaBackend& be, const LinearDesc& d) { return std::make_unique<CudaLinear>(be, d); }

}  // namespace sln::cuda
