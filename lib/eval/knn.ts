// Evaluation on frozen features: weighted kNN (cosine similarity on
// L2-normalised features, weight exp(sim / T), as the reference's kNN monitor)
// and a linear probe (softmax regression by SGD on standardised features).
// The arithmetic runs in the addon (native/core/knn.cpp) on the libuv pool.
import { native } from "../binding";
import { Prng } from "../prng";

export interface KnnOptions {
  /** Neighbour counts to vote with (each capped at the bank size). Default [10, 200]. */
  ks?: number[];
  /** Temperature T of the weights exp(sim / T). Default 0.1. */
  temperature?: number;
  /** Query rows and bank rows per similarity block (results do not depend on them). */
  queryBlock?: number;
  bankBlock?: number;
}

export interface KnnResult {
  /** Neighbours kept per query: min(max(ks), N). */
  k: number;
  /** (M, k) bank indices, most similar first (ties: lower index first). */
  indices: Int32Array;
  /** (M, k) cosine similarities, matching indices. */
  similarities: Float32Array;
  /** One row of M predicted classes per entry of ks. */
  predictions: Int32Array[];
  ks: number[];
}

/**
 * kNN classification of `queries` (M x d) against `bank` (N x d) with labels
 * `bankLabels` in [0, numClasses).
 */
export async function knnClassify(
  bank: Float32Array,
  bankLabels: Int32Array,
  queries: Float32Array,
  d: number,
  numClasses: number,
  opts: KnnOptions = {},
): Promise<KnnResult> {
  const ks = opts.ks ?? [10, 200];
  const r = await native().knnClassify(bank, bankLabels, queries, d, numClasses, ks, {
    temperature: opts.temperature,
    queryBlock: opts.queryBlock,
    bankBlock: opts.bankBlock,
  });
  return { ...r, ks: ks.map((k) => Math.min(k, bankLabels.length)) };
}

export interface ProbeOptions {
  epochs?: number;
  batch?: number;
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  /** Seeds the per-epoch sample order. */
  seed?: number;
  /**
   * Standardise per group of `spatial` contiguous dimensions (a channel of a
   * pooled conv map, channel-major) instead of per dimension. Default 1.
   */
  spatial?: number;
  /** Step schedule: lr * gamma^(milestones <= epoch) per epoch, instead of the cosine decay. */
  milestones?: number[];
  gamma?: number;
}

export interface ProbeResult {
  trainPredictions: Int32Array;
  testPredictions: Int32Array;
  epochLoss: number[];
}

/**
 * Linear probe: softmax regression on features standardised with the training
 * set's mean and standard deviation (per dimension, or per channel with
 * `spatial`), SGD with momentum 0.9, cosine lr decay (or steps at `milestones`),
 * sample order from Prng.derive(seed, 0x9b0e, epoch): deterministic for a seed.
 */
export async function linearProbe(
  x: Float32Array,
  y: Int32Array,
  xTest: Float32Array,
  d: number,
  numClasses: number,
  opts: ProbeOptions = {},
): Promise<ProbeResult> {
  const epochs = opts.epochs ?? 10;
  if (!Number.isInteger(epochs) || epochs < 1) throw new RangeError(`linearProbe: epochs must be an integer >= 1, got ${epochs}`);
  const seed = opts.seed ?? 0;
  const n = y.length;
  const order = new Int32Array(epochs * n);
  for (let e = 0; e < epochs; e++) order.set(Prng.derive(seed, 0x9b0e, e).permutation(n), e * n);
  return native().linearProbe(x, y, xTest, d, numClasses, order, {
    epochs,
    batch: opts.batch,
    lr: opts.lr,
    momentum: opts.momentum,
    weightDecay: opts.weightDecay,
    spatial: opts.spatial,
    milestones: opts.milestones,
    gamma: opts.gamma,
  });
}

/** Fraction of equal entries. */
export function accuracy(pred: Int32Array, truth: Int32Array): number {
  if (pred.length !== truth.length) throw new RangeError(`accuracy: lengths differ (${pred.length} vs ${truth.length})`);
  if (pred.length === 0) return NaN;
  let c = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === truth[i]) c++;
  return c / pred.length;
}
