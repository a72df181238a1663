// Baselines every clustering is compared with: k-means (lib/kmeans.ts) on the
// raw pixels of a data set, and on learned features. Raw pixels: the uint8
// values / 255 of images of one common size up to 64 px (the layout the data
// stores), larger or mixed-size images resized and centre-cropped to 32 px
// (augmentation level 0) first. train prints the raw-pixel NMI once per data
// set and k, cached beside the data cache (defaultCacheDir()/baselines).
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { Dataset, Loader, defaultCacheDir } from "../data";
import { kmeans, KmeansOptions, spectral } from "../kmeans";
import { clusteringScores, clusterAccuracy } from "../metrics";
import { writeFileAtomic } from "../safetensors";

/** Side of the images the raw-pixel baseline clusters when the data's own are larger or mixed. */
export const PIXEL_BASELINE_SIZE = 32;

export interface BaselineQuality {
  nmi: number;
  ari: number;
  accuracy: number;
}

export interface KmeansBaseline extends BaselineQuality {
  k: number;
  /** The clustering: k-means (absent in older records) or spectral (the spectral recipe's first labels, PIXEL_SPECTRAL). */
  method?: "k-means" | "spectral";
  /** What was clustered: "raw pixels (28x28x1)" or "penultimate features (128-d)". */
  input: string;
  seconds: number;
}

/** Rows of pixel values in [0, 1] (raw, or level-0 resized to 32 px; see the header) and their dimension. */
export async function pixelRows(ds: Dataset): Promise<{ rows: Float32Array; d: number; input: string }> {
  const n = ds.count;
  const all = Int32Array.from({ length: n }, (_, i) => i);
  if (ds.height > 0 && ds.height === ds.width && ds.height <= 64) {
    const d = ds.channels * ds.height * ds.width;
    const rows = new Float32Array(n * d);
    const step = 4096;
    for (let s = 0; s < n; s += step) {
      const idx = all.subarray(s, Math.min(n, s + step));
      const src = await ds.read(idx);
      for (let i = 0; i < idx.length; i++) {
        const o = src.offsets[i];
        const r = (s + i) * d;
        for (let j = 0; j < d; j++) rows[r + j] = src.data[o + j] / 255;
      }
    }
    return { rows, d, input: `raw pixels (${ds.height}x${ds.width}x${ds.channels})` };
  }
  const S = PIXEL_BASELINE_SIZE;
  const d = ds.channels * S * S;
  const rows = new Float32Array(n * d);
  // level 0 normalises with mean 0.5 / std 0.5 (gray) or ImageNet's; mean 0 / std 1 keeps [0, 1]
  const zeros = Array.from({ length: ds.channels }, () => 0);
  const ones = Array.from({ length: ds.channels }, () => 1);
  const loader = new Loader(ds, { batchSize: 256, size: S, level: 0, seed: 0, shuffle: false, mean: zeros, std: ones });
  for await (const b of loader.epoch(0)) for (let i = 0; i < b.size; i++) rows.set(b.data.subarray(i * d, (i + 1) * d), b.indices[i] * d);
  return { rows, d, input: `pixels resized to ${S}x${S}x${ds.channels}` };
}

async function scores(pred: Int32Array, truth: Int32Array): Promise<BaselineQuality> {
  const s = await clusteringScores(pred, truth);
  const a = await clusterAccuracy(pred, truth);
  return { nmi: s.nmi, ari: s.ari, accuracy: a.accuracy };
}

/** k-means of `rows` (n x d) into k clusters, scored against `truth`. */
export async function kmeansBaseline(
  rows: Float32Array,
  n: number,
  d: number,
  k: number,
  truth: Int32Array,
  input: string,
  opts: KmeansOptions = {},
): Promise<KmeansBaseline> {
  const t = Date.now();
  const r = await kmeans(rows, n, d, k, { restarts: 3, seed: 0, ...opts });
  return { k, input, ...(await scores(r.labels, truth)), seconds: (Date.now() - t) / 1000 };
}

function cacheFile(ds: Dataset, k: number): string {
  const key = crypto.createHash("sha1").update(`kmeans-pixels:v1:${ds.fingerprint}:k=${k}`).digest("hex").slice(0, 24);
  return path.join(defaultCacheDir(), "baselines", `${key}.json`);
}

/**
 * Raw-pixel k-means of `ds` into k clusters against its labels, cached by the
 * data's fingerprint and k (null when the data has no labels). A cache that
 * cannot be read or written is recomputed / skipped silently: it is a cache.
 */
export async function cachedPixelBaseline(ds: Dataset, k: number): Promise<(KmeansBaseline & { cached: boolean }) | null> {
  if (!ds.labels || k > ds.count) return null;
  const file = cacheFile(ds, k);
  try {
    const c = JSON.parse(fs.readFileSync(file, "utf8"));
    if (c.fingerprint === ds.fingerprint && c.k === k && typeof c.nmi === "number") return { ...c.result, cached: true };
  } catch {
    /* not cached yet */
  }
  const { rows, d, input } = await pixelRows(ds);
  const result = await kmeansBaseline(rows, ds.count, d, k, ds.labels, input);
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, JSON.stringify({ fingerprint: ds.fingerprint, k, nmi: result.nmi, result }) + "\n");
  } catch {
    /* a read-only cache directory: nothing cached */
  }
  return { ...result, cached: false };
}

/**
 * eval's baselines: for every distinct head size k, k-means on the raw pixels
 * of `ds` and on the learned features `feats` (n x dim) of the same images.
 */
export async function evalBaselines(
  ds: Dataset,
  feats: Float32Array,
  dim: number,
  ks: number[],
  log: (line: string) => void = () => {},
): Promise<KmeansBaseline[]> {
  const out: KmeansBaseline[] = [];
  if (!ds.labels) return out;
  const uniq = [...new Set(ks)].filter((k) => k <= ds.count);
  if (uniq.length === 0) return out;
  const px = await pixelRows(ds);
  for (const k of uniq) {
    log(`k-means (k=${k}) on the ${px.input} of ${ds.count} ${ds.split} images ...`);
    out.push(await kmeansBaseline(px.rows, ds.count, px.d, k, ds.labels, px.input));
    log(`k-means (k=${k}) on the penultimate features (${dim}-d) of ${ds.count} ${ds.split} images ...`);
    out.push(await kmeansBaseline(feats, ds.count, dim, k, ds.labels, `penultimate features (${dim}-d)`));
    if (k <= SPECTRAL_BASELINE_MAX_K && ds.count > k) {
      log(`spectral clustering (k=${k}) of the ${px.input} of ${ds.count} ${ds.split} images ...`);
      const t = Date.now();
      const r = await spectral(px.rows, ds.count, px.d, k, { ...PIXEL_SPECTRAL, seed: 0 });
      out.push({ k, method: "spectral", input: px.input, ...(await scores(r.labels, ds.labels)), seconds: (Date.now() - t) / 1000 });
    }
  }
  return out;
}

/** eval's spectral baseline runs for heads of at most this many clusters. */
const SPECTRAL_BASELINE_MAX_K = 256;

/** Report lines for eval's table. */
export function formatBaselines(b: KmeansBaseline[], split: string): string[] {
  return b.map(
    (x) =>
      `${x.method ?? "k-means"} k=${x.k} on ${x.input} of the ${split} images: NMI ${x.nmi.toFixed(3)}, ARI ${x.ari.toFixed(3)}, ` +
      `acc ${(100 * x.accuracy).toFixed(2)}% (${x.seconds.toFixed(1)} s)`,
  );
}

/**
 * The kmeans recipe's first labels: k-means (3 restarts, seed 0) of the raw
 * pixels for every head size; head 0's is also the raw-pixel baseline (scored
 * and cached when the data has labels).
 */
export async function pixelKmeansLabels(ds: Dataset, ks: number[]): Promise<{ labels: Int32Array[]; baseline: KmeansBaseline | null; seconds: number }> {
  const t = Date.now();
  const px = await pixelRows(ds);
  const byK = new Map<number, Int32Array>();
  let baseline: KmeansBaseline | null = null;
  for (const k of ks) {
    if (byK.has(k)) continue;
    const tk = Date.now();
    const r = await kmeans(px.rows, ds.count, px.d, k, { restarts: 3, seed: 0 });
    byK.set(k, r.labels);
    if (k === ks[0] && ds.labels) {
      baseline = { k, input: px.input, ...(await scores(r.labels, ds.labels)), seconds: (Date.now() - tk) / 1000 };
      try {
        const file = cacheFile(ds, k);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        writeFileAtomic(file, JSON.stringify({ fingerprint: ds.fingerprint, k, nmi: baseline.nmi, result: baseline }) + "\n");
      } catch {
        /* a read-only cache directory: nothing cached */
      }
    }
  }
  return { labels: ks.map((k) => byK.get(k)!.slice()), baseline, seconds: (Date.now() - t) / 1000 };
}

/** The spectral recipe's first-label settings (core/spectral.h): 10 neighbours, the mean + 64 principal directions. */
export const PIXEL_SPECTRAL = { neighbors: 10, dims: 64, restarts: 10 };

/**
 * The spectral recipe's first labels: spectral clustering of the raw pixels
 * (PIXEL_SPECTRAL, seed 0) for every head size; head 0's scored against the
 * classes when the data has labels. `within` is the share of the pixel graph's
 * edges inside a cluster (label-free).
 */
export async function pixelSpectralLabels(
  ds: Dataset,
  ks: number[],
): Promise<{ labels: Int32Array[]; baseline: (BaselineQuality & { k: number; input: string; seconds: number }) | null; within: number; seconds: number }> {
  const t = Date.now();
  const px = await pixelRows(ds);
  const byK = new Map<number, Int32Array>();
  let baseline = null;
  let within = NaN;
  for (const k of ks) {
    if (byK.has(k)) continue;
    const tk = Date.now();
    const r = await spectral(px.rows, ds.count, px.d, k, { ...PIXEL_SPECTRAL, seed: 0 });
    byK.set(k, r.labels);
    if (k === ks[0]) {
      within = r.within;
      if (ds.labels) baseline = { k, input: px.input, ...(await scores(r.labels, ds.labels)), seconds: (Date.now() - tk) / 1000 };
    }
  }
  return { labels: ks.map((k) => byK.get(k)!.slice()), baseline, within, seconds: (Date.now() - t) / 1000 };
}
