// The train command's options, each written once: one table gives the yargs
// builder (lib/commands/train.ts), the TypeScript type (TrainOptions) and the
// default. Defaults that depend on the input size come from a preset
// (SIZE_PRESETS: small 28/32 px images vs the reference's ImageNet recipe);
// resolveOptions layers the caller's options over a preset (optionally
// overridden, e.g. by a named recipe) over the table's fixed defaults.
import type { Argv, Options as YargsOption } from "yargs";
import { UsageError } from "../errors";

/** One flag: how yargs reads it and what it defaults to (phantom T is the option's TypeScript type). */
interface Flag<T> {
  type: "number" | "string" | "boolean";
  describe?: string;
  /** Fixed default (also shown by --help); size-dependent ones live in SIZE_PRESETS. */
  default?: T;
  choices?: readonly T[];
  alias?: string;
  hidden?: boolean;
  coerce?: (v: unknown) => T | undefined;
  /** false: an API-only option (no flag of this command). */
  cli?: boolean;
  /** phantom, never set */
  readonly _t?: T;
}

const num = <T extends number | null = number>(f: Omit<Flag<NoInfer<T>>, "type"> = {}): Flag<T> => ({ type: "number", ...f });
const str = <T extends string | null = string>(f: Omit<Flag<NoInfer<T>>, "type"> = {}): Flag<T> => ({ type: "string", ...f });
const bool = (f: Omit<Flag<boolean>, "type"> = {}): Flag<boolean> => ({ type: "boolean", ...f });
const oneOf = <T extends string>(choices: readonly T[], f: Omit<Flag<T>, "type" | "choices"> = {}): Flag<T> => ({ type: "string", choices, ...f });

/** `--ncl 10` or `--ncl 10,50`: numbers are checked by resolveOptions (non-numbers become NaN). */
function parseNcl(v: unknown): number | number[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number") return v;
  if (Array.isArray(v)) return v.map(Number);
  const parts = String(v).split(",").map((x) => (x.trim() === "" ? NaN : Number(x)));
  return parts.length === 1 ? parts[0] : parts;
}

// The order here is the order of the resolved record (written to log.jsonl and
// the checkpoints' flags).
export const FLAGS = {
  data: str<string | null>({ alias: "imagenet-path", describe: "data: ImageFolder, IDX (MNIST/Fashion-MNIST), CIFAR; omitted: built-in synthetic set" }),
  dataFormat: oneOf(["auto", "imagefolder", "idx", "cifar", "synthetic"] as const, { default: "auto" }),
  exp: str({ default: "./self-label-default", describe: "experiment directory (checkpoints, log.jsonl, model.safetensors, labels.csv)" }),
  epochs: num({ describe: "epochs" }),
  batchSize: num({ describe: "batch size" }),
  lr: num({ describe: "learning rate" }),
  lrdrop: num({ describe: "multiply the lr by 0.1 every this many epochs" }),
  /** Weight decay as a power of ten (the reference's --wd -5 = 1e-5). */
  wd: num({ default: -5, describe: "weight decay as a power of ten" }),
  dtype: oneOf(["f64", "f32"] as const, { default: "f64", describe: "Sinkhorn matrix storage" }),
  nopts: num({ describe: "label optimisations over the run" }),
  augs: num({ describe: "training augmentation level 0-3" }),
  paugs: num({ describe: "label-pass augmentation level 0-3" }),
  lamb: num({ describe: "Sinkhorn lambda" }),
  arch: str({ describe: "architecture" }),
  archspec: oneOf(["big", "small"] as const, { default: "big" }),
  /** Clusters per head: one number for every head, or a list (one per head; head 0 is the reported one). */
  ncl: {
    type: "string",
    coerce: parseNcl,
    describe: "clusters per head, or a comma-separated list, one per head (head 0 is reported)",
  } as Flag<number | number[]>,
  hc: num({ describe: "number of heads (an --ncl list sets it)" }),
  device: oneOf(["cpu", "cuda", "auto"] as const, {
    default: "auto",
    describe: "cuda: the CUDA backend (libselflabel_cuda.so, `npm run build:cuda`); auto: CUDA when it works, else the CPU with a notice",
  }),
  /** TF32 math for the CUDA backend's convolutions and matrix products (off by default, as the reference). */
  tf32: bool({ default: false, describe: "TF32 math on the GPU (convolutions, matrix products); off by default" }),
  /**
   * With the CUDA backend, augment the training batches on the GPU (default
   * true): the loader hands over uint8 sources + sampled parameters and the
   * model's trainStep augments them into its input buffer on the device.
   * false augments on the CPU and uploads the floats (same parameters, so the
   * same images up to float rounding). No effect on the CPU.
   */
  gpuAugment: bool({ default: true, describe: "with the CUDA backend, augment the training batches on the GPU (--no-gpu-augment: on the CPU, then uploaded)" }),
  workers: num({ describe: "decoding/augmentation threads" }),
  comment: str({ default: "", describe: "free text stored with the run" }),
  logIntv: num({ default: 1, describe: "print a line every this many epochs" }),
  logIter: num({ default: 200, describe: "log.jsonl record every this many batches" }),
  seed: num({ default: 0 }),
  resume: bool({ default: true, describe: "continue from the newest checkpoint in --exp (--no-resume starts over)" }),
  labelMode: oneOf(["eval", "train"] as const, { default: "eval", describe: "BN mode of the label pass (train = the reference)" }),
  /**
   * Precision of the label pass's forward: bf16 runs the fused trunk (conv +
   * batch norm + ReLU folded, one layout) in bfloat16 with float32
   * accumulation; the Sinkhorn stays float64. auto: bf16 where the CPU has
   * AVX512-BF16 or AMX and the trunk has the fused form (eval mode, CPU), else f32.
   */
  labelPrecision: oneOf(["f32", "bf16", "auto"] as const, {
    default: "auto",
    describe: "label-pass forward precision: bf16 = fused bfloat16 trunk (float32 accumulation); auto: bf16 where the CPU has AVX512-BF16/AMX",
  }),
  /**
   * Precision of the training step (lib/model.ts ModelOptions.precision):
   * bf16 = mixed precision, bfloat16 convolutions with float32 accumulation
   * and float32 master weights. auto: bf16 where the CPU has AVX512-BF16/AMX.
   */
  precision: oneOf(["f32", "bf16", "auto"] as const, {
    default: "f32",
    describe: "training precision: bf16 = mixed (bfloat16 convolutions, float32 accumulation and master weights; CPU); auto: bf16 where the CPU has AVX512-BF16/AMX",
  }),
  inputSize: num({ describe: "model input side (default: the data's for small images, else 224)" }),
  skTol: num({ default: 0.1, describe: "Sinkhorn tolerance" }),
  // The reference iterates until convergence; a trained network's peaked
  // P^lambda needs a few thousand iterations (3241 on Fashion-MNIST after 2
  // epochs, about 2 s), so training caps far above the solver's default.
  skMaxIters: num({ default: 10000, describe: "Sinkhorn iteration cap per label pass" }),
  /**
   * Start each label pass's Sinkhorn from the previous pass's scaling (default
   * off: measured on Fashion-MNIST it took 3791 iterations against 3241 cold,
   * because the network moved between passes).
   */
  skWarm: bool({ default: false, describe: "warm-start each label pass from the previous one's scaling" }),
  /** Initial weights (PyTorch .pth, converted .safetensors or a checkpoint) for a fresh run. */
  init: str({ describe: "initial weights: a PyTorch .pth (read without executing code), a converted .safetensors or a checkpoint" }),
  /** Train on a seeded random subset of this many training images (quick experiments; 0 = all). */
  subset: num({ hidden: true, describe: "train on a seeded random subset of this many images (experiments)" }),
  /** Smallest RandomResizedCrop area fraction of the training augmentation, levels 2-3 (0 = the level's default: 0.08, or 0.2 at <= 32 px). */
  cropScale: num({ describe: "smallest RandomResizedCrop area fraction of the training augmentation, levels 2-3 (0: the level's, 0.08, or 0.2 at <= 32 px)" }),
  /** Size of the built-in synthetic training set (tests use small ones). */
  syntheticCount: num<number | null>({ hidden: true }),
  /** Images smaller than the training input size: warn (default; they are upscaled) or refuse the data. */
  smallImages: oneOf(["warn", "refuse"] as const, {
    default: "warn",
    describe: "images smaller than the training input size: warn (they are upscaled) or refuse (exit 2)",
  }),
  /** Evaluate the final network on the test split when the data has one (default true). */
  evalTest: bool({ default: true, describe: "evaluate the final network on the test split" }),
  /** Named recipe (lib/train/recipe.ts): reference, kmeans or spectral. */
  recipe: oneOf(["reference", "kmeans", "spectral"] as const, {
    describe: "training recipe: reference (the reference-faithful schedule), kmeans (first labels from k-means on the raw pixels, cosine lr, only the final label pass) or spectral (first labels from spectral clustering of the pixels, re-labelled by spectral clustering of the network's features); default: see docs/quality.md",
  }),
  /** Where the first labels come from: a shuffled equipartition + Sinkhorn on the random network, k-means or spectral clustering of the raw pixels. */
  initLabels: oneOf(["random", "kmeans", "spectral"] as const, { describe: "first labels: random (+ a Sinkhorn pass on the untrained network), kmeans (k-means on the raw pixels) or spectral (spectral clustering of the raw pixels); default the recipe's" }),
  /** How a label pass re-labels: Sinkhorn on the heads' logits (SeLa) or spectral clustering of the penultimate features. */
  relabel: oneOf(["sinkhorn", "spectral"] as const, { describe: "label passes: sinkhorn (SeLa's equipartitioned optimal transport on each head) or spectral (spectral clustering of the penultimate features, cluster ids matched to the previous labels); default the recipe's" }),
  /** Learning-rate schedule: the reference's steps (--lrdrop) or cosine with warm-up. */
  lrSchedule: oneOf(["step", "cosine"] as const, { describe: "learning-rate schedule: step (x0.1 every --lrdrop epochs) or cosine (with --warmup); default the recipe's" }),
  /** Warm-up fraction of all steps for the cosine schedule. */
  warmup: num({ describe: "linear warm-up, as a fraction of all steps, of the cosine schedule (0.05)" }),
  /** Label passes scheduled before this fraction of the run are dropped (the network first learns the initial labels). */
  firstPass: num({ describe: "fraction of the run before the first label re-optimisation (scheduled passes before it are dropped); default the recipe's (kmeans 0.99: only the final pass, reference 0)" }),
  cpu: bool({ default: false, describe: "run everything on the CPU" }),
  /** Data-parallel over the ranks of `mpirun -np R` (lib/distributed; docs/distributed.md). */
  distributed: bool({ default: false, describe: "data-parallel training over MPI ranks: mpirun -np R selflabel-native train --distributed ... (`npm run build:mpi` first)" }),
  /** With --distributed: batch-norm statistics over the global batch (default: per rank, rank 0's running statistics shared). */
  syncBn: bool({ default: false, describe: "with --distributed: batch-norm statistics over the global batch instead of per rank" }),
  /** CPU threads (the CLI's global --threads sets them before the command runs). */
  threads: num({ cli: false }),
} as const;

type FlagTable = typeof FLAGS;
type FlagType<F> = F extends Flag<infer T> ? T : never;

/** train()'s options: every flag of the table, all optional. */
export type TrainOptions = { -readonly [K in keyof FlagTable]?: FlagType<FlagTable[K]> };

/** The options after defaults: every field set. */
export type ResolvedOptions = Required<Omit<TrainOptions, "data" | "syntheticCount" | "threads" | "cpu" | "ncl">> & {
  /** Clusters of each head (length hc). */
  ncl: number[];
  data: string | null;
  syntheticCount: number | null;
};

/** The options whose default depends on the input size. */
export interface SizePreset {
  arch: string;
  epochs: number;
  batchSize: number;
  lr: number;
  lrdrop: number;
  nopts: number;
  augs: number;
  paugs: number;
  lamb: number;
  ncl: number;
  hc: number;
  cropScale: number;
}

export const SIZE_PRESETS: { small: SizePreset; reference: SizePreset } = {
  // Defaults for 28/32 px data: a few minutes on 2 cores for the synthetic set.
  // Fewer label passes than the reference's density (a label pass is a forward
  // over the whole set: 24 passes over 8 epochs cost as much as the training),
  // strong augmentation (crop + flip, and colour jitter/grayscale on RGB, so
  // colour is not what the clusters learn), label passes on unaugmented images.
  // Measured on Fashion-MNIST (20000-image subset, 4 epochs, label-pass NMI after
  // 26144 images against 0.301 with the old batch 256): batch 128 0.402 (more SGD
  // steps at the same image throughput); crop scale (0.08, 1) 0.344 at batch 256
  // but 0.359 with batch 128, and lower on the full set too, so the level's crop
  // scale (0.2, 1 at <= 32 px) stays; (0.5, 1) 0.244; lambda 10 and extra
  // 50-cluster heads did not help (see the README).
  small: { arch: "smallcnn", epochs: 8, batchSize: 128, lr: 0.05, lrdrop: 6, nopts: 10, augs: 3, paugs: 0, lamb: 25, ncl: 10, hc: 1, cropScale: 0 },
  // The reference's (ImageNet, AlexNet, 3000 clusters).
  reference: { arch: "alexnet", epochs: 400, batchSize: 256, lr: 0.05, lrdrop: 150, nopts: 100, augs: 3, paugs: 3, lamb: 25, ncl: 3000, hc: 1, cropScale: 0 },
};

/** Fixed defaults with no flag default shown by --help (the value "unset" means). */
const UNSET_DEFAULTS: Partial<Record<keyof FlagTable, unknown>> = { data: null, workers: 0, inputSize: 0, init: "", subset: 0, syntheticCount: null };

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());

/** The train command's yargs options, from the table (size-dependent defaults named in the description). */
export function trainBuilder(y: Argv): Argv {
  for (const [k, f] of Object.entries(FLAGS) as [keyof FlagTable, Flag<unknown>][]) {
    if (f.cli === false) continue;
    const preset = k in SIZE_PRESETS.small ? (k as keyof SizePreset) : null;
    let describe = f.describe;
    if (preset) {
      const s = SIZE_PRESETS.small[preset],
        r = SIZE_PRESETS.reference[preset];
      describe = `${describe ?? k} (${s === r ? `default ${s}` : `reference ${r}; small images ${s}`})`;
    }
    const o: YargsOption = { type: f.type };
    if (describe !== undefined) o.describe = describe;
    if (f.default !== undefined) o.default = f.default;
    if (f.choices) o.choices = f.choices as string[];
    if (f.alias) o.alias = f.alias;
    if (f.hidden) o.hidden = true;
    if (f.coerce) o.coerce = f.coerce;
    y = y.option(kebab(k), o);
  }
  return y;
}

/** TrainOptions from parsed yargs arguments (camel-case keys). */
export function optionsFromArgv(a: Record<string, unknown>): TrainOptions {
  const o: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(FLAGS) as [string, Flag<unknown>][]) if (f.cli !== false && a[k] !== undefined) o[k] = a[k];
  return o as TrainOptions;
}

function isInt(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x);
}

/**
 * Defaults over `o`: the size preset's (ours for 28/32 px data, the
 * reference's for large images), with `presetOverride` (a recipe) over the
 * preset, then the table's fixed defaults; every value checked.
 */
export function resolveOptions(o: TrainOptions, smallImages: boolean, presetOverride: Partial<SizePreset> = {}): ResolvedOptions {
  const d: SizePreset = { ...(smallImages ? SIZE_PRESETS.small : SIZE_PRESETS.reference), ...presetOverride };
  const r: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(FLAGS) as [keyof FlagTable, Flag<unknown>][]) {
    if (k === "cpu" || k === "threads") continue;
    const preset = k in d ? d[k as keyof SizePreset] : undefined;
    r[k] = o[k] ?? preset ?? (k in UNSET_DEFAULTS ? UNSET_DEFAULTS[k] : f.default);
  }
  const res = r as ResolvedOptions;
  res.hc = o.hc ?? (Array.isArray(o.ncl) && o.ncl.length > 1 ? o.ncl.length : d.hc);
  res.device = o.cpu ? "cpu" : (o.device ?? "auto");
  const bad = (msg: string) => {
    throw new UsageError(msg);
  };
  if (!isInt(res.epochs) || res.epochs < 1) bad(`--epochs must be an integer >= 1, got ${res.epochs}`);
  if (!isInt(res.batchSize) || res.batchSize < 2) bad(`--batch-size must be an integer >= 2, got ${res.batchSize}`);
  if (!(res.lr > 0 && Number.isFinite(res.lr))) bad(`--lr must be a positive number, got ${res.lr}`);
  if (!isInt(res.lrdrop) || res.lrdrop < 1) bad(`--lrdrop must be an integer >= 1, got ${res.lrdrop}`);
  if (!Number.isFinite(res.wd)) bad(`--wd must be a number (a power of ten), got ${res.wd}`);
  if (res.dtype !== "f64" && res.dtype !== "f32") bad(`--dtype must be f64 or f32, got ${res.dtype}`);
  if (!isInt(res.nopts) || res.nopts < 1) bad(`--nopts must be an integer >= 1, got ${res.nopts}`);
  for (const [k, v] of [
    ["augs", res.augs],
    ["paugs", res.paugs],
  ] as const)
    if (!isInt(v) || v < 0 || v > 3) bad(`--${k} must be an augmentation level 0-3, got ${v}`);
  if (!(res.lamb > 0 && Number.isFinite(res.lamb))) bad(`--lamb must be a positive number, got ${res.lamb}`);
  if (!isInt(res.hc) || res.hc < 1) bad(`--hc must be an integer >= 1, got ${res.hc}`);
  const ncl = o.ncl === undefined ? [d.ncl] : Array.isArray(o.ncl) ? o.ncl : [o.ncl];
  if (ncl.length === 0) bad(`--ncl must be an integer >= 2, got nothing`);
  for (const k of ncl) if (!isInt(k) || k < 2) bad(`--ncl must be an integer >= 2, got ${k}`);
  if (ncl.length > 1 && ncl.length !== res.hc) bad(`--ncl lists ${ncl.length} heads but --hc is ${res.hc}`);
  res.ncl = ncl.length === 1 ? Array.from({ length: res.hc }, () => ncl[0]) : ncl.slice();
  if (!isInt(res.subset) || res.subset < 0) bad(`--subset must be a non-negative integer, got ${res.subset}`);
  if (!(res.cropScale >= 0 && res.cropScale <= 1)) bad(`--crop-scale must be in [0, 1], got ${res.cropScale}`);
  if (!["cpu", "cuda", "auto"].includes(res.device)) bad(`--device must be cpu, cuda or auto, got ${res.device}`);
  if (!isInt(res.seed) || res.seed < 0) bad(`--seed must be a non-negative integer, got ${res.seed}`);
  if (!isInt(res.logIter) || res.logIter < 1) bad(`--log-iter must be an integer >= 1, got ${res.logIter}`);
  if (res.labelMode !== "eval" && res.labelMode !== "train") bad(`--label-mode must be eval or train, got ${res.labelMode}`);
  if (!["f32", "bf16", "auto"].includes(res.precision)) bad(`--precision must be f32, bf16 or auto, got ${res.precision}`);
  if (!["f32", "bf16", "auto"].includes(res.labelPrecision)) bad(`--label-precision must be f32, bf16 or auto, got ${res.labelPrecision}`);
  if (!isInt(res.inputSize) || res.inputSize < 0) bad(`--input-size must be a positive integer, got ${res.inputSize}`);
  if (!(res.skTol > 0)) bad(`--sk-tol must be positive, got ${res.skTol}`);
  if (!isInt(res.skMaxIters) || res.skMaxIters < 10) bad(`--sk-max-iters must be an integer >= 10, got ${res.skMaxIters}`);
  if (!isInt(res.workers) || res.workers < 0) bad(`--workers must be a non-negative integer, got ${res.workers}`);
  if (res.archspec !== "big" && res.archspec !== "small") bad(`--archspec must be big or small, got ${res.archspec}`);
  if (res.smallImages !== "warn" && res.smallImages !== "refuse") bad(`--small-images must be warn or refuse, got ${res.smallImages}`);
  // Upper bounds: every flag that sizes an allocation or a loop stays where
  // memory is finite (--nopts 1e9 made a 1e9-entry schedule and killed V8).
  // 0 means "the default" inside the resolved record for --input-size and
  // --workers, so an explicit 0 is refused here, where it is still visible.
  const upTo = (flag: string, v: number, max: number) => {
    if (v > max) bad(`--${flag} must be at most ${max}, got ${v}`);
  };
  upTo("epochs", res.epochs, MAX.epochs);
  upTo("batch-size", res.batchSize, MAX.batchSize);
  upTo("nopts", res.nopts, MAX.nopts);
  upTo("hc", res.hc, MAX.hc);
  for (const k of res.ncl) upTo("ncl", k, MAX.ncl);
  upTo("sk-max-iters", res.skMaxIters, MAX.skMaxIters);
  upTo("log-iter", res.logIter, MAX.log);
  if (!isInt(res.logIntv) || res.logIntv < 1) bad(`--log-intv must be an integer >= 1, got ${res.logIntv}`);
  upTo("log-intv", res.logIntv, MAX.log);
  if (o.inputSize !== undefined && (!isInt(o.inputSize) || o.inputSize < MIN_INPUT || o.inputSize > MAX.inputSize))
    bad(`--input-size must be an integer from ${MIN_INPUT} to ${MAX.inputSize}, got ${o.inputSize}`);
  if (o.workers !== undefined && (!isInt(o.workers) || o.workers < 1 || o.workers > MAX.workers))
    bad(`--workers must be an integer from 1 to ${MAX.workers}, got ${o.workers}`);
  if (o.syntheticCount !== undefined && o.syntheticCount !== null && (!isInt(o.syntheticCount) || o.syntheticCount < 2 || o.syntheticCount > MAX.syntheticCount))
    bad(`--synthetic-count must be an integer from 2 to ${MAX.syntheticCount}, got ${o.syntheticCount}`);
  return res;
}

/** Upper bounds of the numeric flags (see resolveOptions). */
export const MAX = {
  epochs: 100_000,
  batchSize: 65_536,
  nopts: 100_000,
  hc: 1_000,
  ncl: 1_000_000,
  skMaxIters: 10_000_000,
  log: 1_000_000_000,
  inputSize: 2048,
  workers: 256,
  syntheticCount: 1_000_000,
};
const MIN_INPUT = 8;
