// Every harness op on "cuda" against the float64 reference and the CPU backend,
// on the same random inputs (ggml's test-backend-ops idea). Tolerances:
// - sums of L float32 products (conv, linear): the CPU tests' bound, |err| <=
//   (L+3)*u * sum|terms| for ANY summation order, times CONV_SLACK for cuDNN's
//   transform algorithms (Winograd/FFT/implicit-precomp GEMM with split-K):
//   their error is not that of a reordered sum; Winograd F(4x4,3x3) amplifies
//   rounding by up to ~10x on unit-scale data. TF32 stays off (the default).
// - selections and copies (relu, maxpool, dropout, add): exact, or one rounding
//   of the same float32 operation (dropout's scale may be a multiply on one side
//   and a divide on the other).
// - reductions over M values (batch norm, average pool, cross-entropy): the CPU
//   tests' tolerances, which already allow any order.
// Each failure names the op and its parameters (a repro).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { Rng, runOp, assertClose, Params, assertBatchnormClose } from "../helpers/opcheck";
import { HarnessTensors, harnessOps } from "../helpers/test_addon";
import { cudaOrSkip } from "./_device";

const U32 = 2 ** -24;
const EXACT = { atol: 1e-300, rtol: 0 };
const CONV_SLACK = 16;
const repro = (what: string, p: Params) => `${what} ${JSON.stringify(p)}`;
const abs = (a: Float64Array) => a.map(Math.abs);
function absInputs(inp: HarnessTensors): HarnessTensors {
  const o: HarnessTensors = {};
  for (const k of Object.keys(inp)) o[k] = abs(inp[k]);
  return o;
}
function withinBound(actual: Float64Array, expected: Float64Array, absSum: Float64Array, L: number, slack: number, what: string): void {
  assert.equal(actual.length, expected.length, what);
  const k = (L + 3) * U32 * slack;
  for (let i = 0; i < actual.length; i++) {
    const b = k * absSum[i] + 1e-30;
    if (!(Math.abs(actual[i] - expected[i]) <= b))
      assert.fail(`${what}: [${i}] cuda ${actual[i]}, reference ${expected[i]}, bound ${b.toExponential(2)} (L=${L})`);
  }
}
function maxDiff(a: Float64Array, b: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const covered = new Set<string>();

test("conv2d on cuda: forward and backward within the float32 bound of the reference", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  covered.add("conv2d");
  const rng = new Rng(11);
  const shapes = [
    { N: 2, C: 3, H: 9, W: 7, K: 5, R: 3, S: 3, stride: 1, pad: 1, bias: 0 },
    { N: 3, C: 4, H: 13, W: 13, K: 8, R: 5, S: 5, stride: 2, pad: 2, bias: 1 },
    { N: 2, C: 3, H: 31, W: 31, K: 6, R: 11, S: 11, stride: 4, pad: 2, bias: 1 },
    { N: 4, C: 16, H: 8, W: 8, K: 32, R: 1, S: 1, stride: 1, pad: 0, bias: 0 },
    { N: 1, C: 5, H: 6, W: 10, K: 3, R: 3, S: 3, stride: 2, pad: 0, bias: 1 },
  ];
  for (const c of shapes) {
    const p = c as unknown as Params;
    const OH = Math.floor((c.H + 2 * c.pad - c.R) / c.stride) + 1, OW = Math.floor((c.W + 2 * c.pad - c.S) / c.stride) + 1;
    const inp: HarnessTensors = {
      x: rng.tensor(c.N * c.C * c.H * c.W),
      w: rng.tensor(c.K * c.C * c.R * c.S, 1 / Math.sqrt(c.C * c.R * c.S)),
      dy: rng.tensor(c.N * c.K * OH * OW),
    };
    if (c.bias) inp.b = rng.tensor(c.K);
    const ref = runOp("conv2d", "ref", p, inp), bound = runOp("conv2d", "ref", p, absInputs(inp));
    const gpu = runOp("conv2d", "cuda", p, inp), cpu = runOp("conv2d", "cpu", p, inp);
    withinBound(gpu.y, ref.y, bound.y, c.C * c.R * c.S + 1, CONV_SLACK, repro("conv2d y", p));
    withinBound(gpu.dx, ref.dx, bound.dx, c.K * c.R * c.S, CONV_SLACK, repro("conv2d dx", p));
    withinBound(gpu.dw, ref.dw, bound.dw, c.N * OH * OW, CONV_SLACK, repro("conv2d dw", p));
    if (c.bias) withinBound(gpu.db, ref.db, bound.db, c.N * OH * OW, CONV_SLACK, repro("conv2d db", p));
    t.diagnostic(`conv2d ${JSON.stringify(c)}: max |cuda-cpu| y ${maxDiff(gpu.y, cpu.y).toExponential(2)}, dw ${maxDiff(gpu.dw, cpu.dw).toExponential(2)}`);
  }
  // a first layer: dx not needed
  const c = { N: 2, C: 3, H: 8, W: 8, K: 4, R: 3, S: 3, stride: 1, pad: 1, bias: 0, need_dx: 0 };
  const inp = { x: rng.tensor(2 * 3 * 64), w: rng.tensor(4 * 27, 0.2), dy: rng.tensor(2 * 4 * 64) };
  const g = runOp("conv2d", "cuda", c, inp);
  assert.equal(g.dx, undefined);
  withinBound(g.dw, runOp("conv2d", "ref", c, inp).dw, runOp("conv2d", "ref", c, absInputs(inp)).dw, 2 * 64, CONV_SLACK, "conv2d dw need_dx=0");
});

test("linear on cuda: forward and backward within the float32 bound", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  covered.add("linear");
  const rng = new Rng(12);
  for (const c of [
    { N: 1, in: 7, out: 3, bias: 1 },
    { N: 17, in: 33, out: 10, bias: 1 },
    { N: 64, in: 4096, out: 100, bias: 1 },
    { N: 5, in: 128, out: 3000, bias: 0 },
  ]) {
    const inp: HarnessTensors = { x: rng.tensor(c.N * c.in), w: rng.tensor(c.out * c.in, 1 / Math.sqrt(c.in)), dy: rng.tensor(c.N * c.out) };
    if (c.bias) inp.b = rng.tensor(c.out);
    const ref = runOp("linear", "ref", c, inp), bound = runOp("linear", "ref", c, absInputs(inp)), gpu = runOp("linear", "cuda", c, inp);
    // cuBLAS GEMM (TF32 off) is a reordered float32 sum: SLACK 2 covers split-K partial sums rounded twice
    withinBound(gpu.y, ref.y, bound.y, c.in + 1, 2, repro("linear y", c));
    withinBound(gpu.dx, ref.dx, bound.dx, c.out, 2, repro("linear dx", c));
    withinBound(gpu.dw, ref.dw, bound.dw, c.N, 2, repro("linear dw", c));
    if (c.bias) withinBound(gpu.db, ref.db, bound.db, c.N, 2, repro("linear db", c));
  }
});

test("batchnorm2d on cuda: training forward/backward and eval within the CPU tests' tolerances", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  covered.add("batchnorm2d");
  const rng = new Rng(13);
  for (const c of [
    { N: 4, C: 3, H: 5, W: 7 },
    { N: 16, C: 32, H: 8, W: 8 },
    { N: 2, C: 5, H: 1, W: 1 },
    { N: 3, C: 64, H: 13, W: 11 },
  ]) {
    const n = c.N * c.C * c.H * c.W;
    const inp = {
      x: rng.tensor(n, 2).map((v) => v + 1),
      gamma: rng.tensor(c.C).map((v) => 1 + 0.3 * v),
      beta: rng.tensor(c.C, 0.5),
      running_mean: rng.tensor(c.C, 0.1),
      running_var: rng.tensor(c.C, 0.1).map((v) => 1 + Math.abs(v)),
      dy: rng.tensor(n),
    };
    const p = { ...c, training: 1 };
    const ref = runOp("batchnorm2d", "ref", p, inp), gpu = runOp("batchnorm2d", "cuda", p, inp);
    // per-channel mean/variance over M = N*H*W values in float32: the CPU tests' tolerances;
    // cuDNN's running variance uses the unbiased M/(M-1) factor, as PyTorch and the reference do
    assertBatchnormClose(gpu, ref, true, repro("batchnorm2d", p));
    const e = { ...c, training: 0 };
    const inpEval = { ...inp } as HarnessTensors;
    delete inpEval.dy;
    const refE = runOp("batchnorm2d", "ref", e, inpEval), gpuE = runOp("batchnorm2d", "cuda", e, inpEval);
    assertClose(gpuE.y, refE.y, { atol: 1e-5, rtol: 1e-5 }, repro("batchnorm2d eval y", e));
    assertClose(gpuE.running_mean, inp.running_mean, { atol: 0, rtol: U32 }, repro("batchnorm2d eval keeps running_mean", e));
  }
});

test("relu, maxpool2d, avgpool2d on cuda", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  covered.add("relu").add("maxpool2d").add("avgpool2d");
  const rng = new Rng(14);
  for (const n of [1, 7, 1000, 65537]) {
    const inp = { x: rng.tensor(n), dy: rng.tensor(n) };
    const cpu = runOp("relu", "cpu", {}, inp), gpu = runOp("relu", "cuda", {}, inp);
    assertClose(gpu.y, cpu.y, EXACT, `relu y n=${n}`); // a selection: exact
    assertClose(gpu.dx, cpu.dx, EXACT, `relu dx n=${n}`);
  }
  for (const p of [
    { N: 2, C: 3, H: 8, W: 8, kernel: 2, stride: 2, pad: 0 },
    { N: 2, C: 4, H: 27, W: 27, kernel: 3, stride: 2, pad: 0 },
    { N: 1, C: 2, H: 9, W: 7, kernel: 3, stride: 2, pad: 1 },
    { N: 3, C: 5, H: 4, W: 6, kernel: 1, stride: 1, pad: 0, kernel_h: 4, kernel_w: 6 },
  ]) {
    const OH = Math.floor((p.H + 2 * p.pad - (p.kernel_h ?? p.kernel)) / p.stride) + 1;
    const OW = Math.floor((p.W + 2 * p.pad - (p.kernel_w ?? p.kernel)) / p.stride) + 1;
    const inp = { x: rng.tensor(p.N * p.C * p.H * p.W), dy: rng.tensor(p.N * p.C * OH * OW) };
    const pp = p as unknown as Params;
    // max: a selection (random normal inputs have no ties), backward scatters dy: exact
    // (against the CPU: both see the same float32 inputs, the reference sees float64 ones)
    const mc = runOp("maxpool2d", "cpu", pp, inp), mg = runOp("maxpool2d", "cuda", pp, inp);
    assertClose(mg.y, mc.y, EXACT, repro("maxpool2d y", pp));
    // overlapping windows add dy values into one dx: up to kernel^2 float32 additions in any order
    assertClose(mg.dx, mc.dx, { atol: 3e-6, rtol: 0 }, repro("maxpool2d dx", pp));
    const ar = runOp("avgpool2d", "ref", pp, inp), ag = runOp("avgpool2d", "cuda", pp, inp);
    const kk = (p.kernel_h ?? p.kernel) * (p.kernel_w ?? p.kernel);
    const mx = (a: Float64Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assertClose(ag.y, ar.y, { atol: kk * U32 * 2 * mx(inp.x), rtol: 2 * U32 }, repro("avgpool2d y", pp));
    assertClose(ag.dx, ar.dx, { atol: (kk + 1) * U32 * 2 * mx(inp.dy), rtol: 2 * U32 }, repro("avgpool2d dx", pp));
  }
});

test("dropout, cross_entropy, sgd_step, add on cuda", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  covered.add("dropout").add("cross_entropy").add("sgd_step").add("add");
  const rng = new Rng(15);
  for (const [n, p] of [
    [1000, 0.5],
    [4097, 0.1],
    [9216 * 3, 0.5],
  ]) {
    const inp = { x: rng.tensor(n), dy: rng.tensor(n) };
    const params = { p, seed: 12345, training: 1 };
    const ref = runOp("dropout", "ref", params, inp), gpu = runOp("dropout", "cuda", params, inp);
    // the mask is a pure function of (seed, index) shared by all backends: same zeros,
    // survivors scaled by 1/(1-p) within one float32 rounding
    for (let i = 0; i < n; i++) assert.equal(gpu.y[i] === 0, ref.mask[i] === 0 || inp.x[i] === 0, `dropout mask differs at ${i}`);
    assertClose(gpu.y, ref.y, { atol: 1e-300, rtol: 2 * U32 }, `dropout y n=${n} p=${p}`);
    assertClose(gpu.dx, ref.dx, { atol: 1e-300, rtol: 2 * U32 }, `dropout dx n=${n} p=${p}`);
  }
  for (const [N, K] of [
    [1, 2],
    [37, 10],
    [256, 3000],
  ]) {
    const logits = rng.tensor(N * K, 3);
    const labels = Float64Array.from({ length: N }, () => rng.int(0, K - 1));
    const p = { N, K, scale: 0.5 };
    const ref = runOp("cross_entropy", "ref", p, { logits, labels }), gpu = runOp("cross_entropy", "cuda", p, { logits, labels });
    // the CPU tests' tolerances: log-sum-exp over K float32 terms
    assertClose(gpu.loss, ref.loss, { atol: 1e-7, rtol: 1e-6 }, repro("cross_entropy loss", p));
    assertClose(gpu.dlogits, ref.dlogits, { atol: (4 * 2 ** -23) / N, rtol: 4 * 2 ** -23 }, repro("cross_entropy dlogits", p));
  }
  for (const first of [1, 0]) {
    const n = 10007;
    const inp = { w: rng.tensor(n), g: rng.tensor(n, 0.1), buf: rng.tensor(n, 0.1) };
    const p = { lr: 0.05, momentum: 0.9, weight_decay: 1e-4, first };
    const ref = runOp("sgd_step", "ref", p, inp), gpu = runOp("sgd_step", "cuda", p, inp);
    // three float32 operations per element (FMA contraction allowed): the CPU tests' tolerances
    assertClose(gpu.buf, ref.buf, { atol: 1e-5, rtol: 1e-6 }, repro("sgd_step buf", p));
    assertClose(gpu.w, ref.w, { atol: 2e-6, rtol: 1e-6 }, repro("sgd_step w", p));
  }
  const y = rng.tensor(5000), x = rng.tensor(5000);
  // one float32 addition per element: the same rounding on every backend
  assertClose(runOp("add", "cuda", {}, { y, x }).y, runOp("add", "cpu", {}, { y, x }).y, EXACT, "add");
});

test("every harness op has a cuda case above", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  assert.deepEqual([...covered].sort(), [...harnessOps()].sort(), "a harness op without a GPU comparison");
});
