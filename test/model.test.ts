// Model API: construction, names/shapes/init, bad input, state dicts, the
// training step's gradient against finite differences, and a 200-step run.
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { createModel, Model } from "../lib/model";
import { Rng } from "./helpers/opcheck";
import { native } from "../lib/binding";
import { AugmentInput } from "../lib/data/augment";
import { randomSourceInput } from "./helpers/sources";
import { Prng } from "../lib/prng";

function smallcnnShapes(C: number, heads: number[]): [string, number[]][] {
  const s: [string, number[]][] = [];
  const convs: [number, number][] = [
    [C, 32],
    [32, 32],
    [32, 64],
    [64, 64],
    [64, 128],
  ];
  const convIdx = [0, 3, 7, 10, 14];
  convs.forEach(([i, o], j) => {
    const k = convIdx[j];
    s.push([`features.${k}.weight`, [o, i, 3, 3]]);
    s.push([`features.${k + 1}.weight`, [o]], [`features.${k + 1}.bias`, [o]]);
    s.push([`features.${k + 1}.running_mean`, [o]], [`features.${k + 1}.running_var`, [o]]);
  });
  heads.forEach((k, h) => {
    const name = heads.length === 1 ? "top_layer" : `top_layer${h}`;
    s.push([`${name}.weight`, [k, 128]], [`${name}.bias`, [k]]);
  });
  return s;
}

test("smallcnn has PyTorch names, shapes and parameter count", async () => {
  for (const [C, heads] of [
    [1, [10]],
    [3, [10, 20, 7]],
  ] as [number, number[]][]) {
    const m = await createModel({ arch: "smallcnn", numClasses: heads, inputShape: [C, 28, 28], seed: 3 });
    const got = m.tensors().map((t) => [t.name, t.shape]);
    const want = smallcnnShapes(C, heads);
    assert.deepEqual(
      [...got].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [...want].sort((a, b) => a[0].localeCompare(b[0])),
    );
    // parameter count as torch's sum(p.numel() for p in model.parameters())
    const convW = 32 * C * 9 + 32 * 32 * 9 + 64 * 32 * 9 + 64 * 64 * 9 + 128 * 64 * 9;
    const bn = 2 * (32 + 32 + 64 + 64 + 128);
    const headP = heads.reduce((s, k) => s + 128 * k + k, 0);
    assert.equal(m.numParameters, convW + bn + headP);
    assert.equal(m.featureDim, 128);
    m.dispose();
  }
});

test("initialisation follows the reference", async () => {
  const m = await createModel({ arch: "smallcnn", numClasses: [50], inputShape: [3, 32, 32], seed: 11 });
  const sd = await m.stateDict();
  const std = (a: Float32Array) => {
    let s = 0,
      s2 = 0;
    for (const v of a) {
      s += v;
      s2 += v * v;
    }
    const mean = s / a.length;
    return { mean, std: Math.sqrt(s2 / a.length - mean * mean) };
  };
  // conv: normal(0, sqrt(2 / (3*3*out))). With n >= 9216 samples the sample std
  // is within ~1.5% of sigma (std error sigma/sqrt(2n)); allow 5%.
  for (const [name, out] of [
    ["features.3.weight", 32],
    ["features.10.weight", 64],
    ["features.14.weight", 128],
  ] as [string, number][]) {
    const st = std(sd[name].data);
    const sigma = Math.sqrt(2 / (9 * out));
    assert.ok(Math.abs(st.std / sigma - 1) < 0.05, `${name}: std ${st.std} vs ${sigma}`);
    assert.ok(Math.abs(st.mean) < 0.05 * sigma, `${name}: mean ${st.mean}`);
  }
  const head = std(sd["top_layer.weight"].data); // 6400 samples: std error ~0.9%
  assert.ok(Math.abs(head.std / 0.01 - 1) < 0.05, `head std ${head.std}`);
  assert.ok(sd["top_layer.bias"].data.every((v) => v === 0));
  assert.ok(sd["features.1.weight"].data.every((v) => v === 1));
  assert.ok(sd["features.1.bias"].data.every((v) => v === 0));
  assert.ok(sd["features.1.running_var"].data.every((v) => v === 1));
  assert.ok(sd["features.1.running_mean"].data.every((v) => v === 0));
  // same seed, same weights; other seed, other weights
  const m2 = await createModel({ arch: "smallcnn", numClasses: [50], inputShape: [3, 32, 32], seed: 11 });
  const m3 = await createModel({ arch: "smallcnn", numClasses: [50], inputShape: [3, 32, 32], seed: 12 });
  assert.deepEqual((await m2.stateDict())["features.0.weight"].data, sd["features.0.weight"].data);
  assert.notDeepEqual((await m3.stateDict())["features.0.weight"].data, sd["features.0.weight"].data);
  for (const x of [m, m2, m3]) x.dispose();
});

test("createModel rejects bad options with a clear error", async () => {
  await assert.rejects(createModel({ arch: "nope", numClasses: [10], inputShape: [1, 28, 28] }), {
    name: "TypeError",
    message: /unknown arch 'nope'.*smallcnn/,
  });
  await assert.rejects(createModel({ arch: "smallcnn", numClasses: [], inputShape: [1, 28, 28] }), TypeError);
  await assert.rejects(createModel({ arch: "smallcnn", numClasses: [0], inputShape: [1, 28, 28] }), TypeError);
  await assert.rejects(createModel({ arch: "smallcnn", numClasses: [3], inputShape: [1, 28] as never }), TypeError);
  await assert.rejects(createModel({ arch: "smallcnn", numClasses: [3], inputShape: [1, 2, 2] }), /at least 4x4/);
  await assert.rejects(createModel({ arch: "smallcnn", numClasses: [3], inputShape: [1, 28, 28], device: "cuda" }), {
    code: "SLN_NO_DEVICE",
  });
});

async function small(seed = 5, heads = [4]): Promise<Model> {
  return createModel({ arch: "smallcnn", numClasses: heads, inputShape: [1, 8, 8], seed });
}

test("bad trainStep/forward input throws, and the model is unchanged and usable", async () => {
  const m = await small();
  const before = await m.stateDict();
  const x = new Float32Array(4 * 64);
  const y = new Int32Array(4);
  await assert.rejects(m.trainStep(new Float32Array(4 * 64 + 1), [y], { lr: 0.1 }), {
    name: "RangeError",
    message: /not a positive multiple of C\*H\*W/,
  });
  await assert.rejects(m.trainStep(new Float64Array(4 * 64) as never, [y], { lr: 0.1 }), TypeError);
  await assert.rejects(m.trainStep(x, [y, y], { lr: 0.1 }), { name: "RangeError", message: /expected 1 label arrays/ });
  await assert.rejects(m.trainStep(x, [new Int32Array(3)], { lr: 0.1 }), /has 3 entries, expected 4/);
  await assert.rejects(m.trainStep(x, [Int32Array.from([0, 1, 4, 2])], { lr: 0.1 }), {
    name: "RangeError",
    message: /labels\[0\]\[2\] = 4 is outside \[0, 4\)/,
  });
  await assert.rejects(m.trainStep(x, [Int32Array.from([0, -1, 0, 0])], { lr: 0.1 }), RangeError);
  await assert.rejects(m.trainStep(x, [y], { lr: -1 }), RangeError);
  await assert.rejects(m.trainStep(x, [y], {} as never), TypeError);
  await assert.rejects(m.forward(x, { output: "nope" as never }), TypeError);
  await assert.rejects(m.forward(x, { mode: "bogus" as never }), TypeError);
  // a batch of 1 cannot train batch norm (as PyTorch): clear error, not a crash
  const m1 = await createModel({ arch: "smallcnn", numClasses: [4], inputShape: [1, 4, 4], seed: 1 });
  await assert.rejects(m1.trainStep(new Float32Array(16), [new Int32Array(1)], { lr: 0.1 }), /more than 1 value/);
  m1.dispose();
  // non-finite input: refused before anything runs, naming the image; nothing changes
  const bad = new Float32Array(4 * 64);
  bad[2 * 64 + 5] = NaN;
  await assert.rejects(m.trainStep(bad, [y], { lr: 0.1 }), { code: "SLN_NONFINITE_INPUT", message: /image 2 of the batch/ });
  bad[2 * 64 + 5] = Infinity;
  await assert.rejects(m.forward(bad), { code: "SLN_NONFINITE_INPUT" });
  const after = await m.stateDict();
  for (const k of Object.keys(before)) assert.deepEqual(after[k].data, before[k].data, `${k} changed`);
  const r = await m.trainStep(x.map(() => 0.5), [y], { lr: 0.1 });
  assert.ok(Number.isFinite(r.loss));
  m.dispose();
  assert.equal(m.disposed, true);
  await assert.rejects(m.trainStep(x, [y], { lr: 0.1 }), { code: "SLN_DISPOSED" });
  await assert.rejects(m.forward(x), { code: "SLN_DISPOSED" });
});

// n random sources of different sizes (HWC) for a 3x16x16 model.
function sourceInput(n: number, seed: number): AugmentInput {
  const heights = Int32Array.from({ length: n }, (_, i) => 18 + (i % 5));
  const widths = Int32Array.from({ length: n }, (_, i) => 17 + ((i * 3) % 7));
  return randomSourceInput(new Prng(seed), heights, widths, 16);
}

test("trainStep(AugmentInput) augments into the model's input: same losses and weights as augmentBatch + trainStep", async () => {
  const opts = { arch: "smallcnn", numClasses: [5, 3], inputShape: [3, 16, 16] as [number, number, number], seed: 3, device: "cpu" as const };
  const a = await createModel(opts);
  const b = await createModel(opts);
  const step = { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };
  for (const [k, n] of [[0, 6], [1, 6], [2, 4]]) {   // a short last batch: another plan
    const input = sourceInput(n, 10 + k);
    const labels = [Int32Array.from({ length: n }, (_, i) => (i + k) % 5), Int32Array.from({ length: n }, (_, i) => (2 * i + k) % 3)];
    const floats = await native().augmentBatch(input.src, input.desc, new Float32Array(n * 3 * 16 * 16));
    const ra = await a.trainStep(floats, labels, step);
    const rb = await b.trainStep(input, labels, step);
    assert.equal(rb.loss, ra.loss, `step ${k}`);
    assert.deepEqual(rb.headLosses, ra.headLosses);
  }
  const sa = await a.stateDict(), sb = await b.stateDict();
  for (const k of Object.keys(sa)) assert.deepEqual(sb[k].data, sa[k].data, `${k} differs`);
  a.dispose();
  b.dispose();
});

test("trainStep(AugmentInput) rejects bad input clearly and changes nothing", async () => {
  const m = await createModel({ arch: "smallcnn", numClasses: [4], inputShape: [3, 16, 16], seed: 1, device: "cpu" });
  const before = await m.stateDict();
  const input = sourceInput(4, 7);
  const y = [new Int32Array(4)];
  const step = { lr: 0.1 };
  // the augmentation's output must be the model's input
  await assert.rejects(m.trainStep({ src: input.src, desc: { ...input.desc, outHeight: 15 } }, y, step), {
    name: "RangeError",
    message: /makes 3x15x16 images .* the model takes 3x16x16/,
  });
  await assert.rejects(m.trainStep({ src: input.src, desc: { ...input.desc, outWidth: 20 } }, y, step), /makes 3x16x20 images .* the model takes 3x16x16/);
  const gray = await createModel({ arch: "smallcnn", numClasses: [4], inputShape: [1, 16, 16], seed: 1, device: "cpu" });
  await assert.rejects(gray.trainStep(input, y, step), /makes 3x16x16 images .* the model takes 1x16x16/);
  gray.dispose();
  // labels must match desc.n
  await assert.rejects(m.trainStep(input, [new Int32Array(3)], step), { name: "RangeError", message: /has 3 entries, expected 4/ });
  // sources too short, wrong types, parameter arrays of the wrong length, bad boxes
  await assert.rejects(m.trainStep({ src: input.src.subarray(0, 100), desc: input.desc }, y, step), { name: "RangeError", message: /trainStep: image 0 at offset 0 \(18x17x3\) does not fit in src of 100 bytes/ });
  await assert.rejects(m.trainStep({ src: new Float32Array(4) as never, desc: input.desc }, y, step), TypeError);
  await assert.rejects(m.trainStep({ src: input.src, desc: { ...input.desc, flip: new Uint8Array(3) } }, y, step), /desc\.flip has 3 elements, expected 4/);
  await assert.rejects(m.trainStep({ src: input.src, desc: { ...input.desc, boxes: new Float64Array(16).fill(NaN) } }, y, step), /augment/);
  await assert.rejects(m.trainStep({ src: input.src, desc: { ...input.desc, n: 0 } }, y, step), RangeError);
  await assert.rejects(m.trainStep({ src: input.src } as never, y, step), TypeError);
  const after = await m.stateDict();
  for (const k of Object.keys(before)) assert.deepEqual(after[k].data, before[k].data, `${k} changed`);
  assert.ok(Number.isFinite((await m.trainStep(input, y, step)).loss));
  m.dispose();
  await assert.rejects(m.trainStep(input, y, step), { code: "SLN_DISPOSED" });
});

test("forward outputs: logits per head, probs sum to 1, features", async () => {
  const m = await small(5, [4, 6]);
  const rng = new Rng(1);
  const x = Float32Array.from(rng.tensor(3 * 64));
  const logits = await m.forward(x);
  assert.equal(logits.length, 2);
  assert.equal(logits[0].length, 3 * 4);
  assert.equal(logits[1].length, 3 * 6);
  const probs = await m.forward(x, { output: "probs" });
  for (let n = 0; n < 3; n++) {
    let s = 0;
    for (let k = 0; k < 6; k++) s += probs[1][n * 6 + k];
    assert.ok(Math.abs(s - 1) < 1e-5, `row ${n} sums to ${s}`); // float32 rounding of 6 terms
  }
  const f = await m.forward(x, { output: "features" });
  assert.ok(f instanceof Float32Array);
  assert.equal(f.length, 3 * 128);
  // one trunk pass for both: the same bits as the two separate forwards (eval mode)
  const both = await m.forward(x, { output: "features+logits" });
  assert.equal(both.length, 3);
  assert.deepEqual(both[0], f);
  assert.deepEqual(both[1], logits[0]);
  assert.deepEqual(both[2], logits[1]);
  m.dispose();
});

test("stateDict round trip; a mismatched dict changes nothing and names the keys", async () => {
  const a = await small(1);
  const b = await small(2);
  const x = Float32Array.from(new Rng(2).tensor(5 * 64));
  const sd = await a.stateDict();
  await b.loadStateDict(sd);
  assert.deepEqual(await b.forward(x), await a.forward(x));
  const sdB = await b.stateDict();
  const broken: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(sd)) broken[k] = v.data.map((z) => z + 1);
  delete broken["features.0.weight"];
  broken["bogus.weight"] = new Float32Array(3);
  broken["top_layer.bias"] = new Float32Array(5);
  await assert.rejects(b.loadStateDict(broken), (e: Error) => {
    assert.match(e.message, /Missing: features\.0\.weight/);
    assert.match(e.message, /Unexpected: bogus\.weight/);
    assert.match(e.message, /top_layer\.bias \(5 values, expected 4\)/);
    return true;
  });
  await assert.rejects(b.loadStateDict({ "features.0.weight": { shape: [1, 2], data: new Float32Array(2) } }), RangeError);
  assert.deepEqual(await b.stateDict(), sdB);
  a.dispose();
  b.dispose();
});

function meanCE(logits: Float32Array, labels: Int32Array, K: number): number {
  let s = 0;
  for (let n = 0; n < labels.length; n++) {
    let mx = -Infinity;
    for (let k = 0; k < K; k++) mx = Math.max(mx, logits[n * K + k]);
    let z = 0;
    for (let k = 0; k < K; k++) z += Math.exp(logits[n * K + k] - mx);
    s += Math.log(z) + mx - logits[n * K + labels[n]];
  }
  return s / labels.length;
}

test("the training step's gradient matches finite differences of the loss", async () => {
  // With lr = 1, momentum 0, weight decay 0, one step does w' = w - g, so
  // g = w - w' exactly (up to float32 rounding of the subtraction). Compare
  // with central differences of the mean cross-entropy (train-mode forward,
  // float64 loss from float32 logits) for the largest-gradient entries of
  // every tensor: a wrong backward anywhere in the chain shows up here.
  const N = 6,
    K = 5;
  const rng = new Rng(9);
  const x = Float32Array.from(rng.tensor(N * 64));
  const y = Int32Array.from({ length: N }, () => rng.int(0, K - 1));
  const m = await small(21, [K]);
  const w0 = await m.stateDict();
  await m.trainStep(x, [y], { lr: 1, momentum: 0, weightDecay: 0 });
  const w1 = await m.stateDict();
  const probe = await small(21, [K]);
  const lossAt = async (name: string, i: number, v: number): Promise<number> => {
    const sd: Record<string, Float32Array> = {};
    for (const [k, t] of Object.entries(w0)) sd[k] = Float32Array.from(t.data);
    sd[name][i] = v;
    await probe.loadStateDict(sd);
    const [lg] = await probe.forward(x, { mode: "train" });
    return meanCE(lg, y, K);
  };
  let checked = 0;
  for (const t of m.tensors()) {
    if (t.kind !== "param") continue;
    const a = w0[t.name].data,
      b = w1[t.name].data;
    const g = Array.from(a, (v, i) => v - b[i]);
    const order = g.map((v, i) => [Math.abs(v), i]).sort((p, q) => q[0] - p[0]);
    for (const [, i] of order.slice(0, 2)) {
      const h = 1e-3;
      const num = ((await lossAt(t.name, i, a[i] + h)) - (await lossAt(t.name, i, a[i] - h))) / (2 * h);
      // float32 forward: the loss carries ~1e-6 relative noise, i.e. ~2e-6
      // absolute, divided by 2h = 2e-3 -> ~1e-3 noise in the estimate; the
      // O(h^2) truncation is far below that. 3% covers ReLU/max-pool kinks
      // crossed within +-h on large gradients.
      assert.ok(
        Math.abs(num - g[i]) <= 0.03 * Math.abs(g[i]) + 2e-3,
        `${t.name}[${i}]: step gradient ${g[i]} vs finite difference ${num}`,
      );
      checked++;
    }
  }
  assert.ok(checked >= 20);
  m.dispose();
  probe.dispose();
});

test("same seed and same steps give bit-identical parameters", async () => {
  const rng = new Rng(4);
  const x = Float32Array.from(rng.tensor(8 * 64));
  const y = Int32Array.from({ length: 8 }, () => rng.int(0, 3));
  const run = async () => {
    const m = await small(8);
    for (let i = 0; i < 5; i++) await m.trainStep(x, [y], { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 });
    const sd = await m.stateDict();
    const mom = await m.optimizerState();
    m.dispose();
    return { sd, mom };
  };
  const a = await run();
  const b = await run();
  assert.deepEqual(a.sd, b.sd);
  assert.deepEqual(a.mom, b.mom);
  assert.ok(Object.keys(a.mom).length > 0);
});

/** A fixed synthetic batch set: class c is a bright bar at one of 10 positions/orientations, plus noise. */
function syntheticBatches(nBatches: number, B: number, seed: number): { x: Float32Array; y: Int32Array }[] {
  const rng = new Rng(seed);
  const out = [];
  for (let b = 0; b < nBatches; b++) {
    const x = new Float32Array(B * 3 * 32 * 32);
    const y = new Int32Array(B);
    for (let n = 0; n < B; n++) {
      const c = rng.int(0, 9);
      y[n] = c;
      const pos = 4 + (c % 5) * 5 + rng.int(-1, 1);
      const horiz = c >= 5;
      for (let ch = 0; ch < 3; ch++) {
        for (let i = 0; i < 32; i++) {
          for (let j = 0; j < 32; j++) {
            const on = horiz ? Math.abs(i - pos) <= 1 : Math.abs(j - pos) <= 1;
            x[((n * 3 + ch) * 32 + i) * 32 + j] = (on ? 1.5 : -0.5) + 0.3 * rng.normal();
          }
        }
      }
    }
    out.push({ x, y });
  }
  return out;
}

test("smallcnn trains: 200 steps on a fixed synthetic batch set, the loss falls well below its start", async () => {
  const batches = syntheticBatches(4, 32, 123);
  const m = await createModel({ arch: "smallcnn", numClasses: [10], inputShape: [3, 32, 32], seed: 1 });
  const losses: number[] = [];
  for (let s = 0; s < 200; s++) {
    const { x, y } = batches[s % batches.length];
    const r = await m.trainStep(x, [y], { lr: 0.05, momentum: 0.9, weightDecay: 1e-5 });
    losses.push(r.loss);
  }
  const first = losses.slice(0, 4).reduce((a, b) => a + b) / 4;
  const last = losses.slice(-8).reduce((a, b) => a + b) / 8;
  assert.ok(first > 2.0, `initial loss ${first} should be near ln(10) = 2.30`);
  assert.ok(last < 0.1 * first, `loss fell from ${first.toFixed(3)} to only ${last.toFixed(3)}`);
  // and the trained network classifies its training batches
  let correct = 0;
  for (const { x, y } of batches) {
    const [lg] = await m.forward(x);
    for (let n = 0; n < y.length; n++) {
      let best = 0;
      for (let k = 1; k < 10; k++) if (lg[n * 10 + k] > lg[n * 10 + best]) best = k;
      if (best === y[n]) correct++;
    }
  }
  assert.ok(correct / 128 > 0.95, `train accuracy ${correct / 128}`);
  m.dispose();
});
