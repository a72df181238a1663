// Label assignment: the fused float64 Sinkhorn-Knopp solver (SeLa's optimal
// transport step), with the reference's semantics (sinkhornknopp.py).
//
// Problem. Logits z (N, K) of one head. P^lambda is, per image j, proportional to
//   B[j,k] = exp(lambda * (z[j,k] - max_k z[j,k]))      (the per-row factor is absorbed by c)
// Find Q = diag(c) B diag(r) with row sums 1/N and column sums 1/K:
//   r = (1/K) / (B^T c)        (K)      c_new = (1/N) / (B r)        (N)
// every 10 iterations err = sum_j |c_j / c_new_j - 1|, stop when err <= tol (the
// reference loops while err > tol), plus maxIters with a warning (the last allowed
// iteration is then also a check). Cold start: the reference's c = 1/N for
// softmax^lambda, i.e. c_j = (1/N) s_j^-lambda in B's gauge (s_j = sum_k exp(z - max)),
// so the iterates, the iteration count and err are the reference's. labels[j] =
// argmax_k B[j,k] r[k] with the r that produced the final c (the reference's argmax of
// the final scaled matrix; c_j > 0 does not change a row's argmax; first maximum wins
// ties, as np.nanargmax), computed in one pass after the loop.
//
// One pass per iteration. For each row j (given r): dot = B[j,:] . r, c_new[j] =
// (1/N)/dot, then colsum[:] += B[j,:] * c_new[j] while the row is still in cache;
// after the pass r_next = (1/K)/colsum. The reference does two matrix-vector
// products (two passes over the matrix) per iteration.
//
// The pass's kernel (sinkhorn_kernels.cpp, fused_block_*) takes rows four at a time: one sweep
// for the four dots, one vector division for the four c_new, then a second sweep
// adding colsum += (a0 c0 + a1 c1) + (a2 c2 + a3 c3) from L1/L2, so the colsum vector
// is read and written once per four rows; K <= 16 keeps r and colsum in registers.
// It is written with GCC vector types (fixed operation order, no FMA) in
// sinkhorn_pass.inc, compiled for AVX-512 (f32 entries widened by one vcvtps2pd per 8)
// and for AVX2 and the baseline ISA (target_clones): every variant rounds alike, which
// a test checks (SELFLABEL_SINKHORN_ISA=portable forces the portable ones). Threads
// take fixed contiguous runs of blocks (OpenMP static), so each rereads its own rows
// from its own caches. A row whose c_new is not a positive finite number (the scalings
// left the float64 range) is flagged without a branch and reported after the pass.
//
// Stored or on the fly? Measured on the 2-core dev machine: glibc exp() costs ~3.4 ns
// per entry with both cores busy, while streaming a stored f32/f64 entry costs
// ~0.1/0.2 ns at ~40 GB/s (quiet machine). Computing exp(lambda*(z - max)) on the fly
// every iteration would be >10x slower than streaming a stored matrix (even a
// vectorized exp, ~1 ns, is 5-10x slower), and f32 storage reads the same 4 bytes per
// entry as the f32 logits would. So A is computed once (f64 or f32 storage) and every
// iteration only streams it.
//
// Denormals. Stored values below the storage type's smallest normal are stored as 0,
// and the solver's threads run with FTZ/DAZ: denormal products (tiny A times tiny c)
// cost a microcode assist each and halved the speed of the pass when present.
//
// Underflow. Stored is not B but A = B diag(exp(-M)) with M[k] = max_j log B[j,k]:
// every column of A has its maximum equal to 1, and every row keeps its 1 at its own
// argmax column (that column has M = 0). So no column can vanish (a column the
// reference would underflow to all zeros is shifted back into range), every B r and
// B^T c is > 0 and no division by zero can happen. The shift is exact: it is
// absorbed by r (r_A = r_B exp(M)), the iterates c and err are the reference's.
// If a scaling vector still leaves the float64 range (lambda far too large for the
// logits), the solver stops with an error naming the iteration and the cluster.
//
// Determinism. Rows are split into a fixed number of blocks (independent of the
// thread count); each block accumulates its own column sums and error, and the
// blocks are reduced in block order. Results are bit-identical for any number of
// threads.
//
// Accumulation is float64 always; storage of A is f64 (as the reference) or f32
// (half the bytes per iteration).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sln::sinkhorn {

enum class Storage { F64, F32 };

// Row sharding over several processes (lib/distributed; the collectives come from
// addon/mpi_loader.cpp). The N_total rows are split into the solver's fixed blocks
// (at most 256, whatever the thread or rank count) and rank r of R holds the whole
// blocks shard_rows(N_total, r, R) gives; its call gets only those rows (n = their
// count). Every reduction over blocks (column sums, err, column max, cost) then
// needs the other ranks' blocks:
//   exact = true:  one allgather per iteration of every block's partial sums
//                  (K + 8 doubles per block, 256 blocks at most in all), summed in
//                  global block order on every rank: the labels, iterates, err and
//                  iteration count are bit-identical to the single-process solve.
//   exact = false: each rank sums its own blocks, then one float64 all-reduce of
//                  K + 8 doubles per iteration (MPI's order: equal to the
//                  single-process result up to reassociation).
// labels and log_c come back for this rank's rows only; counts, cost, iterations,
// error and log_r are global (the same on every rank).
struct Shard {
  int64_t n_total = 0;
  int rank = 0, ranks = 1;
  bool exact = true;
  // Every rank's `count` doubles (count may differ per rank: counts[r]), in rank order, into all.
  std::function<void(const double* mine, int64_t count, double* all, const std::vector<int64_t>& counts)> allgather;
  // In place over the ranks: op 0 = sum, 1 = max, 2 = min.
  std::function<void(double* v, int64_t n, int op)> allreduce;
  // The same on n doubles in GPU memory, queued on `stream` (a cudaStream_t) and
  // finished when it returns (NCCL: addon/nccl_loader.cpp). Used by the CUDA
  // solver (cuda/sinkhorn.cu), which runs the all-reduce mode only (exact = false):
  // one sum of K + 1 doubles per iteration, the column maxima once per solve.
  std::function<void(double* dev, int64_t n, int op, void* stream)> device_allreduce;
};

// The rows [begin, end) that rank `rank` of `ranks` holds in a sharded solve of n
// rows (whole blocks, contiguous, in rank order). Throws when ranks exceeds the
// number of blocks (min(n, 256)).
std::pair<int64_t, int64_t> shard_rows(int64_t n, int rank, int ranks);

struct Options {
  double lambda = 25.0;
  double tol = 0.1;
  int max_iters = 1000;
  Storage storage = Storage::F64;
  int threads = 1;
  // Optional warm start: log r (K) as returned in Result::log_r from a previous solve.
  const double* warm_log_r = nullptr;
  // Bytes the solver may allocate; 0 = MemAvailable from /proc/meminfo.
  uint64_t memory_budget = 0;
  // Row-sharded solve over several processes (see Shard); null = this process holds all rows.
  const Shard* shard = nullptr;
};

struct Result {
  std::vector<int32_t> labels;  // (N)
  std::vector<int32_t> counts;  // (K) images per cluster
  int iterations = 0;           // r/c updates, counted as the reference's _counter
  double error = 0;             // err of the last check
  double cost = 0;              // -(1/N) sum_j log softmax(z_j)[label_j] (the reference's CIFAR cost)
  bool converged = false;
  std::string warning;          // set when stopped by max_iters
  std::vector<double> log_r;    // (K) log of the final r relative to B (warm start input)
  std::vector<double> log_c;    // (N) log of the final c relative to B
  double build_seconds = 0;     // building the matrix (exp once)
  double solve_seconds = 0;     // the iterations (and the final label pass)
  double median_iter_seconds = 0;  // median time of one iteration (robust to a noisy machine)
};

// Bytes one solve allocates for (N, K) in this storage (matrix plus vectors).
uint64_t planned_bytes(int64_t n, int64_t k, Storage s);

// z: (N, K) row-major logits.
Result solve_logits(const float* z, int64_t n, int64_t k, const Options& opt);

// features: (N, D), weight: (K, D) (PyTorch Linear layout), bias: (K) or null.
// Logits are computed block by block and never exist for all N at once:
//   z[j,k] = float( ((s0+s1)+(s2+s3)) + ((s4+s5)+(s6+s7)) + bias[k] )
// where s_i = sum over d = i (mod 8), in increasing d, of double(f[j,d])*double(w[k,d])
// (each product exact in double). The order is fixed so the result equals the logits
// variant given logits computed the same way (test/sinkhorn.test.ts does).
Result solve_features(const float* features, int64_t n, int64_t d, const float* weight,
                      const float* bias, int64_t k, const Options& opt);

// The reference's algorithm as written (for tests and the benchmark baseline):
// P = softmax(z) in f64, P **= lambda, then r = (1/K)/(P^T c) and
// c_new = (1/N)/(P r) as two separate passes per iteration. No guards beyond the
// argument checks; threaded with the same fixed-order reduction.
Result solve_two_pass_reference(const float* z, int64_t n, int64_t k, const Options& opt);

// The N x K matrix's memory: anonymous mmap with MADV_HUGEPAGE, so that first touch
// takes one page fault per 2 MB instead of per 4 KB (4 KB faults were a quarter of the
// build time on the dev VM). Throws std::bad_alloc when the mapping fails.
class MatrixMemory {
 public:
  explicit MatrixMemory(size_t bytes);
  ~MatrixMemory();
  MatrixMemory(const MatrixMemory&) = delete;
  MatrixMemory& operator=(const MatrixMemory&) = delete;
  void* data() const { return p_; }

 private:
  void* p_ = nullptr;
  size_t len_ = 0;
};

// Median of per-iteration times (benchmark aid).
double median(std::vector<double> v);

}  // namespace sln::sinkhorn
