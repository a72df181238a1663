// Label assignment: the fused float64 Sinkhorn-Knopp solver of native/core/sinkhorn.h.
// Every call runs off the event loop and resolves once the solve is done.
import { native } from "./binding";
import type { SinkhornDtype, SinkhornFeaturesFn, SinkhornOptions, SinkhornResult } from "./sinkhorn_types";
export type { SinkhornDtype, SinkhornFeaturesFn, SinkhornOptions, SinkhornResult, SinkhornScaling } from "./sinkhorn_types";

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
 * Async, so bad arguments reject (never throw synchronously).
 */
export const sinkhornFromFeatures: SinkhornFeaturesFn = async (...args) => native().sinkhornFeatures(...args);

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
