// The typed native binding: the only module that loads the addon.
import * as fs from "node:fs";
import * as path from "node:path";
import { AddonLoadError } from "./errors";
import type { SinkhornDtype, SinkhornFeaturesFn, SinkhornOptions, SinkhornResult } from "./sinkhorn_types";
import type { StepOptions, StepResult, TensorInfo, TrunkLayer, Tap } from "./model_types";

/** Package root: the nearest parent directory whose package.json is ours. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const p = path.join(dir, "package.json");
    if (fs.existsSync(p)) {
      try {
        if (JSON.parse(fs.readFileSync(p, "utf8")).name === "selflabel-native") return dir;
      } catch {
        /* keep walking */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error("selflabel-native: cannot find the package root from " + __dirname);
    dir = up;
  }
}

export interface NativeInfo {
  napiVersion: number;
  cpu: string;
  threads: number;
  /** The CPU computes bfloat16 natively (AVX512-BF16 or AMX): `--label-precision auto` picks bf16. */
  bf16: boolean;
}

/** Descriptor of augmentBatch (see native/include/sln/augment.h). */
export interface NativeAugmentDesc {
  n: number;
  channels: number;
  layout: "HWC" | "CHW";
  offsets: Float64Array; // (n) byte offset of each image in src
  heights: Int32Array; // (n)
  widths: Int32Array; // (n)
  boxes: Float64Array; // (n, 4) x0, y0, x1, y1
  flip: Uint8Array; // (n)
  gray: Uint8Array; // (n)
  factors: Float32Array; // (n, 4) brightness, contrast, saturation, hue
  order: Uint8Array; // (n, 4) permutation of 0..3
  outHeight: number;
  outWidth: number;
  outChannels: number;
  mean: number[];
  std: number[];
  threads?: number;
}

export interface NativeSynthetic {
  images: Uint8Array; // (count, size, size, 3)
  labels: Int32Array;
  classes: string[];
  size: number;
}

/** metricsScores' result: the metrics asked for (bit mask 1 NMI, 2 AMI, 4 ARI) and the sizes. */
export interface NativeScores {
  nmi?: number;
  ami?: number;
  ari?: number;
  mutualInfo?: number;
  entropyA?: number;
  entropyB?: number;
  expectedMutualInfo?: number;
  n: number;
  labelsA: number;
  labelsB: number;
}

/** metricsClusterAccuracy's result; class ids index classValues, -1 = unmatched. */
export interface NativeAccuracy {
  n: number;
  matchedCorrect: number;
  majorityCorrect: number;
  clusterValues: Int32Array;
  classValues: Int32Array;
  matchedClass: Int32Array;
  majorityClass: Int32Array;
}

/** What NativeModel's constructor takes (lib/model.ts createModel validates it first). */
export interface NativeModelSpec {
  arch: string;
  numClasses: number[];
  inputShape: [number, number, number];
  seed: number;
  archSpec?: "big" | "small";
  smallInput?: boolean;
  precision?: "f32" | "bf16";
  device: "cpu" | "cuda";
}

/** The addon's model handle (native/addon/model_wrap.h); lib/model.ts wraps it. */
export interface NativeModel {
  trainStep(images: Float32Array, labels: Int32Array[] | Int32Array, opts: StepOptions): Promise<StepResult>;
  trainStepAugment(src: Uint8Array, desc: NativeAugmentDesc, labels: Int32Array[] | Int32Array, opts: StepOptions): Promise<StepResult>;
  forward(images: Float32Array, training: boolean, output: string, precision: "f32" | "bf16"): Promise<Float32Array | Float32Array[] | Int32Array[] | [Float32Array, ...Int32Array[]]>;
  setLabels(labels: Int32Array[]): Promise<void>;
  labels(): Promise<Int32Array[]>;
  collect(images: Float32Array, indices: Int32Array, training: boolean, precision: "f32" | "bf16"): Promise<void>;
  setLabelRows(begin: number, end: number): Promise<void>;
  /** "" when the trunk has the fused (bfloat16) inference form, else why not. */
  readonly fusedTrunk: string;
  relabel(options: SinkhornOptions[]): Promise<SinkhornResult[]>;
  exportState(what: "model" | "momentum"): Promise<Record<string, Float32Array>>;
  importState(what: "model" | "momentum", dict: Record<string, Float32Array>): Promise<void>;
  tensors(): TensorInfo[];
  trunkLayers(): TrunkLayer[];
  forwardTaps(images: Float32Array, taps: Tap[]): Promise<Float32Array[]>;
  dispose(): void;
  readonly disposed: boolean;
  readonly featureDim: number;
  step: number;
  readonly smallInput: boolean;
  readonly device: string;
}

export interface NativeBinding {
  info(): NativeInfo;
  setThreads(n: number): void;
  // model_binding.cpp (wrapped by lib/model.ts)
  NativeModel: new (spec: NativeModelSpec) => NativeModel;
  /** Architectures the model builder knows. */
  archs: string[];
  /** backend_handle.cpp: a backend lent to the test-only addon's op harness (test/helpers/test_addon.ts); opaque. */
  backendHandle(name: "cpu" | "cuda"): unknown;
  // metrics (native/addon/metrics_binding.cpp): all run on the libuv pool
  metricsScores(a: Int32Array, b: Int32Array, which: number): Promise<NativeScores>;
  metricsClusterAccuracy(pred: Int32Array, truth: Int32Array): Promise<NativeAccuracy>;
  metricsExpectedMI(rowSums: Float64Array, colSums: Float64Array, method: "fast" | "naive"): Promise<number>;
  metricsLinearSumAssignment(cost: Float64Array, rows: number, cols: number, maximize: boolean): Promise<Int32Array>;
  augmentBatch(src: Uint8Array, desc: NativeAugmentDesc, out: Float32Array): Promise<Float32Array>;
  resizeU8(src: Uint8Array, height: number, width: number, srcStride: number, channels: number, outHeight: number, outWidth: number): Promise<Uint8Array>;
  syntheticImages(seed: number, count: number): Promise<NativeSynthetic>;
  /**
   * jpeg_binding.cpp, only where the build found libjpeg: decode a JPEG into out
   * (outHeight x outWidth x 3 after the EXIF orientation); null when done, else why not.
   */
  jpegDecode?(src: Uint8Array, shortSide: number, orientation: number, fullHeight: number, fullWidth: number, outHeight: number, outWidth: number, out: Uint8Array): Promise<string | null>;
  /** pages_binding.cpp: zeroed memory of its own mapping, with huge pages asked for (the decode cache read back). */
  allocPages(bytes: number): ArrayBuffer;
  /** The libjpeg the addon's JPEG decoder is linked with ("libjpeg-turbo 2001005"); absent without one. */
  jpegLibrary?: string;
  // sinkhorn_binding.cpp (wrapped by lib/sinkhorn.ts)
  sinkhornLogits(logits: Float32Array, n: number, k: number, opts: SinkhornOptions): Promise<SinkhornResult>;
  sinkhornFeatures: SinkhornFeaturesFn;
  sinkhornTwoPass(logits: Float32Array, n: number, k: number, opts: SinkhornOptions): Promise<SinkhornResult>;
  sinkhornPlannedBytes(n: number, k: number, dtype: SinkhornDtype): number;
  // kmeans_binding.cpp (wrapped by lib/kmeans.ts)
  kmeans(
    data: Float32Array,
    n: number,
    d: number,
    k: number,
    opts: { restarts?: number; maxIter?: number; tol?: number; seed?: number },
  ): Promise<{ labels: Int32Array; centroids: Float32Array; inertia: number; iterations: number; restart: number; inertias: number[] }>;
  spectral(
    data: Float32Array,
    n: number,
    d: number,
    k: number,
    opts: { neighbors?: number; dims?: number; restarts?: number; seed?: number },
  ): Promise<{ labels: Int32Array; eigenvalues: number[]; within: number; edges: number; residual: number; products: number; dims: number }>;
  // knn_binding.cpp (wrapped by lib/eval/knn.ts)
  knnClassify(
    bank: Float32Array,
    bankLabels: Int32Array,
    queries: Float32Array,
    d: number,
    numClasses: number,
    ks: number[],
    opts: { temperature?: number; queryBlock?: number; bankBlock?: number },
  ): Promise<{ k: number; indices: Int32Array; similarities: Float32Array; predictions: Int32Array[] }>;
  linearProbe(
    x: Float32Array,
    y: Int32Array,
    xTest: Float32Array,
    d: number,
    numClasses: number,
    order: Int32Array,
    opts: {
      epochs?: number;
      batch?: number;
      lr?: number;
      momentum?: number;
      weightDecay?: number;
      spatial?: number;
      milestones?: number[];
      gamma?: number;
    },
  ): Promise<{ trainPredictions: Int32Array; testPredictions: Int32Array; epochLoss: number[] }>;
  // cuda_loader.cpp (wrapped by lib/cuda.ts): the CUDA library, loaded only after a child-process probe
  cudaLoad(path: string): void;
  cudaProbe(device: number): string;
  cudaLoaded(): { path: string; abi: number } | null;
  cudaSetTf32(enabled: boolean): void;
  cudaSinkhorn(logits: Float32Array, n: number, k: number, opts: SinkhornOptions): Promise<SinkhornResult>;
  cudaAugmentBatch(src: Uint8Array, desc: NativeAugmentDesc, out: Float32Array): Promise<Float32Array>;

}

let cached: NativeBinding | undefined;

/**
 * The load failure as one line: which library the dynamic loader missed (or
 * that no addon was found) and the next step for an installed package.
 */
export function addonLoadError(e: unknown, file: string | null): AddonLoadError {
  const msg = (e instanceof Error ? e.message : String(e)).split("\n")[0];
  const missing = /([^\s:/]+\.so(?:\.[0-9]+)*): cannot open shared object file/.exec(msg)?.[1] ?? null;
  const where = file ? ` (${file})` : "";
  const fix =
    "reinstall it with `npm rebuild selflabel-native` (uses the prebuilt binary for linux-x64 glibc, " +
    "else builds from source: needs g++, make, python3 and libdnnl-dev)";
  if (missing) return new AddonLoadError(`the native addon${where} needs ${missing}, which the dynamic loader cannot find; ${fix}`, missing, e);
  if (/No native build was found/.test(msg))
    return new AddonLoadError(`no native addon for this platform (${process.platform}-${process.arch}, Node ${process.versions.node}): no prebuilt binary and no build/Release; ${fix}`, null, e);
  return new AddonLoadError(`the native addon${where} could not be loaded (${msg}); ${fix}`, null, e);
}

/**
 * Load the addon: SELFLABEL_ADDON (an explicit .node path) first, then
 * build/Release or a prebuild (prebuilds/linux-x64) through node-gyp-build.
 */
export function native(): NativeBinding {
  if (cached) return cached;
  const explicit = process.env.SELFLABEL_ADDON;
  let file: string | null = explicit ? path.resolve(explicit) : null;
  try {
    if (!file) {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const load = require("node-gyp-build") as { path(dir: string): string };
      file = load.path(packageRoot());
    }
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    cached = require(file) as NativeBinding;
  } catch (e) {
    throw addonLoadError(e, file);
  }
  const n = process.env.SELFLABEL_NUM_THREADS;
  if (n !== undefined && n !== "") {
    const t = Number(n);
    if (!Number.isInteger(t) || t < 1) throw new RangeError(`SELFLABEL_NUM_THREADS must be a positive integer, got '${n}'`);
    cached.setThreads(t);
  }
  return cached;
}
