// batchnorm2d, relu, maxpool2d, avgpool2d, dropout, cross_entropy, sgd_step, add:
// the CPU backend against the float64 reference on random shapes (odd sizes
// included), the reference's backward against finite differences, and small
// hand-computed cases for the semantics PyTorch defines (running statistics,
// first SGD step, the loss value).
//
// Inputs fed to "cpu" are rounded to float32 (Math.fround) before both runs,
// so the comparisons measure the op's float32 arithmetic, not input rounding.
// EPS32 = 2^-24 is the unit roundoff of float32.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { native } from "../lib/binding";
import { Rng, runOp, assertClose, checkFiniteDiff, Params, bnInputs, assertBatchnormClose } from "./helpers/opcheck";

const EPS32 = 2 ** -24;
// "exact": results that only select or copy float32 values. assertClose divides
// by atol + rtol*|b|, so a tiny positive atol stands for 0 without 0/0.
const EXACT = { atol: 1e-300, rtol: 0 };

function f32(a: Float64Array): Float64Array {
  return a.map((v) => Math.fround(v));
}
function randT(rng: Rng, n: number, scale = 1): Float64Array {
  return f32(rng.tensor(n, scale));
}
function maxAbs(a: Float64Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}
/** n distinct float32-exact values at least 1/64 apart, shuffled: no ties for max pooling. */
function distinct(rng: Rng, n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = (i - n / 2) / 64;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
function both(op: string, params: Params, inputs: Record<string, Float64Array>) {
  return { ref: runOp(op, "ref", params, inputs), cpu: runOp(op, "cpu", params, inputs) };
}
const repro = (op: string, p: Params) => `${op} ${JSON.stringify(p)}`;

// ---------------------------------------------------------------- batchnorm2d

function randomBnParams(rng: Rng): { N: number; C: number; H: number; W: number } {
  for (;;) {
    const p = { N: rng.int(1, 4), C: rng.int(1, 5), H: rng.int(1, 7), W: rng.int(1, 7) };
    if (p.N * p.H * p.W >= 2) return p; // training needs more than one value per channel
  }
}

test("batchnorm2d training: cpu matches the float64 reference, forward and backward", () => {
  const rng = new Rng(101);
  const shapes = [{ N: 2, C: 3, H: 5, W: 7 }, { N: 7, C: 4, H: 1, W: 1 }, { N: 1, C: 2, H: 3, W: 1 }];
  for (let t = 0; t < 8; t++) shapes.push(randomBnParams(rng));
  for (const p of shapes) {
    const inp = bnInputs(rng, p, true);
    const { ref, cpu } = both("batchnorm2d", p, inp);
    assertBatchnormClose(cpu, ref, true, repro("batchnorm2d", p));
  }
});

test("batchnorm2d eval: cpu matches the reference and leaves running stats alone", () => {
  const rng = new Rng(102);
  for (let t = 0; t < 5; t++) {
    const p = { ...randomBnParams(rng), training: 0 };
    const inp = bnInputs(rng, p, false);
    const { ref, cpu } = both("batchnorm2d", p, inp);
    // per element: (x - rm) * (1/sqrt(rv + eps)) * gamma + beta, ~5 float32
    // roundings of values |x - rm| * |gamma| / sqrt(0.5) <~ 30: 30 * 5 * EPS32 ~ 1e-5
    assertClose(cpu.y, ref.y, { atol: 1e-5, rtol: 1e-5 }, repro("batchnorm2d eval y", p));
    assertClose(cpu.running_mean, inp.running_mean, EXACT, repro("batchnorm2d eval running_mean", p));
    assertClose(cpu.running_var, inp.running_var, EXACT, repro("batchnorm2d eval running_var", p));
  }
});

test("batchnorm2d running statistics: momentum 0.1 with the unbiased batch variance, as torch", () => {
  // one channel, x = 1,2,3,4 (N=2, W=2): mean 2.5, biased var 1.25, unbiased 5/3
  const p = { N: 2, C: 1, H: 1, W: 2 };
  const inp = {
    x: Float64Array.from([1, 2, 3, 4]),
    gamma: Float64Array.from([1]),
    beta: Float64Array.from([0]),
    running_mean: Float64Array.from([1]),
    running_var: Float64Array.from([2]),
  };
  const expectMean = 0.9 * 1 + 0.1 * 2.5;
  const expectVar = 0.9 * 2 + 0.1 * (5 / 3);
  const invstd = 1 / Math.sqrt(1.25 + 1e-5); // normalising uses the biased variance
  const expectY = [1, 2, 3, 4].map((v) => (v - 2.5) * invstd);
  for (const be of ["ref", "cpu"] as const) {
    const out = runOp("batchnorm2d", be, p, inp);
    // momentum and eps are float32 in the descriptor (0.1f = 0.1 + 1.5e-9) and cpu
    // computes in float32: a few ulps (EPS32 = 6e-8) of values ~2
    const tol = { atol: 0, rtol: 4 * EPS32 };
    assertClose(out.running_mean, Float64Array.from([expectMean]), tol, `${be} running_mean`);
    assertClose(out.running_var, Float64Array.from([expectVar]), tol, `${be} running_var`);
    assertClose(out.y, Float64Array.from(expectY), { atol: 0, rtol: 8 * EPS32 }, `${be} y`);
  }
});

test("batchnorm2d reference backward matches finite differences", () => {
  const rng = new Rng(103);
  for (const p of [{ N: 3, C: 2, H: 2, W: 3 }, { N: 5, C: 3, H: 1, W: 1 }, randomBnParams(rng)]) {
    const inp = bnInputs(rng, p, true);
    checkFiniteDiff("batchnorm2d", p, inp, ["x", "gamma", "beta"], { rng });
  }
});

test("batchnorm2d rejects bad descriptors with a clear error", () => {
  const one = Float64Array.from([1]);
  const inp = { x: one, gamma: one, beta: one, running_mean: Float64Array.from([0]), running_var: one };
  assert.throws(() => runOp("batchnorm2d", "cpu", { N: 1, C: 1, H: 1, W: 1 }, inp), /more than 1 value per channel/);
  assert.throws(() => runOp("batchnorm2d", "cpu", { N: 0, C: 1, H: 1, W: 1 }, inp), /batchnorm: every size must be >= 1.*\(0,1,1,1\)/);
  assert.throws(() => runOp("batchnorm2d", "cpu", { N: 2, C: 1, H: 1, W: 1, eps: 0 }, inp), /eps must be > 0/);
});

// ----------------------------------------------------------------------- relu

test("relu: cpu matches the reference exactly, in place and out of place", () => {
  const rng = new Rng(201);
  for (const n of [1, 7, 1000, 12345]) {
    const inp = { x: randT(rng, n), dy: randT(rng, n) };
    const { ref, cpu } = both("relu", {}, inp);
    // max(x, 0) and the masked copy of dy only select float32 values
    assertClose(cpu.y, ref.y, EXACT, `relu y n=${n}`);
    assertClose(cpu.dx, ref.dx, EXACT, `relu dx n=${n}`);
  }
});

test("relu reference backward matches finite differences", () => {
  const rng = new Rng(202);
  // |x| >= 1e-3 >> h = 1e-6: no sample straddles the kink
  const x = rng.tensor(50).map((v) => (Math.abs(v) < 1e-3 ? 0.5 : v));
  checkFiniteDiff("relu", {}, { x, dy: rng.tensor(50) }, ["x"], { rng, samples: 20 });
});

test("relu rejects an empty tensor", () => {
  assert.throws(() => runOp("relu", "cpu", {}, { x: new Float64Array(0) }), /relu: n must be >= 1/);
});

// ------------------------------------------------------------------- pooling

function randomPool(rng: Rng): { N: number; C: number; H: number; W: number; kernel: number; stride: number; pad: number } {
  const kernel = rng.int(1, 4);
  const stride = rng.int(1, 3);
  const pad = rng.int(0, Math.floor(kernel / 2));
  const lo = Math.max(1, kernel - 2 * pad);
  return { N: rng.int(1, 3), C: rng.int(1, 4), H: rng.int(lo, 11), W: rng.int(lo, 11), kernel, stride, pad };
}
const outHW = (p: Params, kh: number, kw: number) => [
  Math.floor((p.H + 2 * (p.pad ?? 0) - kh) / p.stride) + 1,
  Math.floor((p.W + 2 * (p.pad ?? 0) - kw) / p.stride) + 1,
];

test("maxpool2d: cpu matches the reference (floor size, padding, overlapping windows)", () => {
  const rng = new Rng(301);
  const cases: Params[] = [
    { N: 2, C: 3, H: 28, W: 28, kernel: 2, stride: 2, pad: 0 },
    { N: 1, C: 2, H: 7, W: 9, kernel: 2, stride: 2, pad: 0 }, // odd sizes: last row/column dropped
    { N: 1, C: 1, H: 5, W: 6, kernel: 3, stride: 2, pad: 1 },
    { N: 2, C: 1, H: 4, W: 5, kernel: 3, stride: 1, pad: 1 },
    { N: 2, C: 2, H: 13, W: 13, kernel: 3, stride: 2, pad: 0 }, // AlexNet: 3x3 stride 2 (13 -> 6)
    { N: 1, C: 2, H: 8, W: 7, kernel: 3, stride: 2, pad: 1 }, // ResNet stem max pool, odd width
  ];
  for (let t = 0; t < 10; t++) cases.push(randomPool(rng));
  for (const p of cases) {
    const [OH, OW] = outHW(p, p.kernel, p.kernel);
    const nx = p.N * p.C * p.H * p.W;
    const inp = { x: distinct(rng, nx), dy: randT(rng, p.N * p.C * OH * OW) };
    const { ref, cpu } = both("maxpool2d", p, inp);
    assert.equal(cpu.y.length, p.N * p.C * OH * OW, repro("maxpool2d output size", p));
    // the max selects one float32 value (distinct inputs: no tie to break)
    assertClose(cpu.y, ref.y, EXACT, repro("maxpool2d y", p));
    // dx sums dy over the windows an input wins: at most ceil(k/s)^2 <= 16 float32
    // terms of size ~1-3, each addition rounding by EPS32: 16 * 3 * EPS32 ~ 3e-6
    assertClose(cpu.dx, ref.dx, { atol: 3e-6, rtol: 0 }, repro("maxpool2d dx", p));
  }
});

test("avgpool2d: cpu matches the reference (count_include_pad, non-square global pooling)", () => {
  const rng = new Rng(302);
  const cases: Params[] = [
    { N: 2, C: 3, H: 6, W: 6, kernel: 2, stride: 2, pad: 0 },
    { N: 1, C: 2, H: 5, W: 7, kernel: 3, stride: 2, pad: 1 }, // padding counted in the divisor
    { N: 3, C: 4, H: 7, W: 7, kernel: 7, stride: 1, pad: 0 }, // global 7x7
    { N: 2, C: 5, H: 7, W: 9, kernel: 1, kernel_h: 7, kernel_w: 9, stride: 1, pad: 0 }, // global, non-square
    { N: 1, C: 3, H: 1, W: 5, kernel: 1, kernel_h: 1, kernel_w: 5, stride: 1, pad: 0 },
  ];
  for (let t = 0; t < 10; t++) cases.push(randomPool(rng));
  for (const p of cases) {
    const kh = p.kernel_h || p.kernel;
    const kw = p.kernel_w || p.kernel;
    const [OH, OW] = outHW(p, kh, kw);
    const inp = { x: randT(rng, p.N * p.C * p.H * p.W), dy: randT(rng, p.N * p.C * OH * OW) };
    const { ref, cpu } = both("avgpool2d", p, inp);
    assert.equal(cpu.y.length, p.N * p.C * OH * OW, repro("avgpool2d output size", p));
    // y = (sum of kh*kw float32 values) / (kh*kw): summation error at most
    // (kh*kw - 1) * EPS32 * sum|x|, i.e. <= kh*kw * EPS32 * max|x| after the divide
    assertClose(cpu.y, ref.y, { atol: kh * kw * EPS32 * maxAbs(inp.x), rtol: EPS32 }, repro("avgpool2d y", p));
    // dx sums dy/(kh*kw) over at most ceil(kh/s)*ceil(kw/s) windows, each rounding by EPS32
    const terms = Math.ceil(kh / p.stride) * Math.ceil(kw / p.stride);
    assertClose(cpu.dx, ref.dx, { atol: (terms + 1) * EPS32 * maxAbs(inp.dy), rtol: EPS32 }, repro("avgpool2d dx", p));
  }
});

test("avgpool2d counts padding in the divisor (count_include_pad=True)", () => {
  // 2x2 of ones, kernel 2, stride 2, pad 1: each of the 4 windows holds one 1
  // and three padded zeros, so torch gives 1/4 everywhere (not 1)
  const p = { N: 1, C: 1, H: 2, W: 2, kernel: 2, stride: 2, pad: 1 };
  for (const be of ["ref", "cpu"] as const) {
    const y = runOp("avgpool2d", be, p, { x: Float64Array.from([1, 1, 1, 1]) }).y;
    assertClose(y, Float64Array.from([0.25, 0.25, 0.25, 0.25]), EXACT, `${be} avgpool2d padded`);
  }
});

test("pooling reference backward matches finite differences", () => {
  const rng = new Rng(303);
  for (const p of [
    { N: 1, C: 2, H: 5, W: 6, kernel: 3, stride: 2, pad: 1 },
    { N: 2, C: 1, H: 4, W: 4, kernel: 2, stride: 1, pad: 0 },
    randomPool(rng),
  ]) {
    const [OH, OW] = outHW(p, p.kernel, p.kernel);
    const ny = p.N * p.C * OH * OW;
    // maxpool: distinct inputs 1/64 apart >> h = 1e-6, so the argmax never flips
    checkFiniteDiff("maxpool2d", p, { x: distinct(rng, p.N * p.C * p.H * p.W), dy: rng.tensor(ny) }, ["x"], { rng });
    checkFiniteDiff("avgpool2d", p, { x: rng.tensor(p.N * p.C * p.H * p.W), dy: rng.tensor(ny) }, ["x"], { rng });
  }
  const g = { N: 2, C: 2, H: 3, W: 5, kernel: 1, kernel_h: 3, kernel_w: 5, stride: 1, pad: 0 };
  checkFiniteDiff("avgpool2d", g, { x: rng.tensor(60), dy: rng.tensor(4) }, ["x"], { rng });
});

test("pooling rejects bad descriptors with a clear error", () => {
  const x = new Float64Array(4);
  for (const op of ["maxpool2d", "avgpool2d"]) {
    assert.throws(() => runOp(op, "cpu", { N: 1, C: 1, H: 2, W: 2, kernel: 3, stride: 1 }, { x }), /kernel larger than the padded input/);
    assert.throws(() => runOp(op, "cpu", { N: 1, C: 1, H: 2, W: 2, kernel: 2, stride: 1, pad: 2 }, { x }), /pad must be at most half the kernel/);
    assert.throws(() => runOp(op, "cpu", { N: 1, C: 1, H: 2, W: 2, kernel: 2, stride: 0 }, { x }), /kernel and stride must be >= 1/);
    assert.throws(() => runOp(op, "cpu", { N: 0, C: 1, H: 2, W: 2, kernel: 2, stride: 2 }, { x }), /every size must be >= 1/);
  }
});

// -------------------------------------------------------------------- dropout

test("dropout: cpu drops exactly the reference's mask and scales survivors by 1/(1-p)", () => {
  const rng = new Rng(401);
  for (const [n, p] of [[1, 0.5], [999, 0.1], [4097, 0.5], [20000, 0.9], [33, 0]] as const) {
    const params = { p, seed: 12345 + n };
    const inp = { x: randT(rng, n), dy: randT(rng, n) };
    const { ref, cpu } = both("dropout", params, inp);
    for (let i = 0; i < n; i++) {
      assert.equal(cpu.y[i] === 0, ref.mask[i] === 0, `dropout n=${n} p=${p}: element ${i} kept/dropped differs`);
    }
    // x * fl(1/(1-p)) in float32 vs x/(1-p) in float64: two roundings of EPS32
    assertClose(cpu.y, ref.y, { atol: 1e-300, rtol: 2 * EPS32 }, `dropout y n=${n} p=${p}`);
    assertClose(cpu.dx, ref.dx, { atol: 1e-300, rtol: 2 * EPS32 }, `dropout dx n=${n} p=${p}`);
  }
});

test("dropout mask: deterministic for a seed, different across seeds, independent of threads", () => {
  const rng = new Rng(402);
  const n = 50000;
  const x = randT(rng, n);
  const a = runOp("dropout", "cpu", { p: 0.3, seed: 7 }, { x }).y;
  const b = runOp("dropout", "cpu", { p: 0.3, seed: 7 }, { x }).y;
  assert.deepEqual(a, b);
  const c = runOp("dropout", "cpu", { p: 0.3, seed: 8 }, { x }).y;
  let differ = 0;
  for (let i = 0; i < n; i++) if ((a[i] === 0) !== (c[i] === 0)) differ++;
  // two independent masks disagree on 2 p (1-p) = 42% of the elements
  assert.ok(differ > 0.3 * n, `seeds 7 and 8 give masks differing in only ${differ} of ${n}`);
  const nb = native();
  const before = nb.info().threads;
  try {
    nb.setThreads(1);
    const one = runOp("dropout", "cpu", { p: 0.3, seed: 7 }, { x }).y;
    nb.setThreads(3);
    const three = runOp("dropout", "cpu", { p: 0.3, seed: 7 }, { x }).y;
    assert.deepEqual(one, a);
    assert.deepEqual(three, a);
  } finally {
    nb.setThreads(before);
  }
});

test("dropout: the fraction of zeros is near p", () => {
  const n = 200000;
  const x = new Float64Array(n).fill(1);
  for (const p of [0.1, 0.5, 0.8]) {
    const { mask } = runOp("dropout", "ref", { p, seed: 99 }, { x });
    const y = runOp("dropout", "cpu", { p, seed: 99 }, { x }).y;
    let zeros = 0;
    let refZeros = 0;
    for (let i = 0; i < n; i++) {
      if (y[i] === 0) zeros++;
      if (mask[i] === 0) refZeros++;
    }
    assert.equal(zeros, refZeros);
    // binomial standard deviation sqrt(p(1-p)/n) <= 1.1e-3: 0.006 is > 5 sigma
    assert.ok(Math.abs(zeros / n - p) < 0.006, `p=${p}: zero fraction ${zeros / n}`);
  }
});

test("dropout eval mode is the identity, forward and backward", () => {
  const rng = new Rng(403);
  const inp = { x: randT(rng, 777), dy: randT(rng, 777) };
  for (const be of ["ref", "cpu"] as const) {
    const out = runOp("dropout", be, { p: 0.5, seed: 1, training: 0 }, inp);
    assertClose(out.y, inp.x, EXACT, `${be} dropout eval y`);
    assertClose(out.dx, inp.dy, EXACT, `${be} dropout eval dx`);
  }
});

test("dropout reference backward matches finite differences", () => {
  const rng = new Rng(404);
  checkFiniteDiff("dropout", { p: 0.4, seed: 5 }, { x: rng.tensor(40), dy: rng.tensor(40) }, ["x"], { rng, samples: 20 });
});

test("dropout rejects p outside [0, 1)", () => {
  const x = new Float64Array(4);
  for (const p of [1, -0.1, 1.5]) {
    assert.throws(() => runOp("dropout", "cpu", { p }, { x }), /dropout: p must be in \[0, 1\)/);
  }
});

// -------------------------------------------------------------- cross_entropy

test("cross_entropy: a hand-computed case", () => {
  // rows: logits (1,2,3) label 2; logits (0,0,0) label 0
  const logits = Float64Array.from([1, 2, 3, 0, 0, 0]);
  const labels = Float64Array.from([2, 0]);
  const lse0 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
  const loss = (lse0 - 3 + Math.log(3)) / 2;
  const sm0 = [1, 2, 3].map((v) => Math.exp(v - lse0));
  const scale = 0.5;
  const dl = [sm0[0], sm0[1], sm0[2] - 1, 1 / 3 - 1, 1 / 3, 1 / 3].map((v) => (scale * v) / 2);
  for (const be of ["ref", "cpu"] as const) {
    const out = runOp("cross_entropy", be, { N: 2, K: 3, scale }, { logits, labels });
    // cpu: float32 exp/sum of values ~1-20: a few EPS32 relative
    const tol = be === "ref" ? { atol: 0, rtol: 1e-14 } : { atol: 4 * EPS32, rtol: 8 * EPS32 };
    assertClose(out.loss, Float64Array.from([loss]), tol, `${be} cross_entropy loss`);
    assertClose(out.dlogits, Float64Array.from(dl), tol, `${be} cross_entropy dlogits`);
  }
});

test("cross_entropy: cpu matches the reference on random shapes and large logits", () => {
  const rng = new Rng(501);
  const shapes = [[1, 1], [1, 7], [256, 10], [33, 3000], [5, 2]];
  for (let t = 0; t < 5; t++) shapes.push([rng.int(1, 40), rng.int(1, 50)]);
  for (const [N, K] of shapes) {
    for (const shift of [0, 1000]) {
      // shift 1000: exp would overflow without the max subtraction
      const logits = f32(rng.tensor(N * K, 3).map((v) => v + shift));
      const labels = Float64Array.from({ length: N }, () => rng.int(0, K - 1));
      const p = { N, K, scale: 1 };
      const { ref, cpu } = both("cross_entropy", p, { logits, labels });
      // loss per row = m + log(sum exp(z - m)) - z_label: z - m of float32 values
      // within a factor 2 of each other is exact (Sterbenz), also at shift 1000;
      // each exp rounds by ~EPS32 relative, row sums and the mean are double:
      // a few EPS32 relative on a loss of ~1-8 (observed 1e-9)
      const lossTol = { atol: 1e-7, rtol: 1e-6 };
      assertClose(cpu.loss, ref.loss, lossTol, repro(`cross_entropy loss shift=${shift}`, p));
      // dlogits = scale*(softmax - onehot)/N: softmax entries in [0,1] with ~3
      // roundings (exp, the 1/sum factor, the product): 4*EPS32/N absolute (observed 1 EPS32/N)
      const dTol = { atol: (4 * EPS32) / N, rtol: 4 * EPS32 };
      assertClose(cpu.dlogits, ref.dlogits, dTol, repro(`cross_entropy dlogits shift=${shift}`, p));
    }
  }
});

test("cross_entropy reference gradient matches finite differences", () => {
  const rng = new Rng(502);
  for (const [N, K] of [[3, 4], [1, 2], [6, 9]]) {
    const logits = rng.tensor(N * K, 2);
    const labels = Float64Array.from({ length: N }, () => rng.int(0, K - 1));
    // the harness multiplies dlogits by dy[0], so L = dy[0] * loss is checked;
    // scale 1: scale multiplies the gradient only, not the returned loss
    // (scale is checked in the hand-computed case)
    checkFiniteDiff("cross_entropy", { N, K, scale: 1 }, { logits, labels, dy: Float64Array.from([0.7]) }, ["logits"], {
      rng,
      out: "loss",
    });
  }
});

test("cross_entropy rejects bad labels and non-finite logits", () => {
  const logits = Float64Array.from([0, 1, 2, 3]);
  for (const be of ["ref", "cpu"] as const) {
    assert.throws(() => runOp("cross_entropy", be, { N: 2, K: 2 }, { logits, labels: Float64Array.from([0, 2]) }), /label\[1\] = 2 is not an integer in \[0, 2\)/);
    assert.throws(() => runOp("cross_entropy", be, { N: 2, K: 2 }, { logits, labels: Float64Array.from([0.5, 1]) }), /not an integer/);
  }
  assert.throws(
    () => runOp("cross_entropy", "cpu", { N: 2, K: 2 }, { logits: Float64Array.from([0, NaN, 1, 2]), labels: Float64Array.from([0, 1]) }),
    (e: NodeJS.ErrnoException) => e.code === "SLN_NONFINITE_LOSS" && /not finite/.test(e.message),
  );
});

// ------------------------------------------------------------------- sgd_step

/** torch.optim.SGD.step for one tensor, written out in float64. */
function torchSgd(w: Float64Array, g: Float64Array, buf: Float64Array | null, lr: number, momentum: number, wd: number) {
  const nw = new Float64Array(w.length);
  const nb = new Float64Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const d = g[i] + wd * w[i];
    nb[i] = buf === null ? d : momentum * buf[i] + d; // buf = None on the first step: clone of d_p
    nw[i] = w[i] - lr * nb[i];
  }
  return { w: nw, buf: nb };
}

test("sgd_step: several steps against torch's rule, first step ignores the old buffer", () => {
  const rng = new Rng(601);
  for (const [lr, momentum, wd] of [[0.05, 0.9, 5e-4], [0.1, 0, 0], [0.01, 0.5, 1e-2]]) {
    const n = 1031;
    let w = randT(rng, n);
    // garbage in buf: the first step must overwrite it, not blend it in
    const garbage = randT(rng, n, 100);
    let expect = { w, buf: garbage };
    let refState = { w, buf: garbage };
    let cpuState = { w, buf: garbage };
    for (let step = 0; step < 5; step++) {
      const g = randT(rng, n);
      const first = step === 0;
      const params = { lr, momentum, weight_decay: wd, first: first ? 1 : 0 };
      expect = torchSgd(expect.w, g, first ? null : expect.buf, lr, momentum, wd);
      const r = runOp("sgd_step", "ref", params, { w: refState.w, g, buf: refState.buf });
      const c = runOp("sgd_step", "cpu", params, { w: cpuState.w, g, buf: cpuState.buf });
      refState = { w: r.w, buf: r.buf };
      cpuState = { w: c.w, buf: c.buf };
      const what = `sgd lr=${lr} m=${momentum} wd=${wd} step ${step}`;
      // the reference is the same float64 formula: only reassociation-free rounding
      assertClose(r.w, expect.w, { atol: 1e-14, rtol: 1e-14 }, what + " ref w");
      assertClose(r.buf, expect.buf, { atol: 1e-14, rtol: 1e-14 }, what + " ref buf");
      // cpu: float32 state carried across steps; each step rounds buf (|buf| <~ 10
      // after momentum 0.9 builds up) and w (~1-3) a few times: after 5 steps
      // <~ 5 * 3 * EPS32 * 10 ~ 1e-5 absolute in buf, lr times that plus w's own ulps in w
      assertClose(c.buf, expect.buf, { atol: 1e-5, rtol: 1e-6 }, what + " cpu buf");
      assertClose(c.w, expect.w, { atol: 2e-6, rtol: 1e-6 }, what + " cpu w");
    }
  }
});

test("sgd_step: the first step sets buf = g + wd*w exactly (torch clones d_p)", () => {
  const w = Float64Array.from([1, -2, 4]);
  const g = Float64Array.from([0.5, 0.25, -1]);
  const buf = Float64Array.from([1e3, -1e3, 7]);
  for (const be of ["ref", "cpu"] as const) {
    const out = runOp("sgd_step", be, { lr: 0.5, momentum: 0.9, weight_decay: 0.25, first: 1 }, { w, g, buf });
    // all values are small dyadic rationals: exact in float32 and float64
    assertClose(out.buf, Float64Array.from([0.75, -0.25, 0]), { atol: 1e-300, rtol: 0 }, `${be} first buf`);
    assertClose(out.w, Float64Array.from([0.625, -1.875, 4]), { atol: 1e-300, rtol: 0 }, `${be} first w`);
  }
});

// ------------------------------------------------------------------------ add

test("add: cpu y += x matches the reference to one rounding", () => {
  const rng = new Rng(701);
  for (const n of [1, 17, 100003]) {
    const inp = { y: randT(rng, n), x: randT(rng, n) };
    const { ref, cpu } = both("add", {}, inp);
    // one float32 rounding of the exact sum: |err| <= EPS32 * |y + x|
    assertClose(cpu.y, ref.y, { atol: 1e-300, rtol: EPS32 }, `add n=${n}`);
  }
});
