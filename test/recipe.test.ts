// --recipe: the reference recipe keeps today's schedule and hyper-parameters;
// the kmeans recipe starts from k-means labels, drops the early passes, runs a
// cosine schedule and scales its epochs to the data; the spectral recipe (the
// default for small images) starts from spectral clustering of the pixels and
// re-labels by spectral clustering of the features; contradicting flags and
// heads larger than the data are refused (exit 2, one line).
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";
import { labelTimes, learningRate } from "../lib/train/schedule";
import { resolveOptions, SIZE_PRESETS } from "../lib/train/options";
import { resolveRecipe, stepLearningRate, dropEarlyPasses, spreadTimes, labelSchedule, KMEANS_IMAGE_BUDGET } from "../lib/train/recipe";
import { matchLabels, assignMax } from "../lib/train/match";
import { Prng } from "../lib/prng";

const cli = path.join(packageRoot(), ".build-ts/lib/cli.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-recipe-"));
const FLAGS = ["--synthetic-count", "600", "--batch-size", "100", "--nopts", "4", "--eval-test", "false", "--threads", "2", "--epochs", "2"];

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, "train", ...args], { encoding: "utf8", env: { ...process.env, SELFLABEL_CACHE_DIR: path.join(tmp, "cache") } });
}
function records(exp: string): Record<string, any>[] {
  return fs
    .readFileSync(path.join(exp, "log.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}
function oneLine(r: ReturnType<typeof run>, re: RegExp) {
  assert.equal(r.status, 2, `exit ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], re);
}

test("recipes resolve: reference = today's small-image preset, step lr, first pass at 0; kmeans scales epochs to the data", () => {
  const base = SIZE_PRESETS.small;
  const ref = resolveRecipe({ recipe: "reference" }, true, 60000, base);
  assert.deepEqual(ref.choices, { recipe: "reference", initLabels: "random", relabel: "sinkhorn", lrSchedule: "step", warmup: 0, firstPass: 0 });
  assert.deepEqual(ref.presetOverride, {});
  const o = resolveOptions({ ...ref.choices }, true, ref.presetOverride);
  for (const k of Object.keys(base) as (keyof typeof base)[]) assert.deepEqual(o[k], k === "ncl" ? [base.ncl] : base[k], k);
  // default: spectral for small images, reference for large ones and for --distributed (docs/quality.md)
  assert.equal(resolveRecipe({}, true, 60000, base).choices.recipe, "spectral");
  assert.equal(resolveRecipe({ distributed: true }, true, 60000, base).choices.recipe, "reference");
  assert.equal(resolveRecipe({}, false, 60000, SIZE_PRESETS.reference).choices.recipe, "reference");
  const sp = resolveRecipe({ recipe: "spectral" }, true, 60000, base);
  assert.deepEqual(sp.choices, { recipe: "spectral", initLabels: "spectral", relabel: "spectral", lrSchedule: "cosine", warmup: 0.05, firstPass: 0.5 });
  assert.deepEqual(sp.presetOverride, { epochs: base.epochs, nopts: 2 });
  const km = (n: number) => resolveRecipe({ recipe: "kmeans" }, true, n, base).presetOverride.epochs;
  assert.equal(km(60000), base.epochs, "large sets keep the preset's epochs");
  assert.equal(km(2000), Math.ceil(KMEANS_IMAGE_BUDGET / 2000));
  assert.equal(km(10), 200, "capped");
  // --init-labels kmeans alone (the default recipe) takes the flag; --lrdrop under it keeps the step schedule
  assert.deepEqual(resolveRecipe({ recipe: "reference", initLabels: undefined, lrdrop: 3 }, true, 600, base).choices.lrSchedule, "step");
  assert.deepEqual(resolveRecipe({ initLabels: "kmeans", lrdrop: 3 }, false, 600, base).choices, {
    recipe: "reference",
    initLabels: "kmeans",
    relabel: "sinkhorn",
    lrSchedule: "step",
    warmup: 0,
    firstPass: 0,
  });
  // under a named kmeans recipe --lrdrop is refused
  assert.throws(() => resolveRecipe({ recipe: "kmeans", lrdrop: 3 }, true, 600, base), /--recipe kmeans uses --lr-schedule cosine; it contradicts --lrdrop 3/);
  assert.throws(() => resolveRecipe({ recipe: "reference", initLabels: "kmeans" }, true, 600, base), /--recipe reference uses --init-labels random; it contradicts --init-labels kmeans/);
  assert.throws(() => resolveRecipe({ initLabels: "random", firstPass: 0.5 }, false, 600, base), /--first-pass 0.5 needs --init-labels kmeans/);
  assert.throws(() => resolveRecipe({ recipe: "spectral", relabel: "sinkhorn" }, true, 600, base), /--recipe spectral uses --relabel spectral; it contradicts --relabel sinkhorn/);
  assert.throws(() => resolveRecipe({ recipe: "reference", relabel: "spectral" }, true, 600, base), /--recipe reference uses --relabel sinkhorn; it contradicts --relabel spectral/);
  assert.throws(() => resolveRecipe({ initLabels: "random", relabel: "spectral" }, false, 600, base), /--relabel spectral needs --init-labels kmeans or spectral/);
});

test("cosine schedule with warm-up; dropEarlyPasses keeps the last pass", () => {
  const c = { lrSchedule: "cosine" as const, warmup: 0.1 };
  assert.equal(stepLearningRate(c, 0.05, 6, 0, 0, 100), 0.005);
  assert.equal(stepLearningRate(c, 0.05, 6, 0, 9, 100), 0.05);
  assert.ok(Math.abs(stepLearningRate(c, 0.05, 6, 0, 55, 100) - 0.025) < 1e-15);
  assert.ok(stepLearningRate(c, 0.05, 6, 0, 99, 100) < 0.05 * 1e-3);
  for (const e of [0, 5, 6, 13]) assert.equal(stepLearningRate({ lrSchedule: "step", warmup: 0 }, 0.05, 6, e, 0, 1), learningRate(0.05, e, 6));
  const t = labelTimes(8, 1000, 10);
  assert.deepEqual(dropEarlyPasses(t, 0.25, 8000, "kmeans"), t.filter((x) => x >= 2000));
  assert.deepEqual(dropEarlyPasses(t, 0, 8000, "kmeans"), t.slice(1));
  assert.deepEqual(dropEarlyPasses(t, 0, 8000, "random"), t);
  assert.deepEqual(dropEarlyPasses([0, 10], 0.99, 10, "kmeans"), [10]);
});

test("--recipe reference: the reference schedule (pass at 0, quadratic times, step lr per epoch, random first labels)", () => {
  const exp = path.join(tmp, "ref");
  const r = run(["--exp", exp, ...FLAGS, "--lrdrop", "1", "--recipe", "reference"]);
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /first labels: k-means/);
  assert.match(r.stdout, /recipe reference, 2 epochs/);
  const rec = records(exp);
  const start = rec.find((x) => x.event === "start")!;
  assert.deepEqual([start.flags.recipe, start.flags.initLabels, start.flags.lrSchedule, start.flags.firstPass], ["reference", "random", "step", 0]);
  // a pass runs before the first batch at or past its time (batches of 100)
  assert.deepEqual(rec.filter((x) => x.event === "labels").map((x) => x.seen), labelTimes(2, 600, 4).map((t) => Math.ceil(t / 100) * 100));
  assert.deepEqual(rec.filter((x) => x.event === "epoch").map((x) => x.lr), [0.05, learningRate(0.05, 1, 1)]);
});

test("--recipe kmeans: k-means first labels, no pass on the untrained network, cosine lr, the last pass after the final batch", () => {
  const exp = path.join(tmp, "km");
  const r = run(["--exp", exp, ...FLAGS, "--recipe", "kmeans"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /recipe kmeans, 2 epochs/);
  assert.match(r.stdout, /^first labels: k-means on the raw pixels/m);
  assert.match(r.stdout, /^baseline: k-means \(k=10\) on the raw pixels \(32x32x3\)/m);
  const rec = records(exp);
  const seen = rec.filter((x) => x.event === "labels").map((x) => x.seen);
  assert.deepEqual(seen, labelTimes(2, 600, 4).filter((t) => t >= 0.99 * 1200).map((t) => Math.ceil(t / 100) * 100));
  // the epoch record carries the lr of the epoch's last step
  assert.deepEqual(
    rec.filter((x) => x.event === "epoch").map((x) => x.lr),
    [5, 11].map((s) => stepLearningRate({ lrSchedule: "cosine", warmup: 0.05 }, 0.05, 6, 0, s, 12)),
  );
});

test("bad input: a recipe with a contradicting flag names both; a head larger than the data; exit 2, nothing written", () => {
  const exp = path.join(tmp, "bad");
  oneLine(run(["--exp", exp, ...FLAGS, "--recipe", "reference", "--init-labels", "kmeans"]), /--recipe reference uses --init-labels random; it contradicts --init-labels kmeans/);
  oneLine(run(["--exp", exp, ...FLAGS, "--recipe", "kmeans", "--lr-schedule", "step"]), /--recipe kmeans uses --lr-schedule cosine; it contradicts --lr-schedule step/);
  oneLine(run(["--exp", exp, ...FLAGS, "--recipe", "kmeans", "--lrdrop", "2"]), /--recipe kmeans .* --lrdrop 2/);
  oneLine(run(["--exp", exp, ...FLAGS, "--ncl", "700"]), /--ncl 700 is larger than the dataset \(600 images\)/);
  oneLine(run(["--exp", exp, ...FLAGS, "--warmup", "1.5"]), /--warmup must be a fraction in \[0, 1\), got 1.5/);
  assert.equal(fs.existsSync(exp), false);
});

test("spectral schedule and id matching: passes evenly spaced from --first-pass to the end; the Hungarian matching is the best permutation", () => {
  assert.deepEqual(spreadTimes(8000, 2, 0.5), [4000, 8000]);
  assert.deepEqual(spreadTimes(8000, 3, 0.5), [4000, 6000, 8000]);
  assert.deepEqual(spreadTimes(8000, 1, 0.5), [8000]);
  assert.deepEqual(labelSchedule({ epochs: 8, nopts: 2, initLabels: "spectral", firstPass: 0.5, relabel: "spectral" }, 1000), [4000, 8000]);
  // brute force over all permutations of k = 5 on random overlaps
  const rng = new Prng(3);
  const perms = (a: number[]): number[][] => (a.length <= 1 ? [a] : a.flatMap((x, i) => perms([...a.slice(0, i), ...a.slice(i + 1)]).map((p) => [x, ...p])));
  for (let t = 0; t < 20; t++) {
    const k = 5;
    const w = Float64Array.from({ length: k * k }, () => rng.int(0, 50));
    const p = assignMax(w, k);
    const score = (q: ArrayLike<number>) => Array.from({ length: k }, (_, r) => w[r * k + q[r]]).reduce((a, b) => a + b, 0);
    assert.equal(new Set(p).size, k);
    assert.equal(score(p), Math.max(...perms([0, 1, 2, 3, 4]).map(score)));
  }
  // a relabelled copy is mapped back exactly
  const prev = Int32Array.from({ length: 200 }, () => rng.int(0, 7));
  const shuffled = Int32Array.from(prev, (l) => (l * 3 + 2) % 7);
  assert.deepEqual(matchLabels(prev, shuffled, 7), prev);
});

test("--recipe spectral (the small-image default): spectral first labels, spectral label passes half way and at the end, cosine lr; bad flags", () => {
  const exp = path.join(tmp, "sp");
  const r = run(["--exp", exp, ...FLAGS.filter((f, i, a) => f !== "--nopts" && a[i - 1] !== "--nopts")]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /recipe spectral, 2 epochs, 2 label passes/);
  assert.match(r.stdout, /^first labels: spectral clustering of the raw pixels \(.*NMI [0-9.]+/m);
  assert.match(r.stdout, /^label pass 2 \(after 1200 images\): spectral clustering of the features, [0-9.]+% of the graph's edges inside clusters/m);
  const rec = records(exp);
  assert.deepEqual(rec.filter((x) => x.event === "labels").map((x) => x.seen), [600, 1200]);
  const start = rec.find((x) => x.event === "start")!;
  assert.deepEqual([start.flags.recipe, start.flags.initLabels, start.flags.relabel], ["spectral", "spectral", "spectral"]);
  const csv = fs.readFileSync(path.join(exp, "labels.csv"), "utf8").trim().split("\n");
  assert.equal(csv.length, 601);
  assert.ok(new Set(csv.slice(1).map((l) => l.split(",")[2])).size > 1);
  const bad = path.join(tmp, "sp-bad");
  oneLine(run(["--exp", bad, ...FLAGS, "--recipe", "spectral", "--relabel", "sinkhorn"]), /--recipe spectral uses --relabel spectral; it contradicts --relabel sinkhorn/);
  oneLine(run(["--exp", bad, ...FLAGS, "--relabel", "spectral", "--ncl", "300"]), /--relabel spectral clusters into at most 256 groups per head; --ncl 300 needs --recipe reference/);
  assert.equal(fs.existsSync(bad), false);
});
