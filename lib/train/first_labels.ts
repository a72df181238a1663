// A fresh run's first labels, per head: a shuffled equipartition (the
// reference: re-solved by Sinkhorn on the untrained network), the pseudo-labels
// an --init checkpoint carries (when they fit this data), or k-means / spectral
// clustering of the raw pixels (--init-labels). --init's weights are loaded here.
import { Model } from "../model";
import type { Dataset } from "../data";
import { Prng } from "../prng";
import { pixelKmeansLabels, pixelSpectralLabels, KmeansBaseline } from "../eval/baselines";
import type { ResolvedOptions } from "./options";

/** Shuffled equipartition: image i gets i mod K, permuted. */
export function initialLabels(n: number, k: number, seed: number, head: number): Int32Array {
  const perm = Prng.derive(seed, 3, head).permutation(n);
  const l = new Int32Array(n);
  for (let i = 0; i < n; i++) l[perm[i]] = i % k;
  return l;
}

/** The first labels of every head, and the raw-pixel k-means baseline when k-means made them. */
export async function firstLabels(
  model: Model,
  ds: Dataset,
  o: ResolvedOptions,
  log: (line: string) => void,
  record: (r: Record<string, unknown>) => void,
): Promise<{ labels: Int32Array[]; pixelInit: KmeansBaseline | null }> {
  const N = ds.count,
    numClasses = o.ncl;
  let labels = Array.from({ length: o.hc }, (_, h) => initialLabels(N, numClasses[h], o.seed, h));
  if (o.init) {
    const w = await model.loadPth(o.init);
    log(`initial weights from ${o.init}`);
    // the reference's checkpoints carry their pseudo-labels: use them when they fit this data
    if (w.labels && w.labels.length === o.hc && w.labels.every((l, h) => l.length === N && l.every((v) => v >= 0 && v < numClasses[h]))) {
      log(`initial pseudo-labels from ${o.init}`);
      return { labels: w.labels.map((l) => Int32Array.from(l)), pixelInit: null };
    }
  }
  if (o.initLabels === "kmeans") {
    const km = await pixelKmeansLabels(ds, numClasses);
    log(`first labels: k-means on the raw pixels (${km.seconds.toFixed(1)} s)`);
    return { labels: km.labels, pixelInit: km.baseline };
  }
  if (o.initLabels === "spectral") {
    const sp = await pixelSpectralLabels(ds, numClasses);
    labels = sp.labels;
    log(
      `first labels: spectral clustering of the raw pixels (${sp.seconds.toFixed(1)} s; ${(100 * sp.within).toFixed(1)}% of the kNN graph's edges inside clusters` +
        (sp.baseline ? `; NMI ${sp.baseline.nmi.toFixed(3)}, ARI ${sp.baseline.ari.toFixed(3)}, accuracy ${sp.baseline.accuracy.toFixed(3)})` : ")"),
    );
    record({ event: "baseline", spectralPixels: sp.baseline, within: sp.within });
  }
  return { labels, pixelInit: null };
}
