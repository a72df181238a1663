// Machine probes for the benchmarks (never built into the addon): bench/probe.ts
// compiles this file on first use (g++ -O3 -fopenmp, linked with oneDNN) and runs it.
//   probe bandwidth BYTES THREADS REPS  -> {"read":GB/s,"copy":GB/s,"triad":GB/s}
//       best of REPS: a read-only sum, a copy (a[i] = b[i], 2 x 8 bytes per element)
//       and a triad (a = b + s*c, 3 x 8) over BYTES bytes per float64 array.
//   probe sgemm N THREADS REPS          -> {"gflops":GFLOP/s,"seconds":s}
//       oneDNN's float32 GEMM (dnnl_sgemm) of two N x N matrices, median of REPS
//       after two warm-up calls: the machine's float32 arithmetic ceiling.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int bandwidth(long long bytes, int threads, int reps) {
  const long long n = std::max<long long>(bytes / 8, 1024);
  std::unique_ptr<double[]> a(new double[n]), b(new double[n]), c(new double[n]);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long long i = 0; i < n; ++i) {
    a[i] = 1.0;
    b[i] = 2.0;
    c[i] = 0.5;
  }
  double read = 0, copy = 0, triad = 0;
  volatile double sink = 0;
  for (int rep = 0; rep < reps; ++rep) {
    double t0 = now_s(), total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
#pragma omp for schedule(static)
      for (long long i = 0; i < n / 8 * 8; i += 8)
        for (int q = 0; q < 8; ++q) s[q] += b[i + q];
      total += ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }
    double t1 = now_s();
    sink = sink + total;
    read = std::max(read, 8.0 * n / (t1 - t0) / 1e9);
    t0 = now_s();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long long i = 0; i < n; ++i) a[i] = b[i];
    t1 = now_s();
    copy = std::max(copy, 16.0 * n / (t1 - t0) / 1e9);
    t0 = now_s();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long long i = 0; i < n; ++i) a[i] = b[i] + 0.5 * c[i];
    t1 = now_s();
    triad = std::max(triad, 24.0 * n / (t1 - t0) / 1e9);
  }
  (void)sink;
  std::printf("{\"read\":%.6g,\"copy\":%.6g,\"triad\":%.6g}\n", read, copy, triad);
  return 0;
}

int sgemm(long long n, int threads, int reps) {
  omp_set_num_threads(threads);
  std::vector<float> A(n * n), B(n * n), C(n * n, 0.0f);
  for (long long i = 0; i < n * n; ++i) {
    A[i] = static_cast<float>((i * 7 % 13) - 6) / 8.0f;
    B[i] = static_cast<float>((i * 5 % 11) - 5) / 8.0f;
  }
  auto run = [&] {
    dnnl_status_t st = dnnl_sgemm('N', 'N', n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f, C.data(), n);
    if (st != dnnl_success) {
      std::fprintf(stderr, "probe: dnnl_sgemm failed (status %d)\n", static_cast<int>(st));
      std::exit(1);
    }
  };
  run();
  run();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    run();
    t.push_back(now_s() - t0);
  }
  std::sort(t.begin(), t.end());
  const double med = t[t.size() / 2];
  std::printf("{\"gflops\":%.6g,\"seconds\":%.6g}\n", 2.0 * n * n * n / med / 1e9, med);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::strcmp(argv[1], "bandwidth") == 0)
    return bandwidth(std::atoll(argv[2]), std::max(1, std::atoi(argv[3])), std::max(1, std::atoi(argv[4])));
  if (argc == 5 && std::strcmp(argv[1], "sgemm") == 0)
    return sgemm(std::max(16LL, std::atoll(argv[2])), std::max(1, std::atoi(argv[3])), std::max(1, std::atoi(argv[4])));
  std::fprintf(stderr, "usage: probe bandwidth BYTES THREADS REPS | probe sgemm N THREADS REPS\n");
  return 2;
}
