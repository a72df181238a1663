// Linear probes on frozen trunk activations, as the reference's
// eval_linear_probes.py (yukimasano/self-label; the AlexNet protocol of Zhang et
// al.'s colorization probes, also used by DeepCluster's eval_linear.py):
//
// Taps (eval-mode BN, i.e. the reference's BN folded into the convs):
//   alexnet   conv1..conv5 = the ReLU after each conv block, features.2, .6,
//             .10, .13, .16 (the reference's layers [1, 4, 7, 9, 11] of the
//             BN-free Sequential), downsampled by the reference's
//             MaxPool2d(6, 6, pad 3), (4, 4, 0), (3, 3, 1), (3, 3, 1), (2, 2, 0):
//             at 224 px 96x10x10 = 9600, 256x6x6 = 9216, 384x5x5 = 9600,
//             384x5x5 = 9600, 256x6x6 = 9216 dims (archspec big); small:
//             6400, 6912, 9600, 6400, 9216. (DeepCluster uses AvgPool2d with
//             the same sizes; the reference and its linear-probes repository
//             say max pooling, which we follow.)
//   smallcnn  conv1..conv5 = the ReLU of each conv block (features.2, .5, .9,
//             .12, .16): the same idea, scaled to the small model.
//   resnets   layer1..layer4 = the output of each stage's last block.
//   any arch  penultimate = the feature vector the heads read (no pooling),
//             or any trunk module by its PyTorch name (e.g. features.6).
//   Taps other than AlexNet's table are reduced, when larger than 9600 dims,
//   by AdaptiveMaxPool2d to the largest s x s with C s^2 <= 9600 (the
//   reference's ~9-10k budget; s = 1 when C alone exceeds it).
//
// Classifier and training (the reference's Probes + LinearProbesOptimizer):
//   BatchNorm2d(affine=False) then one linear layer on the flattened pooled
//   map. The trunk is frozen, so we compute the pooled features once (no
//   augmentation, level-0 preprocessing: centre view) and replace the BN by
//   its eval-mode equivalent, a per-channel standardisation with the
//   training set's statistics; then multinomial logistic regression by SGD,
//   batch 192, momentum 0.9 (no Nesterov), weight decay 1e-5 (weights only;
//   the reference also decays the bias), lr 0.01 times 0.1 at epochs 10, 20
//   and 30 of 36: the milestones scale with --probe-epochs (round(E*10/36),
//   ...), so the default 10 epochs step at 3, 6 and 8. Weights start at zero
//   (the reference: Xavier-uniform; the problem is convex). Top-1 on the
//   validation (test) split, one centre view (the reference averages ten
//   crops on ImageNet).
import { Dataset, Loader } from "../data";
import { InputError } from "../errors";
import { Model, TapPool, Tap } from "../model";
import { linearProbe, accuracy, ProbeOptions } from "./knn";

/** Target width of a pooled tap (the reference's 9216..9600). */
export const PROBE_DIM_BUDGET = 9600;

/** A named tap of an arch: the alias and the PyTorch module whose output it reads. */
export interface ProbeTap {
  name: string;
  module: string;
}

/** The reference's downsamplers for AlexNet's five conv taps. */
const ALEXNET_POOLS: TapPool[] = [
  { pool: "max", kernel: 6, stride: 6, pad: 3 },
  { pool: "max", kernel: 4, stride: 4, pad: 0 },
  { pool: "max", kernel: 3, stride: 3, pad: 1 },
  { pool: "max", kernel: 3, stride: 3, pad: 1 },
  { pool: "max", kernel: 2, stride: 2, pad: 0 },
];

/** The conv-level taps of an arch (without `penultimate`, which every arch has). */
export function probeLayers(arch: string): ProbeTap[] {
  const named = (mods: string[], prefix: string) => mods.map((m, i) => ({ name: `${prefix}${i + 1}`, module: m }));
  switch (arch) {
    case "alexnet":
      return named(["features.2", "features.6", "features.10", "features.13", "features.16"], "conv");
    case "smallcnn":
      return named(["features.2", "features.5", "features.9", "features.12", "features.16"], "conv");
    case "resnet18":
      return named(["layer1.1", "layer2.1", "layer3.1", "layer4.1"], "layer");
    case "resnet50":
      return named(["layer1.2", "layer2.3", "layer3.5", "layer4.2"], "layer");
    default:
      return [];
  }
}

/** Where a probe taps and what it sees (shared by ProbeLayer and the report's ProbeRow). */
export interface ProbeGeometry {
  /** PyTorch module whose output is probed. */
  module: string;
  /** The tapped activation [C, H, W]. */
  shape: [number, number, number];
  /** Pooled [C, H, W] and its size C*H*W. */
  pooled: [number, number, number];
  dim: number;
}

/** A probe resolved against a model: where to tap, how to pool, the width. */
export interface ProbeLayer extends ProbeGeometry {
  name: string;
  /** Index into model.trunkLayers(). */
  layer: number;
  pool: TapPool;
  penultimate: boolean;
}

function outSide(n: number, k: number, s: number, p: number): number {
  return Math.floor((n + 2 * p - k) / s) + 1;
}

function pooledShape(shape: [number, number, number], pool: TapPool): [number, number, number] {
  const [C, H, W] = shape;
  if (pool.pool === "none") return [C, H, W];
  if (!("kernel" in pool)) return [C, pool.outHeight, pool.outWidth ?? pool.outHeight];
  const s = pool.stride ?? pool.kernel;
  return [C, outSide(H, pool.kernel, s, pool.pad ?? 0), outSide(W, pool.kernel, s, pool.pad ?? 0)];
}

/** Adaptive max pooling to the largest square within the dim budget (none if it fits). */
function budgetPool(shape: [number, number, number]): TapPool {
  const [C, H, W] = shape;
  if (C * H * W <= PROBE_DIM_BUDGET) return { pool: "none" };
  const s = Math.max(1, Math.min(H, W, Math.floor(Math.sqrt(PROBE_DIM_BUDGET / C))));
  return { pool: "adaptive-max", outHeight: s, outWidth: s };
}

/** What resolving probe layers needs of a model. */
export type ProbeModel = Pick<Model, "arch" | "trunkLayers">;

function make(model: ProbeModel, name: string, module: string, penultimate: boolean, pool?: TapPool): ProbeLayer {
  const trunk = model.trunkLayers();
  const layer = penultimate ? trunk.length - 1 : trunk.findIndex((l) => l.name === module);
  if (layer < 0) throw new InputError(`probe layer ${name}: no trunk module ${module} in ${model.arch}`);
  const shape = trunk[layer].shape;
  const p = penultimate ? { pool: "none" as const } : (pool ?? budgetPool(shape));
  const pooled = pooledShape(shape, p);
  return { name, module: trunk[layer].name, layer, shape, pool: p, pooled, dim: pooled[0] * pooled[1] * pooled[2], penultimate };
}

/**
 * Resolve --probe-layers against a model: "default" (penultimate, plus conv1..
 * conv5 for alexnet as the reference's probes), "all" (the arch's taps and
 * penultimate), "none", "penultimate", or a comma list of aliases (conv1,
 * layer2, penultimate) and PyTorch module names (features.6). Unknown names
 * throw an InputError listing what exists.
 */
export function resolveProbeLayers(model: ProbeModel, spec: string): ProbeLayer[] {
  const taps = probeLayers(model.arch);
  const tapLayer = (t: ProbeTap, i: number) =>
    make(model, t.name, t.module, false, model.arch === "alexnet" ? ALEXNET_POOLS[i] : undefined);
  const pen = () => make(model, "penultimate", "", true);
  const s = spec.trim();
  if (s === "none") return [];
  if (s === "default") return [...(model.arch === "alexnet" ? taps.map(tapLayer) : []), pen()];
  if (s === "all") return [...taps.map(tapLayer), pen()];
  const trunk = model.trunkLayers();
  const out: ProbeLayer[] = [];
  for (const raw of s.split(",")) {
    const n = raw.trim();
    if (n === "") continue;
    let l: ProbeLayer;
    const ti = taps.findIndex((t) => t.name === n || t.module === n);
    if (n === "penultimate") l = pen();
    else if (ti >= 0) l = tapLayer(taps[ti], ti);
    else if (trunk.some((t) => t.name === n)) l = make(model, n, n, false);
    else {
      throw new InputError(
        `--probe-layers: no layer '${n}' in ${model.arch}; use default, all, none, penultimate, ` +
          `${taps.map((t) => t.name).join(", ")}${taps.length ? ", " : ""}or a trunk module (${trunk.map((t) => t.name).join(", ")})`,
      );
    }
    if (!out.some((o) => o.name === l.name)) out.push(l);
  }
  if (out.length === 0) throw new InputError(`--probe-layers: '${spec}' names no layer`);
  return out;
}

/** The tap forwardTaps needs for a probe layer. */
export function tapOf(l: ProbeLayer): Tap {
  return { layer: l.layer, ...l.pool } as Tap;
}

/**
 * Pooled activations of every image for each layer: (N x dim) Float32Arrays,
 * in dataset order; level-0 (test-time) preprocessing, eval mode. The batch
 * keeps the trunk's activations near 256 MiB.
 */
export async function extractTaps(model: Model, ds: Dataset, layers: ProbeLayer[]): Promise<Float32Array[]> {
  const trunk = model.trunkLayers();
  const deepest = Math.max(...layers.map((l) => l.layer));
  let maxAct = model.inputShape[0] * model.inputShape[1] * model.inputShape[2];
  for (let i = 0; i <= deepest; i++) maxAct = Math.max(maxAct, trunk[i].shape[0] * trunk[i].shape[1] * trunk[i].shape[2]);
  const perImage = 4 * (2 * maxAct + layers.reduce((s, l) => s + l.dim, 0));
  const batchSize = Math.max(1, Math.min(256, Math.floor((256 << 20) / perImage)));
  const outs = layers.map((l) => new Float32Array(ds.count * l.dim));
  const taps = layers.map(tapOf);
  const loader = new Loader(ds, { batchSize, size: model.inputShape[1], level: 0, seed: 0, shuffle: false });
  for await (const b of loader.epoch(0)) {
    const got = await model.forwardTaps(b.data, taps);
    got.forEach((f, t) => {
      const D = layers[t].dim;
      for (let i = 0; i < b.size; i++) outs[t].set(f.subarray(i * D, (i + 1) * D), b.indices[i] * D);
    });
  }
  return outs;
}

/** The reference's probe optimiser scaled to `epochs` (see the header). */
export interface ProbeRecipe {
  epochs: number;
  batch: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  /** Epochs at which the lr is multiplied by gamma. */
  milestones: number[];
  gamma: number;
  seed: number;
}

export function referenceRecipe(epochs: number, seed = 0): ProbeRecipe {
  const milestones = [...new Set([10, 20, 30].map((m) => Math.round((m * epochs) / 36)))].filter((m) => m >= 1 && m < epochs);
  return { epochs, batch: 192, lr: 0.01, momentum: 0.9, weightDecay: 1e-5, milestones, gamma: 0.1, seed };
}

export interface LayerProbeResult {
  testTop1: number;
  trainTop1: number;
  finalLoss: number;
  seconds: number;
}

/** Train one probe (per-channel standardisation of the pooled map) and score it. */
export async function trainLayerProbe(
  l: ProbeLayer,
  x: Float32Array,
  y: Int32Array,
  xTest: Float32Array,
  yTest: Int32Array,
  numClasses: number,
  r: ProbeRecipe,
): Promise<LayerProbeResult> {
  const t0 = Date.now();
  const opts: ProbeOptions = {
    epochs: r.epochs,
    batch: r.batch,
    lr: r.lr,
    momentum: r.momentum,
    weightDecay: r.weightDecay,
    milestones: r.milestones,
    gamma: r.gamma,
    seed: r.seed,
    spatial: l.pooled[1] * l.pooled[2],
  };
  const p = await linearProbe(x, y, xTest, l.dim, numClasses, opts);
  return {
    testTop1: accuracy(p.testPredictions, yTest),
    trainTop1: accuracy(p.trainPredictions, y),
    finalLoss: p.epochLoss[p.epochLoss.length - 1],
    seconds: (Date.now() - t0) / 1000,
  };
}

/** "maxpool 6/6 pad 3", "adaptive-max 17x17", "-" */
export function describePool(p: TapPool): string {
  if (p.pool === "none") return "-";
  if (!("kernel" in p)) return `${p.pool} ${p.outHeight}x${p.outWidth ?? p.outHeight}`;
  return `${p.pool}pool ${p.kernel}/${p.stride ?? p.kernel}${p.pad ? ` pad ${p.pad}` : ""}`;
}
