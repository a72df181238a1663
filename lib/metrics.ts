// Clustering metrics: NMI, AMI, ARI (as scikit-learn computes them) and cluster
// accuracy (Hungarian one-to-one matching and majority vote). The work runs in
// the native addon on the libuv pool; every function returns a Promise and
// rejects with a TypeError (wrong types, non-integer labels) or RangeError
// (lengths differ, negative labels, too large) saying what was expected.
//
// Labels are any non-negative integers (gaps and unused ids are fine: they are
// compacted first), as an Int32Array or an array of numbers.
import { native } from "./binding";
import type { NativeScores } from "./binding";

export type Labels = Int32Array | ArrayLike<number>;

/** Per-call detail of {@link clusteringScores}. */
export interface ClusteringScores {
  /** Normalized mutual information, arithmetic-mean normalisation. */
  nmi: number;
  /** Adjusted mutual information (exact expected MI, arithmetic mean). */
  ami: number;
  /** Adjusted Rand index. */
  ari: number;
  /** Mutual information and entropies in nats, and the expected MI used by AMI. */
  mutualInfo: number;
  entropyA: number;
  entropyB: number;
  expectedMutualInfo: number;
  /** Samples, distinct labels in a, distinct labels in b. */
  n: number;
  labelsA: number;
  labelsB: number;
}

export interface ClusterAccuracy {
  /** Best one-to-one matching of clusters to classes (Hungarian), over all samples;
   * with more clusters than classes, samples in unmatched clusters count as wrong. */
  accuracy: number;
  /** Majority vote ("purity"): each cluster takes its most frequent class. */
  purity: number;
  /** The one-to-one matching: cluster label -> class label (matched clusters only). */
  mapping: Map<number, number>;
  /** The majority vote: cluster label -> class label (every cluster; ties go to the smaller class label). */
  majority: Map<number, number>;
  /** Samples counted correct by the matching and by the majority vote, and N. */
  correct: number;
  purityCorrect: number;
  n: number;
  /** Distinct cluster labels in pred and class labels in truth. */
  numClusters: number;
  numClasses: number;
}

const NMI = 1;
const AMI = 2;
const ARI = 4;

/** Labels as an Int32Array; TypeError for anything that is not integers in int32 range. */
export function toLabels(x: Labels, name: string): Int32Array {
  if (x instanceof Int32Array) return x;
  if (x === null || typeof x !== "object" || typeof (x as ArrayLike<number>).length !== "number") {
    throw new TypeError(`${name} must be an Int32Array or an array of integer labels, got ${x === null ? "null" : typeof x}`);
  }
  const n = x.length;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = x[i];
    if (typeof v !== "number" || !Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
      throw new TypeError(`${name} must hold integer labels, got ${String(v)} at index ${i}`);
    }
    out[i] = v;
  }
  return out;
}

function pair(a: Labels, b: Labels, na: string, nb: string): [Int32Array, Int32Array] {
  const x = toLabels(a, na);
  const y = toLabels(b, nb);
  if (x.length !== y.length) {
    throw new RangeError(`the two labelings must have the same length, got ${x.length} (${na}) and ${y.length} (${nb})`);
  }
  return [x, y];
}

async function scores(a: Labels, b: Labels, which: number): Promise<NativeScores> {
  const [x, y] = pair(a, b, "a", "b");
  return native().metricsScores(x, y, which);
}

/** Normalized mutual information with the arithmetic-mean normalisation (sklearn's default). Symmetric. */
export async function nmi(a: Labels, b: Labels): Promise<number> {
  return (await scores(a, b, NMI)).nmi as number;
}

/**
 * Adjusted mutual information ("aNMI"): (MI - E[MI]) / (mean(H(a), H(b)) - E[MI]) with the
 * exact expected MI under the hypergeometric model, as sklearn. Symmetric.
 */
export async function ami(a: Labels, b: Labels): Promise<number> {
  return (await scores(a, b, AMI)).ami as number;
}

/** Adjusted Rand index. Symmetric. */
export async function ari(a: Labels, b: Labels): Promise<number> {
  return (await scores(a, b, ARI)).ari as number;
}

/** NMI, AMI and ARI from one contingency table, with the intermediate quantities. */
export async function clusteringScores(a: Labels, b: Labels): Promise<ClusteringScores> {
  return (await scores(a, b, NMI | AMI | ARI)) as ClusteringScores;
}

/**
 * Accuracy of predicted clusters against true classes: the best one-to-one matching
 * (Hungarian algorithm on the K x C contingency table; K != C is fine, unmatched
 * clusters count as wrong) and the majority vote (purity). Needs at least one sample
 * and K * C <= 2^25 (a dense K x C matching).
 */
export async function clusterAccuracy(pred: Labels, truth: Labels): Promise<ClusterAccuracy> {
  const [x, y] = pair(pred, truth, "pred", "truth");
  const r = await native().metricsClusterAccuracy(x, y);
  const mapping = new Map<number, number>();
  const majority = new Map<number, number>();
  for (let k = 0; k < r.clusterValues.length; k++) {
    if (r.matchedClass[k] >= 0) mapping.set(r.clusterValues[k], r.classValues[r.matchedClass[k]]);
    majority.set(r.clusterValues[k], r.classValues[r.majorityClass[k]]);
  }
  return {
    accuracy: r.matchedCorrect / r.n,
    purity: r.majorityCorrect / r.n,
    mapping,
    majority,
    correct: r.matchedCorrect,
    purityCorrect: r.majorityCorrect,
    n: r.n,
    numClusters: r.clusterValues.length,
    numClasses: r.classValues.length,
  };
}

/**
 * Expected mutual information (nats) of two labelings with the given label counts
 * (row and column sums of their contingency table; equal totals), as sklearn's
 * expected_mutual_information. method "naive" runs sklearn's triple loop verbatim
 * (slow; for checking), "fast" (default) the grouped, parallel version.
 */
export async function expectedMutualInfo(
  rowSums: ArrayLike<number>,
  colSums: ArrayLike<number>,
  method: "fast" | "naive" = "fast",
): Promise<number> {
  return native().metricsExpectedMI(
    Float64Array.from(rowSums),
    Float64Array.from(colSums),
    method,
  );
}

/**
 * Linear sum assignment (as scipy.optimize.linear_sum_assignment) on a row-major
 * rows x cols cost matrix: returns, for each row, its column in a minimum-cost
 * (maximum with maximize) matching of min(rows, cols) pairs, or -1 when unmatched.
 */
export async function linearSumAssignment(
  cost: Float64Array | ArrayLike<number>,
  rows: number,
  cols: number,
  maximize = false,
): Promise<Int32Array> {
  const c = cost instanceof Float64Array ? cost : Float64Array.from(cost);
  return native().metricsLinearSumAssignment(c, rows, cols, maximize);
}
