// A seeded random subset of a dataset (train --subset N): the same N images
// for the same seed, in dataset order, with its own fingerprint, so eval,
// labels and clusters can rebuild it from the checkpoint's flags.
import { Prng } from "../prng";
import type { Dataset } from "./dataset";

/** The subset --subset n --seed seed trains on; `ds` itself when n is 0 or not below its size. */
export function subsetOf(ds: Dataset, n: number, seed: number): Dataset {
  if (!n || n >= ds.count) return ds;
  const pick = Prng.derive(seed, 11).permutation(ds.count).slice(0, n).sort();
  const map = (a: Int32Array) => a.map((i) => pick[i]);
  return {
    format: ds.format,
    name: `${ds.name} (subset ${n})`,
    split: ds.split,
    root: ds.root,
    count: n,
    channels: ds.channels,
    height: ds.height,
    width: ds.width,
    heights: Int32Array.from(pick, (i) => ds.heights[i]),
    widths: Int32Array.from(pick, (i) => ds.widths[i]),
    layout: ds.layout,
    labels: ds.labels ? Int32Array.from(pick, (i) => ds.labels![i]) : null,
    classes: ds.classes,
    paths: ds.paths ? Array.from(pick, (i) => ds.paths![i]) : null,
    fingerprint: `${ds.fingerprint}:subset${n}:${seed}`,
    skipped: ds.skipped,
    read: (indices: Int32Array) => ds.read(map(indices)),
    close: () => ds.close(),
  };
}
