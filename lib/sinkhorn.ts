// Label assignment: the fused float64 Sinkhorn-Knopp solver of native/core/sinkhorn.h.
// Every call runs off the event loop and resolves once the solve is done.
import { native } from "./binding";

export type SinkhornDtype = "f64" | "f32";

export interface SinkhornOptions {
  /** Power of the softmax (the reference's --lamb). Default 25. */
  lambda?: number;
  /** Stop when sum_j |c_j / c_new_j - 1| <= tol, checked every 10 iterations (--sk-tol). Default 0.1. */
  tol?: number;
  /** Stop after this many iterations with a warning. Default 1000. */
  maxIters?: number;
  /** Storage of the N x K matrix: 'f64' (as the reference) or 'f32' (half the memory). Accumulation is f64 always. */
  dtype?: SinkhornDtype;
  /** OpenMP threads for this solve. Default: the addon's thread count (SELFLABEL_NUM_THREADS). Results do not depend on it. */
  threads?: number;
  /** log r (K) from a previous solve's `scaling.logR`: start from those cluster scalings instead of a cold start. */
  warmStart?: Float64Array;
  /** Bytes the solver may allocate; default: the machine's available memory. The solve is refused before allocating when it needs more. */
  memoryBudget?: number;
}

export interface SinkhornScaling {
  /** (K) log of the cluster scaling r relative to exp(lambda * (z - rowmax)): pass as `warmStart` next time. */
  logR: Float64Array;
  /** (N) log of the image scaling c relative to exp(lambda * (z - rowmax)). */
  logC: Float64Array;
}

export interface SinkhornResult {
  /** (N) argmax_k of the transport plan Q = diag(c) P^lambda diag(r). */
  labels: Int32Array;
  /** r/c updates, counted as the reference's _counter. */
  iterations: number;
  /** err of the last check (every 10th iteration, and the last one when stopped by maxIters). */
  error: number;
  /** -(1/N) sum_j log softmax(z_j)[label_j]: the cost the reference's CIFAR code prints. */
  cost: number;
  /** (K) number of images given each label. */
  counts: Int32Array;
  converged: boolean;
  /** Set when the solve stopped at maxIters before reaching tol. */
  warning?: string;
  scaling: SinkhornScaling;
  /** Seconds spent building the matrix (exp once) and iterating. */
  buildSeconds: number;
  solveSeconds: number;
  /** Median seconds of one iteration (for benchmarks on a busy machine). */
  medianIterSeconds: number;
}

/**
 * Solve the equipartition-constrained label assignment for one head.
 * `logits` is (n, k) row-major; P^lambda is taken as exp(lambda * (z - rowmax)), so no
 * softmax is stored. Rejects with a RangeError on NaN/Inf logits (naming the row),
 * n < k, k < 1, lambda <= 0, and with code SLN_OUT_OF_MEMORY before allocating a matrix
 * that does not fit. Bad arguments reject (never throw synchronously).
 */
export async function sinkhorn(
  logits: Float32Array,
  n: number,
  k: number,
  options: SinkhornOptions = {},
): Promise<SinkhornResult> {
  return native().sinkhornLogits(logits, n, k, options);
}

/**
 * The same solve from the penultimate features (n, d) and the head's Linear weight
 * (k, d) and bias (k) or null: the logits are computed block by block inside the solver.
 */
export async function sinkhornFromFeatures(
  features: Float32Array,
  n: number,
  d: number,
  weight: Float32Array,
  bias: Float32Array | null,
  k: number,
  options: SinkhornOptions = {},
): Promise<SinkhornResult> {
  return native().sinkhornFeatures(features, n, d, weight, bias, k, options);
}

/**
 * The same solve as sinkhorn() on the GPU (sln_cuda_sinkhorn: float64 fused
 * Sinkhorn, logits on the host in and the result on the host out). The CUDA
 * library must be loaded (lib/cuda.ts loadCuda()); options.threads is ignored.
 */
export async function sinkhornCuda(
  logits: Float32Array,
  n: number,
  k: number,
  options: SinkhornOptions = {},
): Promise<SinkhornResult> {
  return native().cudaSinkhorn(logits, n, k, options);
}

/** The reference's two-pass algorithm (softmax, power, two matrix-vector products per iteration): a baseline for benchmarks and tests. */
export async function sinkhornTwoPassReference(
  logits: Float32Array,
  n: number,
  k: number,
  options: SinkhornOptions = {},
): Promise<SinkhornResult> {
  return native().sinkhornTwoPass(logits, n, k, options);
}

/** Bytes one solve of (n, k) allocates in this storage (matrix plus vectors). */
export function sinkhornPlannedBytes(n: number, k: number, dtype: SinkhornDtype = "f64"): number {
  return native().sinkhornPlannedBytes(n, k, dtype);
}

/** Memory bandwidth in GB/s (read-only sum, copy, triad loops over `bytes` per array). */
export async function memoryBandwidth(bytes: number, threads: number, reps = 3): Promise<{ read: number; copy: number; triad: number }> {
  return native().memoryBandwidth(bytes, threads, reps);
}
