// One label pass: the whole training set through the network (unshuffled,
// --paugs augmentation, --label-mode BN mode), kept natively by model.collect
// (the penultimate features on the CPU, every head's logits in device memory
// on CUDA), then every head's labels re-solved by Sinkhorn in model.relabel
// (on the CPU from the features and the heads' own weights, block by block;
// on CUDA by sln_cuda_sinkhorn from the device logits). The labels stay in the
// model (trainStep gathers a batch's by index); a copy comes back here.
import { Model } from "../model";
import { Loader } from "../data";
import type { SinkhornOptions } from "../sinkhorn";
import { nmi } from "../metrics";
import type { ResolvedOptions } from "./options";
import { resolvePrecision, Precision } from "./precision";
import { spectral } from "../kmeans";
import { matchLabels } from "./match";

/**
 * --label-precision resolved for this model: bf16 (explicit, or auto where the
 * CPU has native bfloat16) needs the fused trunk (CPU, eval-mode label passes,
 * a conv/batch-norm/ReLU/pool trunk); explicit bf16 without it is a usage error.
 */
export function labelPrecision(model: Model, o: ResolvedOptions): Precision {
  const blocker =
    model.device !== "cpu" ? "the CUDA backend runs label passes in float32" : o.labelMode !== "eval" ? "--label-mode train" : model.fusedTrunk;
  return resolvePrecision("--label-precision", o.labelPrecision, blocker);
}

/** One head's line of a label pass: the solver's figures, the smallest and largest cluster, NMI against `truth` when known. */
export async function headPassSummary(
  head: number,
  res: { iterations: number; error: number; cost: number; counts: ArrayLike<number>; warning?: string },
  labels: Int32Array,
  truth: Int32Array | null | undefined,
): Promise<HeadPassSummary> {
  let mn = Infinity,
    mx = 0;
  for (let i = 0; i < res.counts.length; i++) {
    mn = Math.min(mn, res.counts[i]);
    mx = Math.max(mx, res.counts[i]);
  }
  const q = truth ? await nmi(labels, truth) : null;
  return { head, iterations: res.iterations, error: res.error, cost: res.cost, min: mn, max: mx, nmi: q, warning: res.warning };
}

export interface HeadPassSummary {
  head: number;
  iterations: number;
  error: number;
  cost: number;
  /** Smallest and largest cluster. */
  min: number;
  max: number;
  /** NMI against the ground truth (when the data has labels). */
  nmi: number | null;
  warning?: string;
}

export interface LabelPassState {
  /** Per head, N labels (replaced by the pass: a copy of the model's label state). */
  labels: Int32Array[];
  /** Per head, the last pass's log row scaling (Sinkhorn warm start). */
  warm: (Float64Array | undefined)[];
}

export interface LabelPassResult {
  heads: HeadPassSummary[];
  /** Seconds of the whole pass and of its forward part. */
  seconds: number;
  featureSeconds: number;
}

/** One label pass's inputs (the Sinkhorn, spectral and distributed passes take the same). */
export interface LabelPassRun {
  model: Model;
  /** The label loader: the training images in dataset order, --paugs augmentation. */
  loader: Loader;
  o: ResolvedOptions;
  /** The pass number, 0-based: it seeds the loader. */
  pass: number;
  /** The true classes when the data has them (the summary's NMI). */
  truth: Int32Array | null;
  /** The forward's precision (labelPrecision's). */
  precision: "f32" | "bf16";
  /** Updated in place. */
  state: LabelPassState;
}

/** Every head's Sinkhorn options (the --sk-* flags; the warm start from the last pass's scaling with --sk-warm). */
export function passSinkhornOptions(o: ResolvedOptions, state: LabelPassState): SinkhornOptions[] {
  return o.ncl.map((_, h) => ({
    lambda: o.lamb,
    tol: o.skTol,
    maxIters: o.skMaxIters,
    dtype: o.dtype,
    warmStart: o.skWarm ? state.warm[h] : undefined,
  }));
}

/** A Sinkhorn label pass over the loader's images. */
export async function labelPass({ model, loader, o, pass, truth, precision, state }: LabelPassRun): Promise<LabelPassResult> {
  const tp = Date.now();
  for await (const b of loader.epoch(pass)) await model.collect(b.data, b.indices, { mode: o.labelMode, precision });
  const featureSeconds = (Date.now() - tp) / 1000;
  const results = await model.relabel(passSinkhornOptions(o, state));
  const heads: HeadPassSummary[] = [];
  for (let h = 0; h < o.hc; h++) {
    const res = results[h];
    state.labels[h] = res.labels;
    state.warm[h] = res.scaling.logR;
    heads.push(await headPassSummary(h, res, res.labels, truth));
  }
  return { heads, seconds: (Date.now() - tp) / 1000, featureSeconds };
}

/** The spectral label pass's graph settings (core/spectral.h) on the penultimate features: 10 neighbours, no projection. */
export const FEATURE_SPECTRAL = { neighbors: 10, dims: 0, restarts: 10 };

/**
 * A spectral label pass (--relabel spectral): the penultimate features of the
 * whole training set (unaugmented loader, eval-mode BN), spectral clustering
 * of them into each head's K clusters, the new ids matched to the head's
 * previous labels (lib/train/match.ts) so the head keeps its meaning; the
 * labels go into the model for trainStep. The summary reuses the Sinkhorn
 * fields: iterations = the eigensolver's sparse products, error = its
 * residual, cost = the share of graph edges inside a cluster.
 */
export async function spectralLabelPass({ model, loader, o, pass, truth, precision, state }: LabelPassRun): Promise<LabelPassResult> {
  const tp = Date.now();
  const n = state.labels[0].length,
    dim = model.featureDim;
  const feats = new Float32Array(n * dim);
  for await (const b of loader.epoch(pass)) {
    const f = await model.forward(b.data, { output: "features", mode: "eval", precision });
    for (let i = 0; i < b.size; i++) feats.set(f.subarray(i * dim, (i + 1) * dim), b.indices[i] * dim);
  }
  const featureSeconds = (Date.now() - tp) / 1000;
  const heads: HeadPassSummary[] = [];
  const byK = new Map<number, Awaited<ReturnType<typeof spectral>>>();
  for (let h = 0; h < o.hc; h++) {
    const k = o.ncl[h];
    if (!byK.has(k)) byK.set(k, await spectral(feats, n, dim, k, { ...FEATURE_SPECTRAL, seed: o.seed + pass }));
    const r = byK.get(k)!;
    const labels = matchLabels(state.labels[h], r.labels, k);
    const counts = new Array<number>(k).fill(0);
    for (let i = 0; i < n; i++) counts[labels[i]]++;
    state.labels[h] = labels;
    state.warm[h] = undefined;
    heads.push(await headPassSummary(h, { iterations: r.products, error: r.residual, cost: r.within, counts }, labels, truth));
  }
  await model.setLabels(state.labels);
  return { heads, seconds: (Date.now() - tp) / 1000, featureSeconds };
}
