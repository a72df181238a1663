// The common Dataset interface every source implements, and the in-memory
// implementation most of them use (one uint8 buffer, per-image byte offsets).

export type DataFormat = "imagefolder" | "idx" | "cifar" | "synthetic";
export const DATA_FORMATS: readonly DataFormat[] = ["imagefolder", "idx", "cifar", "synthetic"];

/** "train" or "test"; "val" is accepted as a synonym of "test" by openDataset. */
export type Split = "train" | "test";

/** Pixel layout of the uint8 storage: HWC (IDX, ImageFolder, synthetic) or CHW (CIFAR, as on disk). */
export type PixelLayout = "HWC" | "CHW";

/** uint8 source pixels for a set of images: image k starts at data[offsets[k]]. */
export interface SourceBatch {
  data: Uint8Array;
  offsets: Float64Array;
  heights: Int32Array;
  widths: Int32Array;
}

export interface Dataset {
  readonly format: DataFormat;
  /** Short human name: "fashion-mnist", "cifar-10", "imagefolder:/path", "synthetic". */
  readonly name: string;
  readonly split: Split;
  readonly root: string | null;
  readonly count: number;
  readonly channels: 1 | 3;
  /** Common image height/width, or 0 when sizes differ (ImageFolder); see heights/widths. */
  readonly height: number;
  readonly width: number;
  /** Per-image sizes (always filled). */
  readonly heights: Int32Array;
  readonly widths: Int32Array;
  readonly layout: PixelLayout;
  /** Ground-truth class per image (evaluation only; training never reads it), or null. */
  readonly labels: Int32Array | null;
  /** Class names, index = label. */
  readonly classes: string[];
  /** Per-image source path relative to root (ImageFolder), or null. */
  readonly paths: string[] | null;
  /** Identifies the exact data (content hash or cache key); stored in checkpoints. */
  readonly fingerprint: string;
  /** Images left out because they could not be decoded (each was warned about). */
  readonly skipped: number;
  /** Source pixels of the given images (zero-copy views for in-memory sets). */
  read(indices: Int32Array): Promise<SourceBatch>;
  /** Release file handles (a no-op for in-memory sets). */
  close(): Promise<void>;
}

/** The fields of a Dataset (everything but its methods). */
export type DatasetFields = Omit<Dataset, "read" | "close">;

export type InMemoryInit = Omit<DatasetFields, "count" | "height" | "width" | "skipped"> & {
  data: Uint8Array;
  offsets: Float64Array;
  skipped?: number;
};

// The Dataset fields are declared once (in Dataset) and merged into the class here;
// the constructor fills them from one object literal that the compiler checks is complete.
export interface InMemoryDataset extends DatasetFields {}

export class InMemoryDataset implements Dataset {
  readonly data: Uint8Array;
  readonly offsets: Float64Array;

  constructor(init: InMemoryInit) {
    const n = init.offsets.length;
    if (init.heights.length !== n || init.widths.length !== n) throw new Error("InMemoryDataset: offsets/heights/widths lengths differ");
    if (init.labels && init.labels.length !== n) throw new Error("InMemoryDataset: labels length differs from the image count");
    if (init.paths && init.paths.length !== n) throw new Error("InMemoryDataset: paths length differs from the image count");
    this.data = init.data;
    this.offsets = init.offsets;
    let h = n > 0 ? init.heights[0] : 0;
    let w = n > 0 ? init.widths[0] : 0;
    for (let i = 1; i < n; i++) {
      if (init.heights[i] !== h || init.widths[i] !== w) {
        h = 0;
        w = 0;
        break;
      }
    }
    const fields: DatasetFields = {
      format: init.format,
      name: init.name,
      split: init.split,
      root: init.root,
      count: n,
      channels: init.channels,
      height: h,
      width: w,
      heights: init.heights,
      widths: init.widths,
      layout: init.layout,
      labels: init.labels,
      classes: init.classes,
      paths: init.paths,
      fingerprint: init.fingerprint,
      skipped: init.skipped ?? 0,
    };
    Object.assign(this, fields);
  }

  async read(indices: Int32Array): Promise<SourceBatch> {
    const k = indices.length;
    const offsets = new Float64Array(k);
    const heights = new Int32Array(k);
    const widths = new Int32Array(k);
    for (let j = 0; j < k; j++) {
      const i = indices[j];
      if (!(i >= 0 && i < this.count)) throw new RangeError(`dataset.read: index ${i} out of range [0, ${this.count})`);
      offsets[j] = this.offsets[i];
      heights[j] = this.heights[i];
      widths[j] = this.widths[i];
    }
    return { data: this.data, offsets, heights, widths };
  }

  async close(): Promise<void> {}
}

/** Offsets of n equal images of `bytes` bytes starting at `start`, `stride` bytes apart. */
export function uniformOffsets(n: number, start: number, stride: number): Float64Array {
  const o = new Float64Array(n);
  for (let i = 0; i < n; i++) o[i] = start + i * stride;
  return o;
}
