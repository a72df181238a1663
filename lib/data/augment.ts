// Augmentation parameters, sampled in TypeScript from a seeded PRNG with
// torchvision's rules; the pixels are done natively in one call per batch
// (native/cpu/augment.cpp, conventions in native/include/sln/augment.h), or,
// for a CUDA model's training batches, on the GPU by trainStep(AugmentInput)
// (sln_cuda_augment, native/cuda/augment.cu) from the same parameters.
//
// Levels (the reference's --augs), for a model input of S pixels and
// R = round(S * 256 / 224) (256 for 224, 32 for 28, 37 for 32):
//   0  Resize(R), CenterCrop(S)
//   1  level 0 + RandomHorizontalFlip
//   2  Resize(R), RandomResizedCrop(S), RandomHorizontalFlip
//   3  RandomResizedCrop(S), RandomGrayscale(0.2), ColorJitter(0.4, 0.4, 0.4, 0.4), RandomHorizontalFlip
// RandomResizedCrop: scale (0.08, 1), ratio (3/4, 4/3), 10 tries then the
// central fallback; for small inputs (S <= 32) scale (0.2, 1). Grayscale data
// (1 channel) gets no RandomGrayscale and no ColorJitter.
// Resize then crop is one resample from the source (the crop box mapped back
// through the resize), not two.
import { native, NativeAugmentDesc } from "../binding";
import { Prng } from "../prng";
import { PixelLayout, SourceBatch } from "./dataset";

export type AugLevel = 0 | 1 | 2 | 3;

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];
/** For 1-channel data: x = (v - 0.5) / 0.5, i.e. [-1, 1] (a fixed choice, not the dataset's statistics). */
export const GRAY_MEAN = [0.5];
export const GRAY_STD = [0.5];

export interface AugmentConfig {
  level: AugLevel;
  /** Output side S. */
  size: number;
  /** Resize target R (levels 0-2). */
  resize: number;
  /** RandomResizedCrop area range and aspect-ratio range. */
  scale: [number, number];
  ratio: [number, number];
  flip: boolean;
  /** RandomGrayscale probability (0 when off). */
  grayscale: number;
  /** ColorJitter strengths (brightness, contrast, saturation, hue); null when off. */
  jitter: [number, number, number, number] | null;
}

export function augmentConfig(level: number, size: number, channels: 1 | 3): AugmentConfig {
  if (![0, 1, 2, 3].includes(level)) throw new RangeError(`augmentation level must be 0, 1, 2 or 3, got ${level}`);
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`augmentation size must be a positive integer, got ${size}`);
  const color = channels === 3 && level === 3;
  return {
    level: level as AugLevel,
    size,
    resize: Math.round((size * 256) / 224),
    scale: size <= 32 ? [0.2, 1] : [0.08, 1],
    ratio: [3 / 4, 4 / 3],
    flip: level >= 1,
    grayscale: color ? 0.2 : 0,
    jitter: color ? [0.4, 0.4, 0.4, 0.4] : null,
  };
}

/** Python's round(): half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision RandomResizedCrop.get_params: [top, left, height, width] (integers). */
export function randomResizedCrop(
  height: number,
  width: number,
  scale: [number, number],
  ratio: [number, number],
  rng: Prng,
): [number, number, number, number] {
  const area = height * width;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let t = 0; t < 10; t++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logRatio[0], logRatio[1]));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const i = rng.int(0, height - h + 1);
      const j = rng.int(0, width - w + 1);
      return [i, j, h, w];
    }
  }
  // central crop fallback
  const inRatio = width / height;
  let w: number;
  let h: number;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    w = width;
    h = roundHalfEven(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    h = height;
    w = roundHalfEven(h * Math.max(ratio[0], ratio[1]));
  } else {
    w = width;
    h = height;
  }
  return [Math.floor((height - h) / 2), Math.floor((width - w) / 2), h, w];
}

/** torchvision Resize(size) output (height, width): shorter side = size, longer int(size * long / short). */
export function resizeOutput(h: number, w: number, size: number): [number, number] {
  if (w <= h) return [Math.floor((size * h) / w), size];
  return [size, Math.floor((size * w) / h)];
}

/** Per-image parameters, as the native side takes them. */
export interface ImageParams {
  /** x0, y0, x1, y1 in source pixel coordinates. */
  box: [number, number, number, number];
  flip: boolean;
  gray: boolean;
  /** brightness, contrast, saturation, hue (identity: 1, 1, 1, 0). */
  factors: [number, number, number, number];
  /** Order of the four jitter adjustments (0 b, 1 c, 2 s, 3 h). */
  order: [number, number, number, number];
}

/** Sample one image's parameters (draw order follows torchvision's transforms). */
export function sampleImageParams(cfg: AugmentConfig, height: number, width: number, rng: Prng): ImageParams {
  const S = cfg.size;
  let box: [number, number, number, number];
  if (cfg.level <= 1) {
    const [rh, rw] = resizeOutput(height, width, cfg.resize);
    const sy = height / rh;
    const sx = width / rw;
    const top = roundHalfEven((rh - S) / 2);
    const left = roundHalfEven((rw - S) / 2);
    box = [left * sx, top * sy, (left + S) * sx, (top + S) * sy];
  } else if (cfg.level === 2) {
    const [rh, rw] = resizeOutput(height, width, cfg.resize);
    const sy = height / rh;
    const sx = width / rw;
    const [i, j, h, w] = randomResizedCrop(rh, rw, cfg.scale, cfg.ratio, rng);
    box = [j * sx, i * sy, (j + w) * sx, (i + h) * sy];
  } else {
    const [i, j, h, w] = randomResizedCrop(height, width, cfg.scale, cfg.ratio, rng);
    box = [j, i, j + w, i + h];
  }
  let gray = false;
  if (cfg.grayscale > 0) gray = rng.random() < cfg.grayscale;
  let factors: [number, number, number, number] = [1, 1, 1, 0];
  let order: [number, number, number, number] = [0, 1, 2, 3];
  if (cfg.jitter) {
    order = Array.from(rng.permutation(4)) as [number, number, number, number];
    const [b, c, s, h] = cfg.jitter;
    factors = [rng.uniform(Math.max(0, 1 - b), 1 + b), rng.uniform(Math.max(0, 1 - c), 1 + c), rng.uniform(Math.max(0, 1 - s), 1 + s), rng.uniform(-h, h)];
  }
  const flip = cfg.flip ? rng.random() < 0.5 : false;
  return { box, flip, gray, factors, order };
}

/** Struct-of-arrays parameters for a batch (what the native call takes). */
export interface BatchParams {
  n: number;
  boxes: Float64Array; // (n, 4)
  flip: Uint8Array;
  gray: Uint8Array;
  factors: Float32Array; // (n, 4)
  order: Uint8Array; // (n, 4)
}

export function sampleBatchParams(cfg: AugmentConfig, heights: Int32Array, widths: Int32Array, rng: Prng): BatchParams {
  const n = heights.length;
  const p: BatchParams = {
    n,
    boxes: new Float64Array(4 * n),
    flip: new Uint8Array(n),
    gray: new Uint8Array(n),
    factors: new Float32Array(4 * n),
    order: new Uint8Array(4 * n),
  };
  for (let k = 0; k < n; k++) setImageParams(p, k, sampleImageParams(cfg, heights[k], widths[k], rng));
  return p;
}

export function setImageParams(p: BatchParams, k: number, ip: ImageParams): void {
  p.boxes.set(ip.box, 4 * k);
  p.flip[k] = ip.flip ? 1 : 0;
  p.gray[k] = ip.gray ? 1 : 0;
  p.factors.set(ip.factors, 4 * k);
  p.order.set(ip.order, 4 * k);
}

export function getImageParams(p: BatchParams, k: number): ImageParams {
  return {
    box: Array.from(p.boxes.subarray(4 * k, 4 * k + 4)) as ImageParams["box"],
    flip: p.flip[k] !== 0,
    gray: p.gray[k] !== 0,
    factors: Array.from(p.factors.subarray(4 * k, 4 * k + 4)) as ImageParams["factors"],
    order: Array.from(p.order.subarray(4 * k, 4 * k + 4)) as ImageParams["order"],
  };
}

export interface ApplyOptions {
  channels: 1 | 3;
  layout: PixelLayout;
  size: number;
  outChannels: 1 | 3;
  mean: number[];
  std: number[];
  /** OpenMP threads for this call; default the addon's setting. */
  threads?: number;
}

/**
 * A batch's augmentation as one job: the uint8 source pixels plus the native
 * descriptor (sizes, offsets and the sampled parameters). applyAugment runs it
 * on the CPU; a model's trainStep takes it directly and runs it where the
 * model lives (on the GPU for a CUDA model, into its input buffer).
 */
export interface AugmentInput {
  src: Uint8Array;
  desc: NativeAugmentDesc;
}

/** The job for (src, params): nothing is computed here. */
export function augmentInput(src: SourceBatch, params: BatchParams, o: ApplyOptions): AugmentInput {
  return {
    src: src.data,
    desc: {
      n: params.n,
      channels: o.channels,
      layout: o.layout,
      offsets: src.offsets,
      heights: src.heights,
      widths: src.widths,
      boxes: params.boxes,
      flip: params.flip,
      gray: params.gray,
      factors: params.factors,
      order: params.order,
      outHeight: o.size,
      outWidth: o.size,
      outChannels: o.outChannels,
      mean: o.mean,
      std: o.std,
      threads: o.threads,
    },
  };
}

/** Run a job on the CPU; out is (n, outChannels, outHeight, outWidth). */
export function runAugment(job: AugmentInput, out?: Float32Array): Promise<Float32Array> {
  const d = job.desc;
  return native().augmentBatch(job.src, d, out ?? new Float32Array(d.n * d.outChannels * d.outHeight * d.outWidth));
}

/** Apply parameters to source images natively; out is (n, outChannels, size, size). */
export function applyAugment(src: SourceBatch, params: BatchParams, o: ApplyOptions, out?: Float32Array): Promise<Float32Array> {
  return runAugment(augmentInput(src, params, o), out);
}
