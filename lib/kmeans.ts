// k-means on float32 rows (native/core/kmeans.cpp): greedy k-means++ seeding,
// `restarts` runs, the lowest inertia kept; float64 sums, threaded, and the
// same result for any thread count. The baseline every clustering is compared
// with (eval and train print raw-pixel k-means beside the self-labels).
import { native } from "./binding";

export interface KmeansOptions {
  /** Independent k-means++ runs; the one with the lowest inertia is kept. Default 3. */
  restarts?: number;
  /** Lloyd iterations per run at most. Default 300. */
  maxIter?: number;
  /** Stop when the total squared centre shift is at most tol x the mean per-dimension variance (scikit-learn's tol). Default 1e-4. */
  tol?: number;
  /** Seeds the k-means++ draws. Default 0. */
  seed?: number;
}

export interface KmeansResult {
  /** (n) cluster of each row, 0..k-1. */
  labels: Int32Array;
  /** (k, d) centres. */
  centroids: Float32Array;
  /** Sum of squared distances of the rows to their centres (float64). */
  inertia: number;
  /** Lloyd iterations of the kept run. */
  iterations: number;
  /** Index of the kept run, and every run's inertia. */
  restart: number;
  inertias: number[];
}

/**
 * k-means of the n rows of `data` (n x d, row-major) into k clusters.
 * Rejects (RangeError, code SLN_NONFINITE) data holding NaN/Inf and k > n.
 * Do not write to `data` until the Promise settles (it is read in place).
 */
export async function kmeans(data: Float32Array, n: number, d: number, k: number, opts: KmeansOptions = {}): Promise<KmeansResult> {
  return native().kmeans(data, n, d, k, opts);
}

export interface SpectralOptions {
  /** Neighbours per row in the kNN graph (cosine similarity; an edge when either row picked the other). Default 10. */
  neighbors?: number;
  /** Principal directions the rows are projected on before the graph (0: the rows as given). Default 64. */
  dims?: number;
  /** k-means runs on the spectral embedding. Default 10. */
  restarts?: number;
  /** Seeds the projection, the eigensolver's start and k-means. Default 0. */
  seed?: number;
}

export interface SpectralResult {
  /** (n) cluster of each row, 0..k-1. */
  labels: Int32Array;
  /** The k largest eigenvalues of the graph's normalised adjacency, descending. */
  eigenvalues: number[];
  /** Share of the graph's edges inside a cluster (label-free: how cleanly the graph splits into k groups). */
  within: number;
  /** Undirected edges of the kNN graph. */
  edges: number;
  /** Largest residual |A v - theta v| of the eigenvectors used; sparse products the eigensolver ran. */
  residual: number;
  products: number;
  /** Dimension the graph was built on (the projection's, or d). */
  dims: number;
}

/**
 * Spectral clustering of the n rows of `data` (n x d) into k clusters: a
 * cosine kNN graph (after an optional projection on the top principal
 * directions), the top-k eigenvectors of its normalised adjacency, k-means on
 * their unit-length rows (Ng, Jordan, Weiss). Same result for any thread
 * count. Rejects NaN/Inf, k > n and n < 2. Do not write to `data` until the
 * Promise settles.
 */
export async function spectral(data: Float32Array, n: number, d: number, k: number, opts: SpectralOptions = {}): Promise<SpectralResult> {
  return native().spectral(data, n, d, k, opts);
}
