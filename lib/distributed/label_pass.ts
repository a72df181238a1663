// The label pass of a --distributed run: each rank runs its own rows only
// (shardRows: whole blocks of the Sinkhorn solver, contiguous in dataset order)
// through the network into the model's label store (model.setLabelRows +
// collect: features on the CPU, every head's logits in GPU memory on CUDA), the
// Sinkhorn solve is row-sharded (model.relabel with a shard: on the CPU over MPI
// in exact mode, the labels bit-identical to the single-process solver's for the
// same features; on CUDA over NCCL in all-reduce mode), and every rank gathers
// the full label vectors (the batches draw images from all rows and the model
// holds them; rank 0 writes them into the checkpoint).
// The rank's loader yields the single-process pass's batches cut to its rows
// (Loader's `rows`): with --paugs > 0 every image keeps its single-process
// augmentation draws.
import { Dataset, Loader, AugLevel } from "../data";
import type { ResolvedOptions } from "../train/options";
import { HeadPassSummary, LabelPassResult, LabelPassRun, headPassSummary, passSinkhornOptions } from "../train/label_pass";
import { myRows, gatherLabels } from "./sinkhorn";

/** A label loader over this rank's rows: the single-process label loader's batches (same size, level, seed), cut to them. */
export function shardLabelLoader(ds: Dataset, o: ResolvedOptions, size: number): Loader {
  const [b, e] = myRows(ds.count);
  return new Loader(ds, { batchSize: Math.max(o.batchSize, 512), size, level: o.paugs as AugLevel, seed: o.seed + 1, shuffle: false, rows: [b, e] });
}

/** The pass over this rank's rows (`loader`: shardLabelLoader's) of the N images; `precision` is float32 here. */
export async function distributedLabelPass({ model, loader, o, pass, truth, precision, state }: LabelPassRun, N: number): Promise<LabelPassResult> {
  const tp = Date.now();
  const [b, e] = myRows(N);
  await model.setLabelRows(b, e);
  for await (const batch of loader.epoch(pass)) await model.collect(batch.data, batch.indices, { mode: o.labelMode, precision });
  const featureSeconds = (Date.now() - tp) / 1000;
  // CPU: exact mode (the single-process labels, bit for bit); CUDA: all-reduce mode over NCCL
  const exact = model.device !== "cuda";
  const results = await model.relabel(passSinkhornOptions(o, state).map((so) => ({ ...so, shard: { nTotal: N, exact } })));
  const heads: HeadPassSummary[] = [];
  for (let h = 0; h < o.hc; h++) {
    const res = results[h];
    state.labels[h] = await gatherLabels(res.labels);
    state.warm[h] = res.scaling.logR;
    heads.push(await headPassSummary(h, res, state.labels[h], truth));
  }
  await model.setLabels(state.labels); // the model's label state: trainStep takes each batch's labels by index
  await model.setLabelRows(0, 0);
  return { heads, seconds: (Date.now() - tp) / 1000, featureSeconds };
}
