// Shared helpers for op tests: seeded random inputs, the harness call (in the
// test-only addon, ./test_addon), closeness with a readable repro, and a
// finite-difference check of the float64 reference.
import * as assert from "node:assert/strict";
import { harnessRun, HarnessTensors } from "./test_addon";

/** mulberry32: small, seeded, good enough for test data. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  tensor(n: number, scale = 1): Float64Array {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = this.normal() * scale;
    return a;
  }
}

export type Params = Record<string, number>;

export function runOp(op: string, backend: "ref" | "cpu" | "cuda", params: Params, inputs: HarnessTensors): HarnessTensors {
  return harnessRun(op, backend, params, inputs);
}

/** max |a-b| / (atol + rtol*|b|) must be <= 1; message names the op, params and worst index. */
export function assertClose(
  actual: Float64Array,
  expected: Float64Array,
  tol: { atol: number; rtol: number },
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  let worst = 0;
  let wi = -1;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    const r = d / (tol.atol + tol.rtol * Math.abs(expected[i]));
    if (!(r <= worst)) {
      worst = r;
      wi = i;
    }
  }
  if (!(worst <= 1)) {
    assert.fail(
      `${what}: mismatch at [${wi}]: got ${actual[wi]}, expected ${expected[wi]} ` +
        `(atol ${tol.atol}, rtol ${tol.rtol}, ratio ${worst.toExponential(2)})`,
    );
  }
}

/**
 * Check the reference's backward against central differences of its forward:
 * L = sum(dy * y); dL/dinput[i] ~ (L(x+h e_i) - L(x-h e_i)) / 2h, for up to
 * `samples` indices of each input in `wrt` (gradient output named "d"+name).
 */
export function checkFiniteDiff(
  op: string,
  params: Params,
  inputs: HarnessTensors,
  wrt: string[],
  opts: { samples?: number; h?: number; tol?: number; rng?: Rng; out?: string } = {},
): void {
  const out = opts.out ?? "y";
  const h = opts.h ?? 1e-6;
  // central differences in float64 with h=1e-6: truncation O(h^2 * f''') ~ 1e-12,
  // rounding ~ 1e-16 * |L| / h ~ 1e-10 * |L|; 1e-5 relative leaves room for both.
  const tol = opts.tol ?? 1e-5;
  const rng = opts.rng ?? new Rng(7);
  const samples = opts.samples ?? 12;
  const dy = inputs.dy;
  assert.ok(dy, "checkFiniteDiff needs inputs.dy");
  const grads = runOp(op, "ref", params, inputs);
  const fwdInputs: HarnessTensors = { ...inputs };
  delete fwdInputs.dy;
  const loss = (inp: HarnessTensors): number => {
    const y = runOp(op, "ref", params, inp)[out];
    let s = 0;
    for (let i = 0; i < y.length; i++) s += dy[i] * y[i];
    return s;
  };
  for (const name of wrt) {
    const x = inputs[name];
    const g = grads["d" + name];
    assert.ok(x && g, `${op}: need input ${name} and gradient d${name}`);
    for (let s = 0; s < Math.min(samples, x.length); s++) {
      const i = rng.int(0, x.length - 1);
      const xp = Float64Array.from(x);
      xp[i] += h;
      const xm = Float64Array.from(x);
      xm[i] -= h;
      const num = (loss({ ...fwdInputs, [name]: xp }) - loss({ ...fwdInputs, [name]: xm })) / (2 * h);
      const err = Math.abs(num - g[i]) / Math.max(1, Math.abs(num));
      assert.ok(err <= tol, `${op} ${JSON.stringify(params)}: d${name}[${i}] analytic ${g[i]} vs numeric ${num}`);
    }
  }
}

// Unit roundoff of float32.
const U32 = 2 ** -24;

/**
 * Elementwise float32 error bound. For a sum of L products computed in float32
 * in ANY order (oneDNN blocks and reorders its reductions), the classic bound is
 * |err| <= (L-1)*u * sum|terms|; rounding x and w (or dy) to float32 adds 2u,
 * rounding the result adds u. So we allow (L+3)*u * sum|terms| per element,
 * where sum|terms| is the reference run on |inputs| (exact bound, no guessed
 * scale). A wrong or missing term costs about sum|terms|/L, far above this.
 */
export function assertWithinBound(
  actual: Float64Array,
  expected: Float64Array,
  absSum: Float64Array,
  L: number,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  const k = (L + 3) * U32;
  let worst = 0;
  let wi = -1;
  for (let i = 0; i < actual.length; i++) {
    // 1e-30: elements whose every term is padding must be (near) exactly 0
    const r = Math.abs(actual[i] - expected[i]) / (k * absSum[i] + 1e-30);
    if (!(r <= worst)) {
      worst = r;
      wi = i;
    }
  }
  if (!(worst <= 1)) {
    assert.fail(
      `${what}: mismatch at [${wi}]: got ${actual[wi]}, expected ${expected[wi]}, ` +
        `bound ${(k * absSum[wi]).toExponential(2)} (L=${L}), ratio ${worst.toExponential(2)}`,
    );
  }
}

const abs = (a: Float64Array): Float64Array => a.map(Math.abs);
export function absInputs(inp: HarnessTensors): HarnessTensors {
  const out: HarnessTensors = {};
  for (const k of Object.keys(inp)) out[k] = abs(inp[k]);
  return out;
}

// ---------------------------------------------------------------- batchnorm2d

/**
 * Float32-exact batch-norm inputs for shape p: x with a per-tensor offset and
 * scale (so the mean is not ~0 and the variance not ~1), gamma, beta, running
 * stats (running_var >= 0.5), and dy when withDy. Drawn in this order.
 */
export function bnInputs(rng: Rng, p: Params, withDy: boolean): HarnessTensors {
  const f32 = (a: Float64Array) => a.map((v) => Math.fround(v));
  const n = p.N * p.C * p.H * p.W;
  const inp: HarnessTensors = {
    x: f32(rng.tensor(n, 2).map((v) => v + 0.5)),
    gamma: f32(rng.tensor(p.C)),
    beta: f32(rng.tensor(p.C)),
    running_mean: f32(rng.tensor(p.C)),
    running_var: f32(rng.tensor(p.C).map((v) => 0.5 + Math.abs(v))),
  };
  if (withDy) inp.dy = f32(rng.tensor(n));
  return inp;
}

/**
 * A float32 batch norm against the float64 reference, with the tolerances every
 * backend (CPU NCHW and nChw16c, CUDA) is held to. Reductions over M = N*H*W
 * float32 values of size ~1-3: the worst-case summation bound (M-1)*EPS32*sum|t|
 * is far above what rounding errors that add up like a random walk give,
 * ~sqrt(M)*EPS32*max|t| ~ 3e-6 for M <= 196 (and for larger M where the sums
 * are double). Observed max over 40 random shapes: 8e-7 for y, 3.5e-6 for
 * dgamma, 1.6e-6 for dx; the tolerances sit ~10x above.
 */
export function assertBatchnormClose(got: HarnessTensors, ref: HarnessTensors, training: boolean, what: string): void {
  // y = (x - mean) * invstd * gamma + beta: |xhat| <= sqrt(M), |gamma| <~ 3
  assertClose(got.y, ref.y, { atol: 1e-5, rtol: 1e-5 }, `${what} y`);
  // running stats: one float32 update of values ~1 (observed 2e-7)
  assertClose(got.running_mean, ref.running_mean, { atol: 2e-6, rtol: 1e-6 }, `${what} running_mean`);
  assertClose(got.running_var, ref.running_var, { atol: 2e-6, rtol: 1e-6 }, `${what} running_var`);
  if (!training) return;
  // dgamma = sum(dy*xhat), dbeta = sum(dy): sums of M terms, |sum| up to ~40
  assertClose(got.dbeta, ref.dbeta, { atol: 3e-5, rtol: 1e-5 }, `${what} dbeta`);
  assertClose(got.dgamma, ref.dgamma, { atol: 3e-5, rtol: 1e-5 }, `${what} dgamma`);
  // dx = gamma*invstd/M * (M*dy - dbeta - xhat*dgamma): the sums' errors divided
  // by M, times gamma*invstd (~3/1.4), plus cancellation in the bracket
  assertClose(got.dx, ref.dx, { atol: 2e-5, rtol: 1e-5 }, `${what} dx`);
}

// ---------------------------------------------------------------- conv2d

/** A conv2d harness case's output size and seeded inputs: x, w (scaled by 1/sqrt(fan-in)), dy, and b when p.bias. */
export function convCase(rng: Rng, p: Params, roundBias: (v: number) => number = (v) => v): { OH: number; OW: number; inp: HarnessTensors } {
  const OH = Math.floor((p.H + 2 * p.pad - p.R) / p.stride) + 1,
    OW = Math.floor((p.W + 2 * p.pad - p.S) / p.stride) + 1;
  const inp: HarnessTensors = {
    x: rng.tensor(p.N * p.C * p.H * p.W),
    w: rng.tensor(p.K * p.C * p.R * p.S, 1 / Math.sqrt(p.C * p.R * p.S)),
    dy: rng.tensor(p.N * p.K * OH * OW),
    ...(p.bias ? { b: rng.tensor(p.K).map(roundBias) } : {}),
  };
  return { OH, OW, inp };
}
