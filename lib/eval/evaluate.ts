// The eval command's work: pseudo-label quality per head, argmax predictions on
// the test split, kNN on the frozen penultimate features, and linear probes on
// the penultimate features and, for AlexNet as the reference's probes, on the
// pooled conv1..conv5 activations (recipe and sources: ./probe.ts).
import { Dataset, Loader } from "../data";
import { InputError } from "../errors";
import { Model } from "../model";
import { clusteringScores, clusterAccuracy } from "../metrics";
import { Experiment, DataOverride, openTrainData, openTestData, loadModel } from "./experiment";
import { knnClassify, accuracy } from "./knn";
import { resolveProbeLayers, extractTaps, referenceRecipe, trainLayerProbe, describePool, ProbeGeometry, ProbeLayer, ProbeRecipe } from "./probe";
import type { TapPool } from "../model";
import { evalBaselines, formatBaselines, KmeansBaseline } from "./baselines";

export interface Quality {
  nmi: number;
  ami: number;
  ari: number;
  /** Hungarian one-to-one matching accuracy. */
  accuracy: number;
  /** Majority-vote accuracy. */
  purity: number;
}

export interface HeadReport {
  head: number;
  clusters: number;
  /** Pseudo-labels against the training classes (null without ground truth). */
  selfLabels: Quality | null;
  /** Argmax predictions on the test split (null without one). */
  test: Quality | null;
}

export interface EvalReport {
  exp: string;
  arch: string;
  epoch: number;
  source: { params: string; labels: string };
  dataset: { name: string; fingerprint: string; train: number; test: number | null; classes: number };
  heads: HeadReport[];
  knn: { temperature: number; results: { k: number; accuracy: number }[]; queries: number; bank: number; seconds: number } | null;
  /** The penultimate layer's probe (also a row of `probes`). */
  probe: { epochs: number; seed: number; testTop1: number; trainTop1: number; finalLoss: number; seconds: number } | null;
  /** One linear probe per --probe-layers entry, in that order (null: none ran). */
  probes: ProbeRow[] | null;
  /** How every probe was trained (the reference's recipe scaled to the epochs; see lib/eval/probe.ts). */
  probeRecipe: ProbeRecipe | null;
  /** k-means on raw pixels and on the penultimate features of the test images (the training images without a labelled test split), one pair per head size; null: not run. */
  baselines: { split: string; results: KmeansBaseline[] } | null;
  /** Why kNN / probe / test predictions are missing, when they are. */
  notes: string[];
  seconds: { trainFeatures: number; testForward: number; probeFeatures: number; total: number };
}

export interface ProbeRow extends ProbeGeometry {
  /** Alias (conv1, layer2, penultimate) or module name. */
  layer: string;
  pooling: TapPool;
  testTop1: number;
  trainTop1: number;
  finalLoss: number;
  seconds: number;
}

export interface EvalOptions extends DataOverride {
  /** Evaluate these weights (a PyTorch .pth, a converted .safetensors or one of our checkpoints) instead of the experiment's. */
  model?: string;
  ks?: number[];
  temperature?: number;
  probeEpochs?: number;
  /** --probe-layers: default | all | none | penultimate | comma list (see resolveProbeLayers). */
  probeLayers?: string;
  /** MiB the pooled probe features (train + test) may hold at once; layers beyond it run in further passes. Default 4096. */
  probeMemory?: number;
  seed?: number;
  /** k-means baselines (raw pixels and learned features; default true). */
  kmeans?: boolean;
  log?: (line: string) => void;
  warn?: (line: string) => void;
}

async function quality(pred: Int32Array, truth: Int32Array): Promise<Quality> {
  const s = await clusteringScores(pred, truth);
  const a = await clusterAccuracy(pred, truth);
  return { nmi: s.nmi, ami: s.ami, ari: s.ari, accuracy: a.accuracy, purity: a.purity };
}

/** Penultimate features (N x D) of every image, level-0 (test-time) preprocessing, eval-mode BN. */
export async function extractFeatures(model: Model, ds: Dataset): Promise<Float32Array> {
  const D = model.featureDim;
  const size = model.inputShape[1];
  const feats = new Float32Array(ds.count * D);
  const loader = new Loader(ds, { batchSize: 512, size, level: 0, seed: 0, shuffle: false });
  for await (const b of loader.epoch(0)) {
    const f = await model.forward(b.data, { mode: "eval", output: "features" });
    for (let i = 0; i < b.size; i++) feats.set(f.subarray(i * D, (i + 1) * D), b.indices[i] * D);
  }
  return feats;
}

/** Features and per-head argmax predictions of every image. */
async function featuresAndPredictions(model: Model, ds: Dataset): Promise<{ feats: Float32Array; preds: Int32Array[] }> {
  const D = model.featureDim;
  const size = model.inputShape[1];
  const feats = new Float32Array(ds.count * D);
  const preds = model.numClasses.map(() => new Int32Array(ds.count));
  const loader = new Loader(ds, { batchSize: 512, size, level: 0, seed: 0, shuffle: false });
  for await (const b of loader.epoch(0)) {
    const [f, ...out] = await model.forward(b.data, { mode: "eval", output: "features+argmax" });
    for (let i = 0; i < b.size; i++) feats.set(f.subarray(i * D, (i + 1) * D), b.indices[i] * D);
    out.forEach((p, h) => {
      for (let i = 0; i < b.size; i++) preds[h][b.indices[i]] = p[i];
    });
  }
  return { feats, preds };
}

function numClassesOf(ds: Dataset): number {
  let mx = -1;
  for (const l of ds.labels ?? []) mx = Math.max(mx, l);
  return Math.max(ds.classes.length, mx + 1);
}

export async function evaluate(e: Experiment, o: EvalOptions = {}): Promise<EvalReport> {
  const log = o.log ?? (() => {});
  const t0 = Date.now();
  const notes: string[] = [];
  const train = await openTrainData(e, o, o.warn);
  let test: Dataset | null = null;
  let model: Model | null = null;
  try {
    const N = train.count;
    for (let h = 0; h < e.labels.length; h++)
      if (e.labels[h].length !== N) throw new InputError(`${e.exp}: head ${h} has ${e.labels[h].length} labels for ${N} images`);
    const t = await openTestData(e, o);
    test = t.ds;
    if (!test) notes.push(`no test split (${t.reason}): no test predictions, kNN or linear probe`);
    else if (!test.labels) notes.push("the test split has no labels: no test predictions, kNN or linear probe");
    if (!train.labels) notes.push("the training data has no labels: no pseudo-label scores, kNN or linear probe");
    const C = numClassesOf(train);

    const heads: HeadReport[] = [];
    for (let h = 0; h < e.labels.length; h++) {
      heads.push({
        head: h,
        clusters: e.meta.numClasses[h],
        selfLabels: train.labels ? await quality(e.labels[h], train.labels) : null,
        test: null,
      });
    }

    model = await loadModel(e);
    if (o.model) {
      await model.loadPth(o.model);
      notes.push(`parameters from ${o.model}`);
    }
    const D = model.featureDim;
    const probeLayers = resolveProbeLayers(model, o.probeLayers ?? "default");
    const groups = probeGroups(probeLayers.filter((l) => !l.penultimate), N + (test ? test.count : 0), o.probeMemory ?? 4096);
    let tf = Date.now();
    log(`features of ${N} training images ...`);
    const trainFeats = await extractFeatures(model, train);
    const trainFeatureSeconds = (Date.now() - tf) / 1000;
    let testForward = 0;
    let knn: EvalReport["knn"] = null;
    let probe: EvalReport["probe"] = null;
    let probes: ProbeRow[] | null = null;
    let probeRecipe: ProbeRecipe | null = null;
    let probeFeatures = 0;
    let baselines: EvalReport["baselines"] = null;
    const headKs = heads.map((h) => h.clusters);
    if (o.kmeans !== false && !(test && test.labels) && train.labels)
      baselines = { split: train.split, results: await evalBaselines(train, trainFeats, D, headKs, log) };
    if (test && test.labels) {
      tf = Date.now();
      log(`features and predictions of ${test.count} test images ...`);
      const { feats: testFeats, preds } = await featuresAndPredictions(model, test);
      testForward = (Date.now() - tf) / 1000;
      for (let h = 0; h < heads.length; h++) heads[h].test = await quality(preds[h], test.labels);
      if (o.kmeans !== false) baselines = { split: test.split, results: await evalBaselines(test, testFeats, D, headKs, log) };
      if (train.labels) {
        const temperature = o.temperature ?? 0.1;
        const tk = Date.now();
        const r = await knnClassify(trainFeats, train.labels, testFeats, D, C, { ks: o.ks ?? [10, 200], temperature });
        knn = {
          temperature,
          results: r.ks.map((k, a) => ({ k, accuracy: accuracy(r.predictions[a], test!.labels!) })),
          queries: test.count,
          bank: N,
          seconds: (Date.now() - tk) / 1000,
        };
        if (probeLayers.length) {
          const recipe = referenceRecipe(o.probeEpochs ?? 10, o.seed ?? 0);
          const results = new Map<ProbeLayer, ProbeRow>();
          const row = (l: ProbeLayer, r: Awaited<ReturnType<typeof trainLayerProbe>>): ProbeRow => ({
            layer: l.name,
            module: l.module,
            shape: l.shape,
            pooling: l.pool,
            pooled: l.pooled,
            dim: l.dim,
            ...r,
          });
          const pen = probeLayers.find((l) => l.penultimate);
          if (pen) {
            log(`linear probe on the penultimate features (${D} dims, ${recipe.epochs} epochs) ...`);
            results.set(pen, row(pen, await trainLayerProbe(pen, trainFeats, train.labels, testFeats, test.labels, C, recipe)));
          }
          for (const g of groups) {
            const tt = Date.now();
            log(`pooled activations of ${g.map((l) => l.name).join(", ")} (${g.map((l) => l.dim).join(", ")} dims) ...`);
            const xs = await extractTaps(model, train, g);
            const xts = await extractTaps(model, test, g);
            probeFeatures += (Date.now() - tt) / 1000;
            log(`linear probes on ${g.map((l) => l.name).join(", ")} (${recipe.epochs} epochs) ...`);
            const rs = await Promise.all(g.map((l, i) => trainLayerProbe(l, xs[i], train.labels!, xts[i], test!.labels!, C, recipe)));
            g.forEach((l, i) => results.set(l, row(l, rs[i])));
          }
          probes = probeLayers.map((l) => results.get(l)!);
          probeRecipe = recipe;
          const p = pen && results.get(pen);
          if (p) {
            probe = { epochs: recipe.epochs, seed: recipe.seed, testTop1: p.testTop1, trainTop1: p.trainTop1, finalLoss: p.finalLoss, seconds: p.seconds };
          }
        }
      }
    }
    return {
      exp: e.exp,
      arch: e.meta.arch,
      epoch: e.meta.epoch,
      source: e.source,
      dataset: { name: train.name, fingerprint: train.fingerprint, train: N, test: test ? test.count : null, classes: C },
      heads,
      knn,
      probe,
      probes,
      probeRecipe,
      baselines,
      notes: [...e.notes, ...notes],
      seconds: { trainFeatures: trainFeatureSeconds, testForward, probeFeatures, total: (Date.now() - t0) / 1000 },
    };
  } finally {
    model?.dispose();
    await test?.close();
    await train.close();
  }
}

/**
 * Split the conv-level probe layers into passes whose pooled features (rows x
 * dim float32, train and test) fit `mib`; a layer alone over it is an error
 * that says what to change.
 */
export function probeGroups(layers: ProbeLayer[], rows: number, mib: number): ProbeLayer[][] {
  const budget = mib * 2 ** 20;
  const groups: ProbeLayer[][] = [];
  let cur: ProbeLayer[] = [];
  let used = 0;
  for (const l of layers) {
    const bytes = 4 * rows * l.dim;
    if (bytes > budget) {
      throw new InputError(
        `--probe-layers: the ${l.name} probe's features (${rows} images x ${l.dim} dims) need ${Math.ceil(bytes / 2 ** 20)} MiB, ` +
          `more than --probe-memory ${mib}; raise --probe-memory or leave ${l.name} out`,
      );
    }
    if (used + bytes > budget && cur.length) {
      groups.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(l);
    used += bytes;
  }
  if (cur.length) groups.push(cur);
  return groups;
}

const pct = (x: number) => (100 * x).toFixed(2).padStart(6);
const f3 = (x: number) => x.toFixed(3).padStart(6);

/** The human-readable table. */
export function formatReport(r: EvalReport): string {
  const L: string[] = [];
  L.push(`experiment ${r.exp}: ${r.arch}, epoch ${r.epoch}; parameters from ${r.source.params}, pseudo-labels from ${r.source.labels}`);
  L.push(`data ${r.dataset.name}: ${r.dataset.train} training images${r.dataset.test !== null ? `, ${r.dataset.test} test images` : ""}, ${r.dataset.classes} classes`);
  L.push("");
  L.push("head  clusters  labels                  NMI   aNMI    ARI   acc %  purity %");
  for (const h of r.heads) {
    const row = (what: string, q: Quality | null) =>
      `${String(h.head).padEnd(4)}  ${String(h.clusters).padStart(8)}  ${what.padEnd(20)}` +
      (q ? `${f3(q.nmi)} ${f3(q.ami)} ${f3(q.ari)}  ${pct(q.accuracy)}    ${pct(q.purity)}` : "   n/a");
    L.push(row("pseudo-labels/train", h.selfLabels));
    L.push(row("argmax/test", h.test));
  }
  if (r.baselines && r.baselines.results.length) L.push(...formatBaselines(r.baselines.results, r.baselines.split));
  L.push("");
  if (r.knn) {
    L.push(
      `kNN (cosine, weights exp(sim/${r.knn.temperature}), ${r.knn.bank} train features as bank, ${r.knn.queries} test queries, ${r.knn.seconds.toFixed(1)} s): ` +
        r.knn.results.map((x) => `k=${x.k} ${(100 * x.accuracy).toFixed(2)}%`).join(", "),
    );
  } else L.push("kNN: n/a");
  if (r.probe) {
    L.push(
      `linear probe (penultimate features, SGD ${r.probe.epochs} epochs, seed ${r.probe.seed}, ${r.probe.seconds.toFixed(1)} s): ` +
        `test top-1 ${(100 * r.probe.testTop1).toFixed(2)}% (train ${(100 * r.probe.trainTop1).toFixed(2)}%)`,
    );
  } else if (!r.probes) L.push("linear probe: n/a");
  if (r.probes && r.probeRecipe && r.probes.length) {
    const q = r.probeRecipe;
    const sched = q.milestones.length ? `x${q.gamma} at epochs ${q.milestones.join(",")}` : "constant";
    L.push("");
    L.push(
      `linear probes (frozen trunk, per-channel standardisation, softmax regression; SGD batch ${q.batch}, lr ${q.lr} ${sched} of ${q.epochs}, ` +
        `momentum ${q.momentum}, weight decay ${q.weightDecay}, seed ${q.seed}):`,
    );
    L.push("layer        module          activation   pooling               dim   test top-1 %  train top-1 %      s");
    const shape = (s: number[]) => (s[1] === 1 && s[2] === 1 ? String(s[0]) : s.join("x"));
    for (const p of r.probes) {
      L.push(
        `${p.layer.padEnd(11)}  ${p.module.padEnd(14)}  ${shape(p.shape).padEnd(11)}  ${describePool(p.pooling).padEnd(19)}  ${String(p.dim).padStart(5)}` +
          `   ${pct(p.testTop1).padStart(11)}   ${pct(p.trainTop1).padStart(12)}  ${p.seconds.toFixed(1).padStart(5)}`,
      );
    }
  }
  for (const n of r.notes) L.push(`note: ${n}`);
  return L.join("\n");
}
