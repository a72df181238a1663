// The Sinkhorn solver's options and results (lib/sinkhorn.ts re-exports them),
// apart so that lib/binding.ts needs no import of lib/sinkhorn.ts.

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
 * The Sinkhorn solve from the penultimate features (n, d) and the head's Linear
 * weight (k, d) and bias (k) or null: the logits are computed block by block
 * inside the solver. The addon's sinkhornFeatures and lib/sinkhorn.ts's
 * sinkhornFromFeatures share this signature.
 */
export type SinkhornFeaturesFn = (
  features: Float32Array,
  n: number,
  d: number,
  weight: Float32Array,
  bias: Float32Array | null,
  k: number,
  options?: SinkhornOptions,
) => Promise<SinkhornResult>;
