// The prefetching loader: shuffled per epoch from the seed, batches carry the
// dataset indices of their images, no drop_last (the last batch may be short),
// and the next `prefetch` batches are read and augmented (natively, off the JS
// thread) while the caller works on the current one.
//
// Two kinds of batch: epoch()/batch() give augmented float32 images (augmented
// on the CPU); sourceEpoch()/sourceBatch() give the same batches unaugmented:
// the uint8 source pixels plus the sampled parameters (an AugmentInput), which
// a model's trainStep augments where the model lives (on the GPU for a CUDA
// model). The parameters come from the same PRNG streams in both, so the two
// kinds describe exactly the same images; reading/decoding is prefetched in both.
//
// Reproducibility: epoch e's order comes from Prng.derive(seed, 1, e) and batch
// b's augmentation draws from Prng.derive(seed, 2, e, b). Nothing depends on
// how far ahead the loader ran, so a run resumed at (epoch, batch) with
// loader.epoch(epoch, { startBatch: batch }) sees exactly the batches the
// original run would have; the loader itself has no state to checkpoint.
import { Prng } from "../prng";
import {
  AugLevel,
  AugmentConfig,
  AugmentInput,
  GRAY_MEAN,
  GRAY_STD,
  IMAGENET_MEAN,
  IMAGENET_STD,
  augmentConfig,
  augmentInput,
  runAugment,
  sampleBatchParams,
  BatchParams,
} from "./augment";
import { Dataset } from "./dataset";

export interface LoaderOptions {
  batchSize: number;
  /** Model input side S: batches are (n, C, S, S). */
  size: number;
  /** Augmentation level 0-3 (the reference's --augs). */
  level: AugLevel;
  seed: number;
  /** Shuffle each epoch (default true); false keeps dataset order. */
  shuffle?: boolean;
  /** Batches prepared ahead of the one being consumed (default 2; 0 = none). */
  prefetch?: number;
  /** Output channels: the dataset's (default), or 3 from 1-channel data (replicated). */
  outChannels?: 1 | 3;
  /** Normalisation; default ImageNet mean/std for 3 channels, 0.5/0.5 for 1 channel. */
  mean?: number[];
  std?: number[];
  /** OpenMP threads per augmentation call; default the addon's setting (--workers sets it). */
  threads?: number;
  /** RandomResizedCrop area range (levels 2-3); default the level's. */
  scale?: [number, number];
  /**
   * Data-parallel training (lib/distributed): yield only part `index` of `count`
   * of every batch, the contiguous slice partRange(n, index, count) of the batch
   * a single process would get. The batch order and every image's augmentation
   * draws stay those of that batch (the draws of the images before the slice are
   * made and dropped), so R parts together are the single-process batch.
   */
  part?: { index: number; count: number };
  /**
   * Row-sharded label passes (lib/distributed/label_pass.ts): an unshuffled
   * loader that yields only dataset rows [begin, end): the batches of the
   * single-process epoch that hold them, cut to them (batch i here is batch
   * floor(begin / batchSize) + i there). Every image keeps the augmentation draws
   * it has in the single-process batch (the whole batch's draws are made and the
   * other images' dropped), so the ranks' rows together are the single-process pass.
   */
  rows?: [number, number];
}

/** The slice [begin, end) of an n-image batch that part `index` of `count` takes. */
export function partRange(n: number, index: number, count: number): [number, number] {
  return [Math.floor((n * index) / count), Math.floor((n * (index + 1)) / count)];
}

export interface Batch {
  epoch: number;
  /** Batch number within the epoch. */
  index: number;
  /** Dataset indices of the images, in batch order. */
  indices: Int32Array;
  /** Images in this batch (batchSize, or fewer for the last). */
  size: number;
  /** (size, channels, S, S) float32, normalised. */
  data: Float32Array;
  shape: [number, number, number, number];
  /** Ground-truth labels of the images (evaluation only), or null. */
  labels: Int32Array | null;
}

/** A batch whose augmentation has not run yet: what sourceEpoch() yields. */
export interface SourceBatchJob extends Omit<Batch, "data"> {
  /** Source pixels + descriptor + parameters; model.trainStep(input, ...) augments and trains. */
  input: AugmentInput;
}

export class Loader {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly size: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly prefetch: number;
  readonly outChannels: 1 | 3;
  readonly mean: number[];
  readonly std: number[];
  readonly threads: number | undefined;
  readonly config: AugmentConfig;
  readonly batchesPerEpoch: number;
  readonly part: { index: number; count: number } | null;
  readonly rows: [number, number] | null;
  /** With rows: the single-process batch number of this loader's batch 0. */
  private readonly firstBatch: number;
  private cachedOrder: { epoch: number; order: Int32Array } | null = null;

  constructor(dataset: Dataset, o: LoaderOptions) {
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new RangeError(`loader: batchSize must be a positive integer, got ${o.batchSize}`);
    if (!Number.isInteger(o.seed) || o.seed < 0) throw new RangeError(`loader: seed must be a non-negative integer, got ${o.seed}`);
    const prefetch = o.prefetch ?? 2;
    if (!Number.isInteger(prefetch) || prefetch < 0) throw new RangeError(`loader: prefetch must be a non-negative integer, got ${prefetch}`);
    this.dataset = dataset;
    this.batchSize = o.batchSize;
    this.size = o.size;
    this.seed = o.seed;
    this.shuffle = o.shuffle ?? true;
    this.prefetch = prefetch;
    this.outChannels = o.outChannels ?? dataset.channels;
    if (this.outChannels !== dataset.channels && !(dataset.channels === 1 && this.outChannels === 3)) {
      throw new RangeError(`loader: cannot make ${this.outChannels}-channel batches from ${dataset.channels}-channel data`);
    }
    this.mean = o.mean ?? (this.outChannels === 3 ? IMAGENET_MEAN : GRAY_MEAN);
    this.std = o.std ?? (this.outChannels === 3 ? IMAGENET_STD : GRAY_STD);
    if (this.mean.length !== this.outChannels || this.std.length !== this.outChannels) {
      throw new RangeError(`loader: mean/std need ${this.outChannels} values each`);
    }
    this.threads = o.threads;
    this.config = augmentConfig(o.level, o.size, dataset.channels);
    if (o.scale) {
      const [a, b] = o.scale;
      if (!(a > 0 && a <= b && b <= 1)) throw new RangeError(`loader: scale must satisfy 0 < min <= max <= 1, got [${a}, ${b}]`);
      this.config = { ...this.config, scale: [a, b] };
    }
    this.rows = o.rows ?? null;
    this.firstBatch = 0;
    if (this.rows) {
      const [b, e] = this.rows;
      if (!(Number.isInteger(b) && Number.isInteger(e) && b >= 0 && b < e && e <= dataset.count))
        throw new RangeError(`loader: rows must be [begin, end) with 0 <= begin < end <= ${dataset.count}, got ${JSON.stringify(this.rows)}`);
      if (this.shuffle || o.part) throw new RangeError("loader: rows needs shuffle: false and no part");
      this.firstBatch = Math.floor(b / this.batchSize);
      this.batchesPerEpoch = Math.ceil(e / this.batchSize) - this.firstBatch;
    } else {
      this.batchesPerEpoch = Math.ceil(dataset.count / this.batchSize);
    }
    this.part = o.part ?? null;
    if (this.part && !(Number.isInteger(this.part.count) && this.part.count >= 1 && Number.isInteger(this.part.index) && this.part.index >= 0 && this.part.index < this.part.count))
      throw new RangeError(`loader: part must be { index in [0, count), count >= 1 }, got ${JSON.stringify(this.part)}`);
  }

  /** The order of dataset indices in an epoch. */
  order(epoch: number): Int32Array {
    if (this.cachedOrder && this.cachedOrder.epoch === epoch) return this.cachedOrder.order;
    let order: Int32Array;
    if (this.shuffle) order = Prng.derive(this.seed, 1, epoch).permutation(this.dataset.count);
    else {
      order = new Int32Array(this.dataset.count);
      for (let i = 0; i < order.length; i++) order[i] = i;
    }
    this.cachedOrder = { epoch, order };
    return order;
  }

  /** Batch `index` of epoch `epoch` (any order, any time: the result depends only on seed, epoch and index). */
  async batch(epoch: number, index: number): Promise<Batch> {
    const { input, ...rest } = await this.sourceBatch(epoch, index);
    const data = await runAugment(input);
    return { ...rest, data };
  }

  /** The same batch as batch(epoch, index), with its augmentation still to run (see SourceBatchJob). */
  async sourceBatch(epoch: number, index: number): Promise<SourceBatchJob> {
    if (!Number.isInteger(index) || index < 0 || index >= this.batchesPerEpoch) {
      throw new RangeError(`loader: batch ${index} out of range [0, ${this.batchesPerEpoch})`);
    }
    const order = this.order(epoch);
    const g = this.firstBatch + index; // the single-process batch number (differs with rows only)
    const whole = order.slice(g * this.batchSize, Math.min(order.length, (g + 1) * this.batchSize));
    let indices = whole;
    let partParams: BatchParams | null = null;
    const cut = this.part
      ? partRange(whole.length, this.part.index, this.part.count)
      : this.rows
        ? [Math.max(this.rows[0] - g * this.batchSize, 0), Math.min(this.rows[1] - g * this.batchSize, whole.length)]
        : null;
    if (cut) {
      // the whole batch's draws (sizes from the dataset), this part's images
      const [a, b] = cut;
      indices = whole.slice(a, b);
      const hs = Int32Array.from(whole, (i) => this.dataset.heights[i]);
      const ws = Int32Array.from(whole, (i) => this.dataset.widths[i]);
      const all = sampleBatchParams(this.config, hs, ws, Prng.derive(this.seed, 2, epoch, g));
      partParams = sliceParams(all, a, b);
    }
    const n = indices.length;
    const src = await this.dataset.read(indices);
    const params = partParams ?? sampleBatchParams(this.config, src.heights, src.widths, Prng.derive(this.seed, 2, epoch, g));
    const input = augmentInput(src, params, {
      channels: this.dataset.channels,
      layout: this.dataset.layout,
      size: this.size,
      outChannels: this.outChannels,
      mean: this.mean,
      std: this.std,
      threads: this.threads,
    });
    let labels: Int32Array | null = null;
    if (this.dataset.labels) {
      labels = new Int32Array(n);
      for (let k = 0; k < n; k++) labels[k] = this.dataset.labels[indices[k]];
    }
    return { epoch, index, indices, size: n, input, shape: [n, this.outChannels, this.size, this.size], labels };
  }

  /** The batches of an epoch, from startBatch on, with `prefetch` batches prepared ahead. */
  epoch(epoch: number, opts: { startBatch?: number } = {}): AsyncGenerator<Batch, void, undefined> {
    return this.prefetched(epoch, opts.startBatch ?? 0, (e, i) => this.batch(e, i));
  }

  /**
   * The batches of epoch() unaugmented (source pixels + parameters), prefetched
   * the same way (reading and decoding run ahead; the augmentation is left to
   * the model's trainStep).
   */
  sourceEpoch(epoch: number, opts: { startBatch?: number } = {}): AsyncGenerator<SourceBatchJob, void, undefined> {
    return this.prefetched(epoch, opts.startBatch ?? 0, (e, i) => this.sourceBatch(e, i));
  }

  private async *prefetched<T>(epoch: number, startBatch: number, make: (epoch: number, index: number) => Promise<T>): AsyncGenerator<T, void, undefined> {
    let next = startBatch;
    if (!Number.isInteger(next) || next < 0 || next > this.batchesPerEpoch) {
      throw new RangeError(`loader: startBatch ${next} out of range [0, ${this.batchesPerEpoch}]`);
    }
    const queue: Promise<T>[] = [];
    const start = () => {
      const p = make(epoch, next++);
      p.catch(() => undefined); // awaited below; this only stops an early exit from leaving it unhandled
      queue.push(p);
    };
    while (next < this.batchesPerEpoch || queue.length) {
      if (!queue.length) start();
      const current = queue.shift()!;
      while (queue.length < this.prefetch && next < this.batchesPerEpoch) start(); // in flight while the caller works
      yield await current;
    }
  }
}

/** Images [a, b) of a batch's augmentation parameters. */
function sliceParams(p: BatchParams, a: number, b: number): BatchParams {
  return {
    n: b - a,
    boxes: p.boxes.slice(4 * a, 4 * b),
    flip: p.flip.slice(a, b),
    gray: p.gray.slice(a, b),
    factors: p.factors.slice(4 * a, 4 * b),
    order: p.order.slice(4 * a, 4 * b),
  };
}
