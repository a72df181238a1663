// The label pass of a --distributed run: each rank computes the penultimate
// features of its own rows only (shardRows: whole blocks of the Sinkhorn
// solver, contiguous in dataset order), the Sinkhorn solve is row-sharded
// (exact mode: the labels are the single-process solver's for the same
// features, bit for bit), and every rank gathers the full label vectors (the
// batches draw images from all rows and the model holds them; rank 0 writes them
// into the checkpoint).
// With --paugs > 0 a rank's label batches are cut from its own rows, so their
// augmentation draws differ from a single-process pass (level 0, the default
// for small images, draws nothing).
import { Model } from "../model";
import { Dataset, Loader, AugLevel } from "../data";
import type { ResolvedOptions } from "../train/options";
import { HeadPassSummary, LabelPassResult, LabelPassState, headPassSummary } from "../train/label_pass";
import { myRows, shardedSinkhornFromFeatures, gatherLabels } from "./sinkhorn";

/** The PyTorch name of head h's Linear (the reference's top_layer / top_layer<h>). */
function headName(hc: number, h: number): string {
  return hc === 1 ? "top_layer" : `top_layer${h}`;
}

/** Rows [b, e) of ds as a dataset of e - b images. */
function rowsOf(ds: Dataset, b: number, e: number): Dataset {
  const shift = (a: Int32Array) => a.map((i) => i + b);
  return {
    ...ds,
    name: `${ds.name} (rows ${b}..${e})`,
    count: e - b,
    heights: ds.heights.subarray(b, e),
    widths: ds.widths.subarray(b, e),
    labels: ds.labels ? ds.labels.subarray(b, e) : null,
    paths: ds.paths ? ds.paths.slice(b, e) : null,
    read: (indices: Int32Array) => ds.read(shift(indices)),
    close: async () => {},
  };
}

/** A label loader over this rank's rows (same batch size, level and seed as the single-process one). */
export function shardLabelLoader(ds: Dataset, o: ResolvedOptions, size: number): Loader {
  const [b, e] = myRows(ds.count);
  return new Loader(rowsOf(ds, b, e), { batchSize: Math.max(o.batchSize, 512), size, level: o.paugs as AugLevel, seed: o.seed + 1, shuffle: false });
}

export async function distributedLabelPass(
  model: Model,
  loader: Loader,
  N: number,
  o: ResolvedOptions,
  state: LabelPassState,
  pass: number,
  truth: Int32Array | null,
): Promise<LabelPassResult> {
  const tp = Date.now();
  if (model.device === "cuda") throw new Error("--distributed label pass: the CUDA path (NCCL) is not wired into training; use --device cpu");
  const D = model.featureDim;
  const n = loader.dataset.count;
  const feats = new Float32Array(n * D);
  for await (const b of loader.epoch(pass)) {
    const f = await model.forward(b.data, { mode: o.labelMode, output: "features" });
    for (let i = 0; i < b.size; i++) feats.set(f.subarray(i * D, (i + 1) * D), b.indices[i] * D);
  }
  const featureSeconds = (Date.now() - tp) / 1000;
  const sd = await model.stateDict();
  const heads: HeadPassSummary[] = [];
  for (let h = 0; h < o.hc; h++) {
    const name = headName(o.hc, h);
    const res = await shardedSinkhornFromFeatures(feats, N, D, sd[`${name}.weight`].data, sd[`${name}.bias`].data, o.ncl[h], {
      lambda: o.lamb,
      tol: o.skTol,
      maxIters: o.skMaxIters,
      dtype: o.dtype,
      warmStart: o.skWarm ? state.warm[h] : undefined,
    });
    state.labels[h] = await gatherLabels(res.labels);
    state.warm[h] = res.scaling.logR;
    heads.push(await headPassSummary(h, res, state.labels[h], truth));
  }
  await model.setLabels(state.labels); // the model's label state: trainStep takes each batch's labels by index
  return { heads, seconds: (Date.now() - tp) / 1000, featureSeconds };
}
