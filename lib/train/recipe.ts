// Named training recipes (--recipe). A recipe fills the defaults the caller
// left unset: the size preset's values (options.ts SIZE_PRESETS, possibly
// scaled to the data's size) and the choices the reference has no flag for
// (where the first labels come from, the learning-rate schedule).
//
//   reference  today's reference-faithful schedule, exactly: labels start as a
//              shuffled equipartition, the first Sinkhorn pass runs on the
//              random network before the first batch, step learning rate
//              (x0.1 every --lrdrop epochs), the size preset's epochs.
//   kmeans     (opt-in; see defaultRecipe) the first labels are
//              k-means on the raw pixels (3 k-means++ restarts), so training
//              starts from the baseline instead of from Sinkhorn on a random
//              network; the first scheduled pass (at 0 images) is skipped; a
//              cosine learning rate with linear warm-up over all steps; the
//              scheduled passes in the first quarter of the run are dropped
//              (the network learns the k-means labels first); and a
//              budget in images rather than epochs, so small sets get many
//              epochs (epochs = ceil(KMEANS_IMAGE_BUDGET / N), at least the
//              preset's). Evidence: docs/quality.md.
//   spectral   the first labels are spectral clustering of the raw pixels
//              (cosine kNN graph on the mean + 64 principal directions,
//              core/spectral.h); label passes re-label by spectral clustering
//              of the network's penultimate features instead of Sinkhorn
//              (new cluster ids matched to the previous labels), --nopts of
//              them evenly spaced from --first-pass (0.5) to the end (2: half
//              way and after the last batch); cosine lr with warm-up; the
//              kmeans recipe's image budget. Evidence: docs/quality.md.
import { UsageError } from "../errors";
import type { SizePreset, TrainOptions } from "./options";
import { labelTimes } from "./schedule";

export const RECIPES = ["reference", "kmeans", "spectral"] as const;
export type RecipeName = (typeof RECIPES)[number];

/** Images the kmeans recipe trains on at least (the small preset's 8 epochs of a 10000-image set). */
export const KMEANS_IMAGE_BUDGET = 80000;
/** Epochs the image budget may ask for at most. */
export const KMEANS_MAX_EPOCHS = 200;

/** Spectral label passes and first labels cluster into at most this many groups per head (the eigensolver keeps 2k vectors per row). */
export const SPECTRAL_MAX_K = 256;

export interface RecipeChoices {
  recipe: RecipeName;
  initLabels: "random" | "kmeans" | "spectral";
  relabel: "sinkhorn" | "spectral";
  lrSchedule: "step" | "cosine";
  /** Warm-up fraction of all steps (cosine schedule). */
  warmup: number;
  /** Scheduled label passes before this fraction of all training images are dropped (the last pass always runs). */
  firstPass: number;
}

interface RecipeSpec {
  initLabels: RecipeChoices["initLabels"];
  relabel: RecipeChoices["relabel"];
  lrSchedule: RecipeChoices["lrSchedule"];
  warmup: number;
  firstPass: number;
  preset: (base: SizePreset, n: number) => Partial<SizePreset>;
}

const SPECS: Record<RecipeName, RecipeSpec> = {
  reference: { initLabels: "random", relabel: "sinkhorn", lrSchedule: "step", warmup: 0, firstPass: 0, preset: () => ({}) },
  kmeans: {
    initLabels: "kmeans",
    relabel: "sinkhorn",
    lrSchedule: "cosine",
    warmup: 0.05,
    firstPass: 0.99,
    preset: (base, n) => ({ epochs: budgetEpochs(base, n) }),
  },
  spectral: {
    initLabels: "spectral",
    relabel: "spectral",
    lrSchedule: "cosine",
    warmup: 0.05,
    firstPass: 0.5,
    preset: (base, n) => ({ epochs: budgetEpochs(base, n), nopts: 2 }),
  },
};

/** Epochs of the image budget: ceil(KMEANS_IMAGE_BUDGET / n), at least the preset's, at most KMEANS_MAX_EPOCHS. */
function budgetEpochs(base: SizePreset, n: number): number {
  return Math.min(KMEANS_MAX_EPOCHS, Math.max(base.epochs, Math.ceil(KMEANS_IMAGE_BUDGET / n)));
}

/**
 * The recipe a run gets when --recipe is not given: spectral for small images
 * (at most 64 px), reference for larger ones and for --distributed runs (the
 * sharded label pass solves Sinkhorn only). The spectral recipe beat the
 * reference on Fashion-MNIST and on the built-in synthetic set (docs/quality.md);
 * ImageNet-sized runs keep the reference's K = 3000, beyond spectral's reach.
 */
export function defaultRecipe(smallImages: boolean, distributed = false): RecipeName {
  return smallImages && !distributed ? "spectral" : "reference";
}

/**
 * Resolve --recipe against the explicit flags: the recipe's choices fill what
 * is unset; a flag that contradicts the recipe named with --recipe is refused
 * naming both (a recipe picked by default yields to the flag). Returns the
 * preset override for resolveOptions and the choices for the training loop.
 */
export function resolveRecipe(
  o: TrainOptions,
  smallImages: boolean,
  n: number,
  base: SizePreset,
): { choices: RecipeChoices; presetOverride: Partial<SizePreset> } {
  const named = o.recipe;
  if (named !== undefined && !(RECIPES as readonly string[]).includes(named))
    throw new UsageError(`--recipe must be one of ${RECIPES.join(", ")}, got ${named}`);
  const recipe = (named ?? defaultRecipe(smallImages, o.distributed === true)) as RecipeName;
  const spec = SPECS[recipe];
  const conflict = (flag: string, value: unknown, wanted: unknown) => {
    if (named !== undefined && value !== undefined && value !== wanted)
      throw new UsageError(`--recipe ${recipe} uses ${flag} ${wanted}; it contradicts ${flag} ${value} (drop one of them)`);
  };
  conflict("--init-labels", o.initLabels, spec.initLabels);
  conflict("--relabel", o.relabel, spec.relabel);
  conflict("--lr-schedule", o.lrSchedule, spec.lrSchedule);
  if (named !== undefined && spec.lrSchedule === "cosine" && o.lrdrop !== undefined && o.lrSchedule === undefined)
    throw new UsageError(`--recipe ${recipe} uses --lr-schedule cosine; it contradicts --lrdrop ${o.lrdrop} (a step-schedule flag; drop one of them)`);
  const initLabels = o.initLabels ?? spec.initLabels;
  const relabel = o.relabel ?? spec.relabel;
  // --lrdrop under the default recipe asks for the step schedule it belongs to
  const lrSchedule = o.lrSchedule ?? (named === undefined && o.lrdrop !== undefined ? "step" : spec.lrSchedule);
  const warmup = o.warmup ?? (lrSchedule === "cosine" ? (spec.lrSchedule === "cosine" ? spec.warmup : SPECS.kmeans.warmup) : 0);
  if (!(warmup >= 0 && warmup < 1)) throw new UsageError(`--warmup must be a fraction in [0, 1), got ${warmup}`);
  conflict("--first-pass", o.firstPass, spec.firstPass);
  // k-means labels are not re-solved on the untrained network; random ones must be
  // (spectral label passes on a recipe without them: the spectral recipe's first pass)
  const firstPass =
    o.firstPass ?? (relabel === "spectral" && spec.relabel !== "spectral" ? SPECS.spectral.firstPass : initLabels === spec.initLabels ? spec.firstPass : 0);
  if (!(firstPass >= 0 && firstPass < 1)) throw new UsageError(`--first-pass must be a fraction in [0, 1), got ${firstPass}`);
  if (initLabels === "random" && relabel === "spectral")
    throw new UsageError(`--relabel spectral needs --init-labels kmeans or spectral (the network's features are clustered only after it learned first labels)`);
  if (initLabels === "random" && firstPass > 0)
    throw new UsageError(`--first-pass ${firstPass} needs --init-labels kmeans or spectral (random first labels must be re-solved before training)`);
  if (lrSchedule === "step" && warmup > 0) throw new UsageError(`--warmup ${warmup} needs --lr-schedule cosine (the step schedule has no warm-up)`);
  return {
    choices: { recipe, initLabels, relabel, lrSchedule, warmup, firstPass },
    presetOverride: spec.preset(base, n),
  };
}

/**
 * A run's label-pass times (images seen) from its resolved flags: the
 * quadratic schedule (schedule.ts labelTimes), without the pass on the
 * untrained network when the first labels are k-means and without the passes
 * before --first-pass. train and the resume check both use it.
 */
export function labelSchedule(f: { epochs: number; nopts: number; initLabels?: string; firstPass?: number; relabel?: string }, n: number): number[] {
  if (f.relabel === "spectral") return spreadTimes(f.epochs * n, f.nopts, f.firstPass ?? 0);
  const all = labelTimes(f.epochs, n, f.nopts);
  const init = f.initLabels === "kmeans" || f.initLabels === "spectral" ? "kmeans" : "random";
  const first = f.firstPass ?? 0;
  return init === "kmeans" || first > 0 ? dropEarlyPasses(all, first, f.epochs * n, init) : all;
}

/**
 * Spectral label passes: `nopts` times evenly spaced from firstPass x total to
 * total (nopts 1: only the end), never at 0 (the first labels come from the pixels).
 */
export function spreadTimes(total: number, nopts: number, firstPass: number): number[] {
  if (nopts <= 1) return [total];
  const out: number[] = [];
  for (let i = 0; i < nopts; i++) out.push(Math.max(1, Math.round(total * (firstPass + ((1 - firstPass) * i) / (nopts - 1)))));
  return out;
}

/** The label-pass times (images seen) left after --first-pass: none before f x total, except the last. */
export function dropEarlyPasses(times: number[], firstPass: number, total: number, initLabels: RecipeChoices["initLabels"]): number[] {
  const lim = firstPass * total;
  return times.filter((t, i) => i === times.length - 1 || (initLabels === "kmeans" ? t > 0 && t >= lim : t >= lim));
}

/**
 * Learning rate of a step. step: the reference's lr x 0.1^floor(epoch / lrdrop).
 * cosine: linear warm-up from lr/warmupSteps to lr over the first warmup x
 * total steps, then lr x (1 + cos(pi t)) / 2 with t from 0 to 1 over the rest.
 */
export function stepLearningRate(
  c: Pick<RecipeChoices, "lrSchedule" | "warmup">,
  lr: number,
  lrdrop: number,
  epoch: number,
  step: number,
  totalSteps: number,
): number {
  if (c.lrSchedule === "step") return lr * Math.pow(0.1, Math.floor(epoch / lrdrop));
  const wu = Math.round(c.warmup * totalSteps);
  if (step < wu) return (lr * (step + 1)) / wu;
  const t = (step - wu) / Math.max(1, totalSteps - wu);
  return lr * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, t)));
}
