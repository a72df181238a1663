// The built-in synthetic labelled set, used when --data is omitted: 10 classes
// of shapes (disk, ring, square, frame, triangle, plus, cross, horizontal bars,
// vertical bars, checker), 32x32 RGB, each drawn with random position, size,
// small rotation and colour on a random gradient-and-texture background with
// pixel noise (native/cpu/synthetic.cpp). Only the shape carries the class.
// Seeded: the same (seed, split, count) gives the same bytes on any machine and
// thread count. Balanced: image i has label i % 10.
import { native } from "../binding";
import { Prng } from "../prng";
import { InMemoryDataset, Split, uniformOffsets } from "./dataset";
import { DataUsageError } from "./errors";

export interface SyntheticOptions {
  seed?: number;
  /** Images in the split; default 10000 (train) / 2000 (test). */
  count?: number;
}

export const SYNTHETIC_DEFAULT_COUNT: Record<Split, number> = { train: 10000, test: 2000 };

export async function loadSynthetic(split: Split, opts: SyntheticOptions = {}): Promise<InMemoryDataset> {
  const seed = opts.seed ?? 0;
  const count = opts.count ?? SYNTHETIC_DEFAULT_COUNT[split];
  if (!Number.isInteger(count) || count < 1 || count > 1e7) throw new DataUsageError(`synthetic: count must be an integer in [1, 1e7], got ${count}`);
  if (!Number.isInteger(seed) || seed < 0) throw new DataUsageError(`synthetic: seed must be a non-negative integer, got ${seed}`);
  // train and test come from different streams of the same seed
  const stream = Prng.derive(seed, 0x5e1a, split === "train" ? 0 : 1);
  const nativeSeed = stream.nextU32() * 2097152 + (stream.nextU32() >>> 11);
  const r = await native().syntheticImages(nativeSeed, count);
  const px = r.size * r.size * 3;
  return new InMemoryDataset({
    format: "synthetic",
    name: "synthetic",
    split,
    root: null,
    channels: 3,
    layout: "HWC",
    data: r.images,
    offsets: uniformOffsets(count, 0, px),
    heights: new Int32Array(count).fill(r.size),
    widths: new Int32Array(count).fill(r.size),
    labels: r.labels,
    classes: r.classes,
    paths: null,
    fingerprint: `synthetic:v2:${split}:seed=${seed}:count=${count}`,
  });
}
