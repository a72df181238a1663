// Linear probes (lib/eval/probe.ts, native forwardTaps + core/probe_pool):
// the taps per arch and their pooled widths (the reference's 9600/9216 for
// AlexNet), taps equal to what a forward computes, native pooling against a
// PyTorch-semantics reference (hand-checked), the reference's AlexNet taps
// against PyTorch when /usr/bin/python3 has torch, the probe learning a
// separable problem and not random labels, and bad input.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as crypto from "node:crypto";
import { spawnSync } from "node:child_process";
import { createModel, Model, TapPool } from "../lib/model";
import { packageRoot } from "../lib/binding";
import { readPth, PthTensor, PyDict } from "../lib/pth";
import { probeLayers, resolveProbeLayers, referenceRecipe, trainLayerProbe, ProbeLayer } from "../lib/eval/probe";
import { linearProbe, accuracy } from "../lib/eval/knn";
import { probeGroups } from "../lib/eval/evaluate";
import { Prng } from "../lib/prng";

const root = packageRoot();

function randomImages(n: number, shape: number[], seed: number): Float32Array {
  const p = new Prng(seed);
  const a = new Float32Array(n * shape[0] * shape[1] * shape[2]);
  for (let i = 0; i < a.length; i++) a[i] = p.uniform(-2, 2);
  return a;
}

/** PyTorch's pooling (ceil_mode=False; avg counts the padding), float64, NCHW. */
function refPool(x: Float32Array, N: number, C: number, H: number, W: number, p: TapPool): { y: Float64Array; oh: number; ow: number } {
  if (p.pool === "none") return { y: Float64Array.from(x), oh: H, ow: W };
  const adaptive = !("kernel" in p);
  const oh = adaptive ? p.outHeight : Math.floor((H + 2 * (p.pad ?? 0) - p.kernel) / (p.stride ?? p.kernel)) + 1;
  const ow = adaptive ? (p.outWidth ?? p.outHeight) : Math.floor((W + 2 * (p.pad ?? 0) - p.kernel) / (p.stride ?? p.kernel)) + 1;
  const win = (i: number, n: number, o: number): [number, number] => {
    if (adaptive) return [Math.floor((i * n) / o), Math.ceil(((i + 1) * n) / o)];
    const s = p.stride ?? p.kernel;
    const b = i * s - (p.pad ?? 0);
    return [b, b + p.kernel];
  };
  const y = new Float64Array(N * C * oh * ow);
  for (let pl = 0; pl < N * C; pl++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++) {
        const [hb, he] = win(i, H, oh);
        const [wb, we] = win(j, W, ow);
        let m = -Infinity;
        let s = 0;
        for (let h = Math.max(hb, 0); h < Math.min(he, H); h++)
          for (let w = Math.max(wb, 0); w < Math.min(we, W); w++) {
            const v = x[pl * H * W + h * W + w];
            m = Math.max(m, v);
            s += v;
          }
        const count = adaptive ? (Math.min(he, H) - Math.max(hb, 0)) * (Math.min(we, W) - Math.max(wb, 0)) : (he - hb) * (we - wb);
        y[(pl * oh + i) * ow + j] = p.pool.endsWith("max") ? m : s / count;
      }
  return { y, oh, ow };
}

test("refPool itself: hand-checked MaxPool2d / AvgPool2d(3, 3, pad 1) and AdaptiveAvgPool2d on 0..24", () => {
  const x = Float32Array.from({ length: 25 }, (_, i) => i);
  assert.deepEqual([...refPool(x, 1, 1, 5, 5, { pool: "max", kernel: 3, stride: 3, pad: 1 }).y], [6, 9, 21, 24]);
  // windows rows {0,1} x cols {0,1}, divisor 9 (the padding counts): (0+1+5+6)/9
  assert.deepEqual([...refPool(x, 1, 1, 5, 5, { pool: "avg", kernel: 3, stride: 3, pad: 1 }).y].map((v) => +v.toFixed(6)), [
    +(12 / 9).toFixed(6), +((2 + 3 + 4 + 7 + 8 + 9) / 9).toFixed(6), +((10 + 11 + 15 + 16 + 20 + 21) / 9).toFixed(6), +((12 + 13 + 14 + 17 + 18 + 19 + 22 + 23 + 24) / 9).toFixed(6),
  ]);
  // adaptive 2x2 on 5: windows [0, 3) and [2, 5)
  assert.deepEqual([...refPool(x, 1, 1, 5, 5, { pool: "adaptive-avg", outHeight: 2 }).y], [6, 8, 16, 18]);
});

/** One AlexNet-small for the tests below (creating one takes seconds). */
let alexSmall: Promise<Model> | null = null;
const alexnetSmall = () => (alexSmall ??= createModel({ arch: "alexnet", archSpec: "small", numClasses: [10], inputShape: [3, 224, 224] }));

test("probe layers: the reference's AlexNet taps and widths (big and small), smallcnn and resnet taps within the budget", async () => {
  assert.deepEqual(probeLayers("alexnet").map((t) => `${t.name}=${t.module}`), [
    "conv1=features.2", "conv2=features.6", "conv3=features.10", "conv4=features.13", "conv5=features.16",
  ]);
  const m = await alexnetSmall();
  const all = resolveProbeLayers(m, "all");
  assert.deepEqual(all.map((l) => l.name), ["conv1", "conv2", "conv3", "conv4", "conv5", "penultimate"]);
  assert.deepEqual(all.map((l) => l.dim), [6400, 6912, 9600, 6400, 9216, 4096]);
  assert.ok(all.slice(0, 5).every((l) => m.trunkLayers()[l.layer].kind === "relu"));
  assert.deepEqual(all[0].pool, { pool: "max", kernel: 6, stride: 6, pad: 3 });
  assert.equal(all[5].module, "classifier.5");
  // the default probes the conv layers for alexnet only
  assert.deepEqual(resolveProbeLayers(m, "default").map((l) => l.name), all.map((l) => l.name));
  // archspec big: the same maps with the big CFG's channels (creating a big model costs seconds): the reference's sizes
  const bigC: Record<string, number> = { "features.2": 96, "features.6": 256, "features.10": 384, "features.13": 384, "features.16": 256 };
  const big = {
    arch: "alexnet",
    trunkLayers: () => m.trunkLayers().map((t) => ({ ...t, shape: [bigC[t.name] ?? t.shape[0], t.shape[1], t.shape[2]] as [number, number, number] })),
  };
  assert.deepEqual(resolveProbeLayers(big, "all").map((l) => l.dim), [9600, 9216, 9600, 9600, 9216, 4096]);
  const s = await createModel({ arch: "smallcnn", numClasses: [10], inputShape: [1, 28, 28] });
  try {
    assert.deepEqual(resolveProbeLayers(s, "default").map((l) => l.name), ["penultimate"]);
    const all = resolveProbeLayers(s, "all");
    assert.deepEqual(all.map((l) => `${l.name}=${l.module}:${l.pooled.join("x")}`), [
      "conv1=features.2:32x17x17", "conv2=features.5:32x17x17", "conv3=features.9:64x12x12", "conv4=features.12:64x12x12",
      "conv5=features.16:128x7x7", "penultimate=avgpool:128x1x1",
    ]);
    assert.ok(all.every((l) => l.dim <= 9600));
    // module names and aliases mix; duplicates collapse
    assert.deepEqual(resolveProbeLayers(s, "features.6, conv1,penultimate,features.2").map((l) => l.name), ["features.6", "conv1", "penultimate"]);
    assert.throws(() => resolveProbeLayers(s, "conv9"), /--probe-layers: no layer 'conv9' in smallcnn; use default, all, none, penultimate, conv1, .*features\.0/);
    assert.throws(() => resolveProbeLayers(s, " , "), /names no layer/);
    assert.deepEqual(resolveProbeLayers(s, "none"), []);
  } finally {
    s.dispose();
  }
  const r = await createModel({ arch: "resnet18", numClasses: [10], inputShape: [3, 32, 32] });
  try {
    assert.deepEqual(resolveProbeLayers(r, "all").map((l) => `${l.name}=${l.module}:${l.dim}`), [
      "layer1=layer1.1:9216", "layer2=layer2.1:8192", "layer3=layer3.1:9216", "layer4=layer4.1:8192", "penultimate=avgpool:512",
    ]);
  } finally {
    r.dispose();
  }
});

test("forwardTaps: the activations a forward computes; native pooling equals PyTorch's semantics; bad taps", async () => {
  const shape: [number, number, number] = [3, 12, 12];
  const m: Model = await createModel({ arch: "smallcnn", numClasses: [5], inputShape: shape, seed: 3 });
  try {
    const N = 3;
    const x = randomImages(N, shape, 7);
    const trunk = m.trunkLayers();
    const last = trunk.length - 1;
    const relu5 = trunk.findIndex((t) => t.name === "features.16");
    const [full, pen, gap] = await m.forwardTaps(x, [
      { layer: relu5, pool: "none" },
      { layer: last, pool: "none" },
      { layer: relu5, pool: "adaptive-avg", outHeight: 1 },
    ]);
    const f = await m.forward(x, { output: "features" });
    assert.deepEqual(pen, f);
    // the penultimate features are the global average of the last ReLU's map
    const [C, H, W] = trunk[relu5].shape;
    assert.equal(full.length, N * C * H * W);
    const avg = refPool(full, N, C, H, W, { pool: "adaptive-avg", outHeight: 1 }).y;
    for (let i = 0; i < f.length; i++) {
      assert.ok(Math.abs(avg[i] - f[i]) <= 1e-5 * (1 + Math.abs(f[i])), `feature ${i}: ${avg[i]} vs ${f[i]}`);
      assert.ok(Math.abs(gap[i] - f[i]) <= 1e-5 * (1 + Math.abs(f[i])));
    }
    // pooled taps of the first block's ReLU against the float64 reference
    const relu1 = trunk.findIndex((t) => t.name === "features.2");
    const [c1, h1, w1] = trunk[relu1].shape;
    const pools: TapPool[] = [
      { pool: "max", kernel: 3, stride: 3, pad: 1 },
      { pool: "max", kernel: 4, stride: 2 },
      { pool: "avg", kernel: 5, stride: 3, pad: 2 },
      { pool: "adaptive-max", outHeight: 5, outWidth: 7 },
      { pool: "adaptive-avg", outHeight: 5 },
    ];
    const got = await m.forwardTaps(x, [{ layer: relu1, pool: "none" }, ...pools.map((p) => ({ layer: relu1, ...p }))]);
    for (let k = 0; k < pools.length; k++) {
      const { y, oh, ow } = refPool(got[0], N, c1, h1, w1, pools[k]);
      assert.equal(got[k + 1].length, N * c1 * oh * ow, JSON.stringify(pools[k]));
      for (let i = 0; i < y.length; i++) assert.ok(Math.abs(y[i] - got[k + 1][i]) <= 1e-6 * (1 + Math.abs(y[i])), `${JSON.stringify(pools[k])} ${i}`);
    }
    await assert.rejects(m.forwardTaps(x, [{ layer: trunk.length, pool: "none" }]), /taps\[0\]\.layer must index the trunk's \d+ layers/);
    await assert.rejects(m.forwardTaps(x, [{ layer: 0, pool: "median" } as never]), /kind must be none, max, avg, adaptive-max or adaptive-avg, got 'median'/);
    await assert.rejects(m.forwardTaps(x, [{ layer: 0, pool: "max", kernel: 3, pad: 2 }]), /pad <= kernel \/ 2/);
    await assert.rejects(m.forwardTaps(x, [{ layer: 0, pool: "adaptive-max", outHeight: 13 }]), /output 13x13 must lie in 1x1\.\.12x12/);
    await assert.rejects(m.forwardTaps(x, []), /taps must be a non-empty array/);
  } finally {
    m.dispose();
  }
});

const PY = process.env.SELFLABEL_PYTHON ?? "/usr/bin/python3";

test("AlexNet (small) conv taps equal the reference's probes in PyTorch (features.2..16, MaxPool downsamplers)", async (t) => {
  const script = path.join(root, "scripts/make-probe-fixture.py");
  const hash = crypto.createHash("sha256").update(fs.readFileSync(script)).update(fs.readFileSync(path.join(root, "scripts/make-zoo-fixtures.py"))).digest("hex").slice(0, 16);
  const file = path.join(os.tmpdir(), `selflabel-native-probe-${hash}.pth`);
  if (!fs.existsSync(file)) {
    if (spawnSync(PY, ["-c", "import torch"], { encoding: "utf8" }).status !== 0) {
      t.skip(`skipped: ${PY} has no torch (apt-get install python3-torch)`);
      return;
    }
    const tmp = `${file}.tmp-${process.pid}`;
    const r = spawnSync(PY, [script, tmp], { encoding: "utf8", timeout: 300_000 });
    assert.equal(r.status, 0, `make-probe-fixture.py failed: ${r.stderr}`);
    fs.renameSync(tmp, file);
  }
  const fx = readPth(file) as PyDict;
  const get = (k: string) => (fx.get(k) as PthTensor).data as Float32Array;
  const m = await alexnetSmall();
  try {
    // the taps do not depend on the classifier: zeros there
    const sd: Record<string, Float32Array> = {};
    for (const t of m.tensors()) sd[t.name] = t.name.startsWith("features.") ? get(t.name) : new Float32Array(t.shape.reduce((a, b) => a * b, 1));
    await m.loadStateDict(sd);
    const layers = resolveProbeLayers(m, "conv1,conv2,conv3,conv4,conv5");
    const got = await m.forwardTaps(get("input"), layers.map((l) => ({ layer: l.layer, ...l.pool }) as never));
    layers.forEach((l, i) => {
      const want = get(`tap.${l.name}`);
      assert.equal(got[i].length, want.length, l.name);
      assert.equal(want.length, 2 * l.dim);
      let scale = 0;
      let err = 0;
      for (let j = 0; j < want.length; j++) {
        scale = Math.max(scale, Math.abs(want[j]));
        err = Math.max(err, Math.abs(want[j] - got[i][j]));
      }
      // float32, different summation orders (see zoo.test.ts): 1e-4 of the scale
      assert.ok(err <= 1e-4 * scale, `${l.name}: differs by ${(err / scale).toExponential(2)} of its scale`);
    });
  } finally {
    m.dispose();
  }
});

/** Standard normal by Box-Muller. */
function normal(p: Prng): number {
  return Math.sqrt(-2 * Math.log(1 - p.random())) * Math.cos(2 * Math.PI * p.random());
}

/** Classes as Gaussian blobs (centres from seed 0, samples from `seed`) in d = channels x spatial dims, channels on very different scales. */
function blobs(n: number, channels: number, spatial: number, C: number, seed: number, sep: number) {
  const d = channels * spatial;
  const pc = new Prng(0);
  const centres = Array.from({ length: C }, () => Float64Array.from({ length: d }, () => normal(pc)));
  const p = new Prng(seed);
  const x = new Float32Array(n * d);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % C;
    for (let j = 0; j < d; j++) {
      const scale = 1 + 10 * Math.floor(j / spatial);
      x[i * d + j] = scale * (sep * centres[y[i]][j] + normal(p));
    }
  }
  return { x, y, d };
}

test("probe (reference recipe, per-channel standardisation): > 95% on a separable problem, chance on random labels", async () => {
  const C = 4;
  const tr = blobs(800, 12, 9, C, 1, 0.5);
  const te = blobs(400, 12, 9, C, 2, 0.5);
  const layer = { name: "t", module: "t", layer: 0, shape: [12, 3, 3], pool: { pool: "none" }, pooled: [12, 3, 3], dim: tr.d, penultimate: false } as ProbeLayer;
  const r = referenceRecipe(10, 0);
  assert.deepEqual(r.milestones, [3, 6, 8]);
  assert.deepEqual(referenceRecipe(36).milestones, [10, 20, 30]);
  assert.deepEqual(referenceRecipe(1).milestones, []);
  const a = await trainLayerProbe(layer, tr.x, tr.y, te.x, te.y, C, r);
  assert.ok(a.testTop1 > 0.95, `separable: test top-1 ${a.testTop1}`);
  // random labels: the probe can fit the train set a little, not the test set
  const p = new Prng(9);
  const ry = Int32Array.from(tr.y, () => Math.floor(p.uniform(0, C)));
  const rty = Int32Array.from(te.y, () => Math.floor(p.uniform(0, C)));
  const b = await trainLayerProbe(layer, tr.x, ry, te.x, rty, C, r);
  assert.ok(Math.abs(b.testTop1 - 1 / C) < 0.08, `random labels: test top-1 ${b.testTop1} (chance ${1 / C})`);
  // the options reach the kernel: bad spatial and milestones are refused
  await assert.rejects(linearProbe(tr.x, tr.y, te.x, tr.d, C, { spatial: 7 }), /spatial must be an integer >= 1 dividing d = 108/);
  await assert.rejects(linearProbe(tr.x, tr.y, te.x, tr.d, C, { milestones: [0] }), /milestones must hold integer epochs >= 1/);
  // per-channel standardisation differs from per-dimension (the statistics are pooled)
  const s1 = await linearProbe(tr.x, tr.y, te.x, tr.d, C, { epochs: 2, spatial: 1 });
  const s9 = await linearProbe(tr.x, tr.y, te.x, tr.d, C, { epochs: 2, spatial: 9 });
  assert.notDeepEqual(s1.epochLoss, s9.epochLoss);
  assert.ok(accuracy(s9.testPredictions, te.y) > 0.9);
});

test("probeGroups: layers split by the memory budget; one layer over it is a clear error", () => {
  const l = (name: string, dim: number) => ({ name, dim }) as ProbeLayer;
  const g = probeGroups([l("a", 1000), l("b", 1000), l("c", 1000)], 262144, 2048);   // 1000 MiB each
  assert.deepEqual(g.map((x) => x.map((y) => y.name)), [["a", "b"], ["c"]]);
  assert.throws(() => probeGroups([l("conv1", 9600)], 100000, 1024), /the conv1 probe's features \(100000 images x 9600 dims\) need 3663 MiB, more than --probe-memory 1024/);
});
