// Evaluation: the native kNN against a brute-force computation (block sizes with
// short last blocks, bit for bit), the linear probes, features of a short last
// batch, and the eval / labels / clusters commands on a tiny run made here,
// including the cluster page rendered in headless Chromium, and bad input.
import "./helpers/cpu_only";
import { test, before } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { Jimp } from "jimp";
import { packageRoot } from "../lib/binding";
import { knnClassify, linearProbe, accuracy } from "../lib/eval/knn";
import { extractFeatures, formatReport, EvalReport } from "../lib/eval/evaluate";
import { openExperiment, parseCsvLine } from "../lib/eval/experiment";
import { classColour } from "../lib/eval/clusters";
import { readCheckpoint, writeCheckpoint, listCheckpointFiles } from "../lib/train/checkpoint";
import { loadSynthetic } from "../lib/data";
import { createModel } from "../lib/model";
import { nmi } from "../lib/metrics";
import { kmeans, spectral } from "../lib/kmeans";
import { pixelRows, PIXEL_SPECTRAL } from "../lib/eval/baselines";
import { Prng } from "../lib/prng";

const cli = path.join(packageRoot(), ".build-ts/lib/cli.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-eval-"));
const exp = path.join(tmp, "run");

function run(cmd: string, args: string[]) {
  return spawnSync(process.execPath, [cli, cmd, ...args], { encoding: "utf8" });
}
function oneLine(r: ReturnType<typeof run>, re: RegExp) {
  assert.equal(r.status, 2, `exit ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], re);
}

let trainStdout = "";
before(() => {
  // a tiny run: 600 synthetic images, one epoch, 2 label passes
  const r = run("train", ["--exp", exp, "--synthetic-count", "600", "--batch-size", "100", "--epochs", "1", "--nopts", "2", "--eval-test", "false", "--threads", "2"]);
  assert.equal(r.status, 0, r.stderr);
  trainStdout = r.stdout;
});

function randomFeatures(n: number, d: number, seed: number): Float32Array {
  const p = new Prng(seed);
  const a = new Float32Array(n * d);
  for (let i = 0; i < a.length; i++) a[i] = p.uniform(-1, 1);
  return a;
}

/** Brute force in one batch, in the kernel's float arithmetic (see native/core/knn.cpp). */
function bruteForce(bank: Float32Array, q: Float32Array, d: number, k: number) {
  const norm = (x: Float32Array) => {
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length / d; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += x[i * d + j] * x[i * d + j];
      const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let j = 0; j < d; j++) out[i * d + j] = x[i * d + j] * inv;
    }
    return out;
  };
  const B = norm(bank),
    Q = norm(q);
  const n = bank.length / d,
    m = q.length / d;
  const idx: number[][] = [],
    sim: number[][] = [];
  for (let i = 0; i < m; i++) {
    const s: { j: number; v: number }[] = [];
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let t = 0; t < d; t++) acc = Math.fround(acc + Math.fround(Q[i * d + t] * B[j * d + t]));
      s.push({ j, v: acc });
    }
    s.sort((a, b) => b.v - a.v || a.j - b.j);
    idx.push(s.slice(0, k).map((x) => x.j));
    sim.push(s.slice(0, k).map((x) => x.v));
  }
  return { idx, sim };
}

test("kNN: blocked top-k with short last blocks equals a single-batch brute force, bit for bit", async () => {
  const N = 1000,
    M = 37,
    D = 13,
    C = 5;
  const bank = randomFeatures(N, D, 1),
    q = randomFeatures(M, D, 2);
  const labels = Int32Array.from({ length: N }, (_, i) => (i * 7) % C);
  const bf = bruteForce(bank, q, D, 200);
  // 37 = 4 * 8 + 5 queries, 1000 = 7 * 128 + 104 bank rows: both last blocks short
  const blocked = await knnClassify(bank, labels, q, D, C, { ks: [10, 200], queryBlock: 8, bankBlock: 128 });
  const single = await knnClassify(bank, labels, q, D, C, { ks: [10, 200], queryBlock: M, bankBlock: N });
  assert.equal(blocked.k, 200);
  assert.deepEqual(blocked.indices, single.indices);
  assert.deepEqual(blocked.similarities, single.similarities);
  assert.deepEqual(blocked.predictions, single.predictions);
  for (let i = 0; i < M; i++) {
    assert.deepEqual(Array.from(blocked.indices.subarray(i * 200, (i + 1) * 200)), bf.idx[i], `query ${i}`);
    assert.deepEqual(Array.from(blocked.similarities.subarray(i * 200, (i + 1) * 200)), bf.sim[i], `query ${i}`);
  }
  // the weighted vote
  for (const [a, k] of [10, 200].entries()) {
    for (let i = 0; i < M; i++) {
      const score = new Array(C).fill(0);
      for (let j = 0; j < k; j++) score[labels[bf.idx[i][j]]] += Math.exp(bf.sim[i][j] / 0.1);
      const best = score.indexOf(Math.max(...score));
      assert.equal(blocked.predictions[a][i], best, `k=${k} query ${i}`);
    }
  }
  // k larger than the bank: all of it
  const small = await knnClassify(bank.subarray(0, 50 * D), labels.subarray(0, 50), q, D, C, { ks: [10, 200] });
  assert.equal(small.k, 50);
  assert.deepEqual(small.ks, [10, 50]);
});

test("kNN: a query equal to a bank row finds it first with similarity 1; bad input is refused", async () => {
  const D = 8;
  const bank = randomFeatures(300, D, 3);
  const q = bank.slice(17 * D, 18 * D);
  const r = await knnClassify(bank, new Int32Array(300), q, D, 1, { ks: [1] });
  assert.equal(r.indices[0], 17);
  assert.ok(Math.abs(r.similarities[0] - 1) < 1e-6); // float32 rounding of a unit vector's squared norm
  const bad = bank.slice();
  bad[5] = NaN;
  await assert.rejects(knnClassify(bad, new Int32Array(300), q, D, 1), /bank row 0 holds NaN/);
  await assert.rejects(knnClassify(bank, new Int32Array(299), q, D, 1), RangeError);
  await assert.rejects(knnClassify(bank, new Int32Array(300).fill(3), q, D, 2, { ks: [5] }), /label 3 outside/);
});

test("linear probe: deterministic from its seed, separates separable classes", async () => {
  const D = 6,
    C = 3,
    n = 900,
    m = 300;
  const p = new Prng(5);
  const make = (k: number) => {
    const x = new Float32Array(k * D),
      y = new Int32Array(k);
    for (let i = 0; i < k; i++) {
      y[i] = i % C;
      for (let j = 0; j < D; j++) x[i * D + j] = p.uniform(-1, 1) + (j === y[i] ? 4 : 0) + 10 * j; // offsets: standardisation matters
    }
    return { x, y };
  };
  const tr = make(n),
    te = make(m);
  const a = await linearProbe(tr.x, tr.y, te.x, D, C, { epochs: 5, seed: 1 });
  const b = await linearProbe(tr.x, tr.y, te.x, D, C, { epochs: 5, seed: 1 });
  assert.deepEqual(a, b);
  assert.ok(accuracy(a.testPredictions, te.y) > 0.99, `test accuracy ${accuracy(a.testPredictions, te.y)}`);
  assert.ok(a.epochLoss[4] < a.epochLoss[0]);
  await assert.rejects(linearProbe(tr.x, tr.y.map(() => 7), te.x, D, C), /label 7/);
});

test("features of the short last batch land on their own rows", async () => {
  const ds = await loadSynthetic("train", { count: 530 }); // batches of 512: the last has 18
  const model = await createModel({ arch: "smallcnn", numClasses: [10], inputShape: [3, 32, 32], seed: 3 });
  try {
    const all = await extractFeatures(model, ds);
    const D = model.featureDim;
    // the last 18 images alone, as one batch
    const { Loader } = await import("../lib/data");
    const sub = { ...ds, count: 18, read: (ix: Int32Array) => ds.read(ix.map((i) => i + 512)) } as unknown as typeof ds;
    const loader = new Loader(sub, { batchSize: 18, size: 32, level: 0, seed: 0, shuffle: false });
    for await (const b of loader.epoch(0)) {
      const f = await model.forward(b.data, { output: "features" });
      for (let i = 0; i < 18 * D; i++) {
        // eval-mode BN: per-image arithmetic; oneDNN may block differently by batch size
        assert.ok(Math.abs(f[i] - all[512 * D + i]) <= 1e-5 * (1 + Math.abs(f[i])), `feature ${i}: ${f[i]} vs ${all[512 * D + i]}`);
      }
    }
  } finally {
    model.dispose();
  }
});

test("eval --json: per-head scores, test argmax, kNN, linear probes per --probe-layers; the table", () => {
  // conv taps of smallcnn, a module by name and the penultimate features (the default for smallcnn
  // is the penultimate alone; the --model test below runs it)
  const r = run("eval", ["--exp", exp, "--json", "--threads", "2", "--probe-epochs", "2", "--probe-layers", "conv1,features.11,penultimate"]);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as EvalReport;
  assert.deepEqual(rep.source, { params: "model.safetensors", labels: "labels.csv" });
  assert.equal(rep.dataset.train, 600);
  assert.equal(rep.dataset.test, 600);
  assert.equal(rep.heads.length, 1);
  const h = rep.heads[0];
  for (const q of [h.selfLabels!, h.test!]) {
    for (const k of ["nmi", "ami", "ari", "accuracy", "purity"] as const) assert.ok(Number.isFinite(q[k]) && q[k] <= 1, `${k} ${q[k]}`);
    assert.ok(q.purity >= q.accuracy - 1e-12);
  }
  // the same NMI train printed for its final labels
  const m = /self-labels vs true classes: head 0: NMI (\d\.\d+)/.exec(trainStdout);
  assert.ok(m);
  assert.equal(h.selfLabels!.nmi.toFixed(3), m[1]);
  assert.deepEqual(rep.knn!.results.map((x) => x.k), [10, 200]);
  for (const x of rep.knn!.results) assert.ok(x.accuracy >= 0 && x.accuracy <= 1);
  assert.ok(rep.probe!.testTop1 >= 0 && rep.probe!.testTop1 <= 1);
  const table = formatReport(rep);
  assert.match(table, /head +clusters +labels +NMI +aNMI +ARI +acc % +purity %/);
  assert.match(table, /^0 +10 +pseudo-labels\/train +\d\.\d{3} +-?\d\.\d{3} +-?\d\.\d{3} +\d+\.\d\d +\d+\.\d\d$/m);
  assert.match(table, /kNN .*k=10 \d+\.\d\d%, k=200 \d+\.\d\d%/);
  assert.match(table, /linear probe .*test top-1 \d+\.\d\d%/);
  // one probe per layer: conv1 = the first block's ReLU, adaptive-max pooled within the 9600-dim budget
  assert.deepEqual(rep.probes!.map((p) => [p.layer, p.module]), [["conv1", "features.2"], ["features.11", "features.11"], ["penultimate", "avgpool"]]);
  const [c1, b4, pen] = rep.probes!;
  assert.deepEqual(c1.shape, [32, 32, 32]);
  assert.deepEqual(c1.pooling, { pool: "adaptive-max", outHeight: 17, outWidth: 17 });
  assert.equal(c1.dim, 32 * 17 * 17);
  assert.equal(b4.dim, 64 * 12 * 12);
  assert.equal(pen.dim, 128);
  for (const p of rep.probes!) assert.ok(p.testTop1 >= 0 && p.testTop1 <= 1 && p.trainTop1 >= 0 && Number.isFinite(p.finalLoss), JSON.stringify(p));
  assert.equal(rep.probe!.testTop1, pen.testTop1);
  assert.equal(rep.probe!.epochs, 2);
  assert.deepEqual(rep.probeRecipe, { epochs: 2, batch: 192, lr: 0.01, momentum: 0.9, weightDecay: 1e-5, milestones: [1], gamma: 0.1, seed: 0 });
  assert.match(table, /^linear probes \(frozen trunk, per-channel standardisation.*lr 0\.01 x0\.1 at epochs 1 of 2/m);
  assert.match(table, /^conv1 +features\.2 +32x32x32 +adaptive-max 17x17 +9248 +\d+\.\d\d +\d+\.\d\d +\d+\.\d$/m);
  assert.match(table, /^penultimate +avgpool +128 +- +128 +\d+\.\d\d/m);
});

test("eval: k-means baselines on the raw pixels and the learned features, spectral clustering of the raw pixels, of the test images, per head size", async () => {
  const r = run("eval", ["--exp", exp, "--json", "--threads", "2", "--probe-layers", "none"]);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as EvalReport;
  assert.equal(rep.baselines!.split, "test");
  const [px, ft, sp] = rep.baselines!.results;
  assert.equal(rep.baselines!.results.length, 3);
  assert.deepEqual([px.k, px.input, ft.k, ft.input], [10, "raw pixels (32x32x3)", 10, "penultimate features (128-d)"]);
  // the raw-pixel row is k-means (3 restarts, seed 0) of the test images' uint8 / 255, scored by nmi()
  const test = await loadSynthetic("test", { count: 600 });
  const { rows, d } = await pixelRows(test);
  assert.equal(d, 32 * 32 * 3);
  assert.equal(rows[5], Math.fround((await test.read(Int32Array.of(0))).data[5] / 255));
  const km = await kmeans(rows, test.count, d, 10, { restarts: 3, seed: 0 });
  assert.equal(px.nmi, await nmi(km.labels, test.labels!));
  // the spectral row is spectral() of the same rows with the spectral recipe's first-label settings
  assert.deepEqual([sp.k, sp.method, sp.input], [10, "spectral", "raw pixels (32x32x3)"]);
  const spr = await spectral(rows, test.count, d, 10, { ...PIXEL_SPECTRAL, seed: 0 });
  assert.equal(sp.nmi, await nmi(spr.labels, test.labels!));
  assert.match(formatReport(rep), /^spectral k=10 on raw pixels \(32x32x3\) of the test images: NMI/m);
  for (const x of [px, ft, sp]) assert.ok(x.nmi > 0 && x.nmi <= 1 && x.accuracy > 0 && x.accuracy <= 1, JSON.stringify(x));
  assert.match(formatReport(rep), /^k-means k=10 on raw pixels \(32x32x3\) of the test images: NMI \d\.\d{3}, ARI -?\d\.\d{3}, acc \d+\.\d\d%/m);
  assert.match(formatReport(rep), /^k-means k=10 on penultimate features \(128-d\) of the test images: NMI/m);
  const off = run("eval", ["--exp", exp, "--json", "--threads", "2", "--probe-layers", "none", "--no-kmeans"]);
  assert.equal((JSON.parse(off.stdout) as EvalReport).baselines, null);
});

test("eval --model evaluates other weights (here: the epoch-1 checkpoint) and says so; a bad file exits 2", () => {
  const ck = fs.readdirSync(path.join(exp, "checkpoints")).find((f) => f.endsWith(".safetensors"))!;
  const r = run("eval", ["--exp", exp, "--json", "--threads", "2", "--probe-epochs", "1", "--model", path.join(exp, "checkpoints", ck)]);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(r.stdout) as EvalReport & { notes: string[] };
  assert.ok(rep.notes.some((n) => n.includes(`parameters from ${path.join(exp, "checkpoints", ck)}`)), JSON.stringify(rep.notes));
  // the default --probe-layers for smallcnn: the penultimate features alone
  assert.deepEqual(rep.probes!.map((p) => p.layer), ["penultimate"]);
  const bad = path.join(tmp, "not-weights.pth");
  fs.writeFileSync(bad, "garbage");
  const rb = run("eval", ["--exp", exp, "--model", bad]);
  assert.equal(rb.status, 2, rb.stderr);
  assert.equal(rb.stderr.trim().split("\n").length, 1, rb.stderr);
});

test("labels: CSV as labels.csv, one head, JSON, --out; an unfinished run uses its checkpoint", async () => {
  const all = run("labels", ["--exp", exp]);
  assert.equal(all.status, 0, all.stderr);
  assert.equal(all.stdout, fs.readFileSync(path.join(exp, "labels.csv"), "utf8"));
  const one = run("labels", ["--exp", exp, "--head", "0"]);
  assert.equal(one.stdout.split("\n")[0], "index,path,label");
  assert.equal(one.stdout.split("\n")[5], all.stdout.split("\n")[5]);
  const out = path.join(tmp, "labels.json");
  const js = run("labels", ["--exp", exp, "--head", "0", "--out", out]);
  assert.equal(js.status, 0, js.stderr);
  const doc = JSON.parse(fs.readFileSync(out, "utf8"));
  assert.equal(doc.images.length, 600);
  assert.deepEqual(doc.images[4], { index: 4, path: null, label: Number(all.stdout.split("\n")[5].split(",")[2]) });
  // without the final outputs, the newest checkpoint's labels
  const partial = path.join(tmp, "partial");
  fs.cpSync(path.join(exp, "checkpoints"), path.join(partial, "checkpoints"), { recursive: true });
  const e = openExperiment(partial);
  assert.match(e.source.labels, /^checkpoints\/epoch-0001\.safetensors$/);
  assert.deepEqual(e.labels[0], readCheckpoint(listCheckpointFiles(exp)[0]).labels[0]);
  assert.deepEqual(parseCsvLine('1,"a,""b""",3'), ["1", 'a,"b"', "3"]);
});

test("clusters: one grid per cluster framed by true class, index.html sorted by purity", async () => {
  const out = path.join(tmp, "pages");
  const r = run("clusters", ["--exp", exp, "--out", out]);
  assert.equal(r.status, 0, r.stderr);
  const html = fs.readFileSync(path.join(out, "index.html"), "utf8");
  const pngs = fs.readdirSync(out).filter((f) => f.endsWith(".png"));
  assert.equal(pngs.length, 10);
  for (const f of pngs) assert.ok(html.includes(`src="${f}"`), f);
  const purities = [...html.matchAll(/purity (\d+\.\d)%/g)].map((x) => Number(x[1]));
  assert.equal(purities.length, 10);
  assert.deepEqual(purities, [...purities].sort((a, b) => b - a));
  // first cell of the first cluster on the page: frame colour of its first (lowest-index) image's class
  const first = Number(/<h2>cluster (\d+)<\/h2>/.exec(html)![1]);
  const labels = openExperiment(exp).labels[0];
  const ds = await loadSynthetic("train", { count: 600 });
  const firstImage = labels.findIndex((l) => l === first);
  const img = await Jimp.read(path.join(out, `cluster-${String(first).padStart(4, "0")}.png`));
  // up to 8 cells a row (fewer when the cluster is smaller) of 32 px x2 + 3 px frames, 2 px gaps
  const cols = Math.min(8, labels.filter((l) => l === first).length);
  assert.equal(img.bitmap.width, cols * (64 + 2 * 3) + (cols + 1) * 2);
  const px = img.getPixelColor(3, 3) >>> 8; // inside the frame of cell 0
  const [cr, cg, cb] = classColour(ds.labels![firstImage], 10);
  assert.equal(px, (cr << 16) | (cg << 8) | cb);
  assert.equal((await nmi(labels, ds.labels!)).toFixed(3), /NMI (\d\.\d{3})/.exec(html)![1]);
});

test("clusters page renders in headless Chromium (screenshot)", (t) => {
  const chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => fs.existsSync(p));
  if (!chromium) {
    t.skip("chromium is not installed (apt-get install chromium)");
    return;
  }
  const out = path.join(tmp, "pages");
  if (!fs.existsSync(path.join(out, "index.html"))) assert.equal(run("clusters", ["--exp", exp, "--out", out]).status, 0);
  const shot = path.join(tmp, "shot.png");
  const r = spawnSync(
    chromium,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${path.join(tmp, "chromium-profile")}`,
      "--hide-scrollbars",
      "--window-size=1200,900",
      `--screenshot=${shot}`,
      "file://" + path.join(out, "index.html"),
    ],
    { encoding: "utf8", timeout: 60000 },
  );
  assert.ok(fs.existsSync(shot), `no screenshot: exit ${r.status}, ${r.stderr}`);
  return Jimp.read(shot).then((img) => {
    assert.equal(img.bitmap.width, 1200);
    assert.equal(img.bitmap.height, 900);
    // the grids were drawn: many distinct colours (a blank or broken page has a handful)
    const seen = new Set<number>();
    const d = img.bitmap.data;
    for (let i = 0; i < d.length; i += 4 * 7) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    assert.ok(seen.size > 500, `${seen.size} colours`);
  });
});

test("bad input: no checkpoints, another dataset, head out of range: exit 2, one line", () => {
  const empty = path.join(tmp, "empty");
  fs.mkdirSync(empty, { recursive: true });
  for (const cmd of ["eval", "labels", "clusters"]) oneLine(run(cmd, ["--exp", empty]), /no checkpoints in .*empty/);
  oneLine(run("eval", ["--exp", path.join(tmp, "missing")]), /no such directory/);
  oneLine(run("labels", ["--exp", exp, "--head", "1"]), /--head 1 is out of range: .* has 1 head \(0\.\.0\)/);
  oneLine(run("clusters", ["--exp", exp, "--head", "-1"]), /--head -1 is out of range/);
  // a checkpoint that records other data (another synthetic set size) than is found
  const other = path.join(tmp, "other");
  fs.mkdirSync(path.join(other, "checkpoints"), { recursive: true });
  const ck = readCheckpoint(listCheckpointFiles(exp)[0]);
  ck.meta.flags = { ...ck.meta.flags, syntheticCount: 500 };
  writeCheckpoint(path.join(other, "checkpoints", path.basename(ck.file)), ck);
  oneLine(run("eval", ["--exp", other]), /is not the data .* was trained on \(fingerprint synthetic:v\d+:train:.*--data/);
  oneLine(run("eval", ["--exp", exp, "--probe-epochs", "0"]), /--probe-epochs must be an integer >= 1/);
  oneLine(run("eval", ["--exp", exp, "--probe-memory", "0"]), /--probe-memory must be a positive number of MiB/);
  oneLine(run("eval", ["--exp", exp, "--probe-layers", "conv1,conv9"]), /--probe-layers: no layer 'conv9' in smallcnn; use default, all, none, penultimate, conv1, conv2/);
});
