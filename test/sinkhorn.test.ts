// The fused Sinkhorn solver against a plain two-pass float64 implementation of the
// reference (sinkhornknopp.py, optimize_L_sk) written here in TypeScript.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { Rng } from "./helpers/opcheck";
import {
  sinkhorn,
  sinkhornFromFeatures,
  sinkhornTwoPassReference,
  SinkhornResult,
  SinkhornOptions,
} from "../lib/sinkhorn";

interface RefResult {
  labels: Int32Array;
  iterations: number;
  error: number;
  cost: number;
  colMarginal: Float64Array; // (K) K * sum_j Q[j,k], 1 at the exact solution
}

// The reference, as written: P = softmax(z) (float64), P **= lambda, then per
// iteration r = (1/K) / (P^T c) and c_new = (1/N) / (P r) as two separate passes,
// err = nansum |c / c_new - 1| every 10 iterations, loop while err > tol; labels =
// argmax_k (P[j,k] * c[j]) * r[k]; cost = -(1/lambda) sum_j log P^lambda[j,label] / N.
function referenceSinkhorn(z: Float32Array, n: number, k: number, lambda: number, tol: number): RefResult {
  const P = new Float64Array(n * k);
  for (let j = 0; j < n; j++) {
    let m = -Infinity;
    for (let q = 0; q < k; q++) m = Math.max(m, z[j * k + q]);
    let s = 0;
    for (let q = 0; q < k; q++) s += P[j * k + q] = Math.exp(z[j * k + q] - m);
    for (let q = 0; q < k; q++) P[j * k + q] = Math.pow(P[j * k + q] / s, lambda);
  }
  let c = new Float64Array(n).fill(1 / n);
  const r = new Float64Array(k);
  let err = 1e6;
  let counter = 0;
  while (err > tol) {
    r.fill(0);
    for (let j = 0; j < n; j++) for (let q = 0; q < k; q++) r[q] += P[j * k + q] * c[j];
    for (let q = 0; q < k; q++) r[q] = 1 / k / r[q];
    const cNew = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += P[j * k + q] * r[q];
      cNew[j] = 1 / n / s;
    }
    if (counter % 10 === 0) {
      err = 0;
      for (let j = 0; j < n; j++) {
        const v = Math.abs(c[j] / cNew[j] - 1);
        if (!Number.isNaN(v)) err += v;
      }
    }
    c = cNew;
    counter++;
    if (counter > 100000) throw new Error("reference did not converge");
  }
  const labels = new Int32Array(n);
  const col = new Float64Array(k);
  let logSum = 0;
  for (let j = 0; j < n; j++) {
    let best = -1;
    for (let q = 0; q < k; q++) {
      const v = P[j * k + q] * c[j] * r[q];
      col[q] += v;
      if (v > best) {
        best = v;
        labels[j] = q;
      }
    }
    logSum += Math.log(P[j * k + labels[j]]);
  }
  for (let q = 0; q < k; q++) col[q] *= k;
  return { labels, iterations: counter, error: err, cost: (-(1 / lambda) * logSum) / n, colMarginal: col };
}

// Marginals of our plan, rebuilt from the returned scalings:
// Q[j,k] = exp(logC[j] + lambda * (z[j,k] - rowmax_j) + logR[k]).
function marginals(z: Float32Array, n: number, k: number, lambda: number, res: SinkhornResult) {
  const row = new Float64Array(n); // N * sum_k Q[j,k]
  const col = new Float64Array(k); // K * sum_j Q[j,k]
  const { logR, logC } = res.scaling;
  for (let j = 0; j < n; j++) {
    let m = -Infinity;
    for (let q = 0; q < k; q++) m = Math.max(m, z[j * k + q]);
    for (let q = 0; q < k; q++) {
      const v = Math.exp(logC[j] + lambda * (z[j * k + q] - m) + logR[q]);
      row[j] += v * n;
      col[q] += v * k;
    }
  }
  return { row, col };
}

function maxAbsDev(a: Float64Array, target = 1): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v - target));
  return m;
}

function randomLogits(rng: Rng, n: number, k: number, scale: number): Float32Array {
  const z = new Float32Array(n * k);
  for (let i = 0; i < z.length; i++) z[i] = rng.normal() * scale;
  return z;
}

function firstDiff(a: Int32Array, b: Int32Array): string {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `first differing label at image ${i}: ${a[i]} vs ${b[i]}`;
  return "";
}

// Problems: odd sizes, K from 3 to 128, N == K, lambda from 5 to 25.
const problems = [
  { n: 257, k: 3, lambda: 5, scale: 1, seed: 1 },
  { n: 500, k: 10, lambda: 25, scale: 1, seed: 2 },
  { n: 1001, k: 37, lambda: 10, scale: 2, seed: 3 },
  { n: 64, k: 64, lambda: 25, scale: 1, seed: 4 },
  { n: 2000, k: 128, lambda: 25, scale: 0.5, seed: 5 },
];

test("fused solver = two-pass float64 reference: labels, iterations, error, cost, marginals", async () => {
  for (const p of problems) {
    const z = randomLogits(new Rng(p.seed), p.n, p.k, p.scale);
    const tol = 0.1;
    const ref = referenceSinkhorn(z, p.n, p.k, p.lambda, tol);
    const ours = await sinkhorn(z, p.n, p.k, { lambda: p.lambda, tol });
    const what = `n=${p.n} k=${p.k} lambda=${p.lambda}`;
    assert.equal(ours.iterations, ref.iterations, `${what}: iterations`);
    assert.equal(firstDiff(ours.labels, ref.labels), "", `${what}: labels`);
    assert.ok(ours.converged && ours.warning === undefined, what);
    // err is a sum of N terms |c/c_new - 1|, each carrying ~1e-15 relative rounding
    // from a different (but exact-arithmetic-equal) evaluation order: 1e-9 is ample.
    assert.ok(Math.abs(ours.error - ref.error) <= 1e-9 * Math.max(1, ref.error), `${what}: error ${ours.error} vs ${ref.error}`);
    assert.ok(ours.error <= tol);
    // cost: same mean of log-probabilities, evaluated as z - logsumexp vs log(p^lambda)/lambda.
    assert.ok(Math.abs(ours.cost - ref.cost) <= 1e-10 * Math.abs(ref.cost) + 1e-12, `${what}: cost ${ours.cost} vs ${ref.cost}`);
    let total = 0;
    for (let q = 0; q < p.k; q++) total += ours.counts[q];
    assert.equal(total, p.n);
    const hist = new Int32Array(p.k);
    for (const l of ours.labels) hist[l]++;
    assert.deepEqual(ours.counts, hist);
    const mg = marginals(z, p.n, p.k, p.lambda, ours);
    // Rows: c was computed from r last, so row sums are 1/N up to rounding.
    assert.ok(maxAbsDev(mg.row) < 1e-9, `${what}: row marginal off by ${maxAbsDev(mg.row)}`);
    // Columns: K*colsum_k - 1 is a weighted mean of (c_new/c_prev - 1) over images, and the
    // stopping check bounds each |c_prev/c_new - 1| by err <= tol, so |K*colsum_k - 1| <= tol/(1-tol).
    assert.ok(maxAbsDev(mg.col) <= tol / (1 - tol), `${what}: column marginal off by ${maxAbsDev(mg.col)}`);
    // ... and equal to the reference's column marginals (same iterates, rounding only).
    for (let q = 0; q < p.k; q++) assert.ok(Math.abs(mg.col[q] - ref.colMarginal[q]) < 1e-9, `${what}: column ${q}`);
  }
});

test("native two-pass baseline agrees with the TypeScript reference", async () => {
  const p = problems[2];
  const z = randomLogits(new Rng(p.seed), p.n, p.k, p.scale);
  const ref = referenceSinkhorn(z, p.n, p.k, p.lambda, 0.1);
  const tp = await sinkhornTwoPassReference(z, p.n, p.k, { lambda: p.lambda, tol: 0.1 });
  assert.equal(tp.iterations, ref.iterations);
  assert.equal(firstDiff(tp.labels, ref.labels), "");
  assert.ok(Math.abs(tp.cost - ref.cost) <= 1e-10 * Math.abs(ref.cost));
});

test("results do not depend on the thread count (bit-identical)", async () => {
  const n = 5003, k = 61;
  const z = randomLogits(new Rng(11), n, k, 1);
  for (const dtype of ["f64", "f32"] as const) {
    const runs: SinkhornResult[] = [];
    for (const threads of [1, 2, 3]) runs.push(await sinkhorn(z, n, k, { dtype, threads, tol: 0.01 }));
    for (const r of runs.slice(1)) {
      assert.deepEqual(r.labels, runs[0].labels, dtype);
      assert.deepEqual(r.counts, runs[0].counts, dtype);
      assert.equal(r.iterations, runs[0].iterations, dtype);
      assert.equal(r.error, runs[0].error, dtype);
      assert.equal(r.cost, runs[0].cost, dtype);
      assert.deepEqual(r.scaling.logR, runs[0].scaling.logR, dtype);
    }
  }
});

// The fused pass is compiled twice (AVX-512, and target_clones AVX2/baseline) from one
// source with a fixed operation order: on a machine with AVX-512 both must give the
// same bits. SELFLABEL_SINKHORN_ISA=portable makes the child skip the AVX-512 kernels
// (without AVX-512 both children run the portable ones and the test checks nothing more
// than determinism across processes).
test("AVX-512 and portable fused kernels give bit-identical results", () => {
  const script = `
    const { sinkhorn } = require(${JSON.stringify(path.join(__dirname, "../lib/sinkhorn.js"))});
    const { Rng } = require(${JSON.stringify(path.join(__dirname, "helpers/opcheck.js"))});
    (async () => {
      const out = [];
      for (const [n, k] of [[1003, 10], [2001, 37], [999, 300]]) {
        const rng = new Rng(n + k);
        const z = new Float32Array(n * k);
        for (let i = 0; i < z.length; i++) z[i] = rng.normal() * 2;
        for (const dtype of ["f64", "f32"]) {
          const r = await sinkhorn(z, n, k, { dtype, tol: 0.001, threads: 2 });
          out.push({ n, k, dtype, it: r.iterations, err: r.error, labels: Array.from(r.labels),
                     logR: Array.from(r.scaling.logR), logC: Array.from(r.scaling.logC) });
        }
      }
      process.stdout.write(JSON.stringify(out));
    })();`;
  const run = (isa: string | undefined) => {
    const env = { ...process.env };
    if (isa) env.SELFLABEL_SINKHORN_ISA = isa;
    else delete env.SELFLABEL_SINKHORN_ISA;
    const res = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", env, maxBuffer: 64 << 20 });
    assert.equal(res.status, 0, res.stderr);
    return JSON.parse(res.stdout) as { n: number; k: number; dtype: string }[];
  };
  const fast = run(undefined), portable = run("portable");
  assert.equal(fast.length, portable.length);
  for (let i = 0; i < fast.length; i++) {
    const what = `n=${fast[i].n} k=${fast[i].k} ${fast[i].dtype}`;
    // JSON keeps every bit of a double (shortest round-trip form)
    assert.deepEqual(fast[i], portable[i], what);
  }
});

test("f32 storage: same labels as f64 storage, marginals within tol", async () => {
  for (const p of problems) {
    const z = randomLogits(new Rng(p.seed), p.n, p.k, p.scale);
    const tol = 0.1;
    const a = await sinkhorn(z, p.n, p.k, { lambda: p.lambda, tol, dtype: "f64" });
    const b = await sinkhorn(z, p.n, p.k, { lambda: p.lambda, tol, dtype: "f32" });
    const what = `n=${p.n} k=${p.k} lambda=${p.lambda}`;
    assert.equal(b.iterations, a.iterations, what);
    assert.equal(firstDiff(b.labels, a.labels), "", what);
    assert.equal(b.cost, a.cost, what); // cost is computed from the logits, not from the stored matrix
    const mg = marginals(z, p.n, p.k, p.lambda, b);
    // The solve ran on entries rounded to f32 (relative 2^-24 each): row sums of the exact
    // plan differ from 1/N by at most that, columns by that on top of the tol bound.
    assert.ok(maxAbsDev(mg.row) < 1e-6, `${what}: row marginal off by ${maxAbsDev(mg.row)}`);
    assert.ok(maxAbsDev(mg.col) <= tol / (1 - tol) + 1e-6, `${what}: column marginal off by ${maxAbsDev(mg.col)}`);
  }
});

// Logits in the order sinkhorn.h documents for the features variant.
function featureLogits(f: Float32Array, n: number, d: number, w: Float32Array, bias: Float32Array | null, k: number) {
  const z = new Float32Array(n * k);
  const s = new Float64Array(8);
  for (let j = 0; j < n; j++) {
    for (let q = 0; q < k; q++) {
      s.fill(0);
      for (let i = 0; i < d; i++) s[i % 8] += f[j * d + i] * w[q * d + i];
      let t = s[0] + s[1] + (s[2] + s[3]) + (s[4] + s[5] + (s[6] + s[7]));
      if (bias) t += bias[q];
      z[j * k + q] = t;
    }
  }
  return z;
}

test("features variant equals the logits variant", async () => {
  const rng = new Rng(21);
  for (const [n, d, k, withBias] of [
    [600, 37, 20, true],
    [301, 8, 7, false],
    [150, 131, 33, true],
  ] as const) {
    const f = new Float32Array(n * d).map(() => rng.normal());
    const w = new Float32Array(k * d).map(() => rng.normal() * 0.3);
    const bias = withBias ? new Float32Array(k).map(() => rng.normal() * 0.1) : null;
    const z = featureLogits(f, n, d, w, bias, k);
    for (const dtype of ["f64", "f32"] as const) {
      const opts: SinkhornOptions = { lambda: 10, dtype, tol: 0.05 };
      const a = await sinkhorn(z, n, k, opts);
      const b = await sinkhornFromFeatures(f, n, d, w, bias, k, opts);
      const what = `n=${n} d=${d} k=${k} ${dtype}`;
      assert.deepEqual(b.labels, a.labels, what);
      assert.equal(b.iterations, a.iterations, what);
      assert.equal(b.error, a.error, what);
      assert.equal(b.cost, a.cost, what);
      assert.deepEqual(b.scaling.logR, a.scaling.logR, what);
    }
  }
});

test("underflow: a column the reference would zero out is handled", async () => {
  // Cluster 0 sits 40 logits below every row's maximum: P^25 ~ e^-1000 underflows to
  // exactly 0 in float64 for the whole column, so the reference divides by zero.
  const n = 400, k = 8, lambda = 25;
  const rng = new Rng(31);
  const z = randomLogits(rng, n, k, 1);
  for (let j = 0; j < n; j++) z[j * k] = -40 - rng.next();
  let colMax = 0;
  for (let j = 0; j < n; j++) {
    let m = -Infinity, s = 0;
    for (let q = 0; q < k; q++) m = Math.max(m, z[j * k + q]);
    for (let q = 0; q < k; q++) s += Math.exp(z[j * k + q] - m);
    colMax = Math.max(colMax, Math.pow(Math.exp(z[j * k] - m) / s, lambda));
  }
  assert.equal(colMax, 0, "the test case must really underflow in the reference");
  for (const dtype of ["f64", "f32"] as const) {
    const res = await sinkhorn(z, n, k, { lambda, dtype });
    assert.ok(res.converged, dtype);
    assert.ok(Number.isFinite(res.cost) && Number.isFinite(res.error), dtype);
    for (const v of res.scaling.logR) assert.ok(Number.isFinite(v), dtype);
    // equipartition: every cluster, the vanished one included, gets about N/K images
    for (let q = 0; q < k; q++) assert.ok(res.counts[q] > n / k / 2, `${dtype}: cluster ${q} has ${res.counts[q]} images`);
  }
});

test("maxIters stops with a warning", async () => {
  const z = randomLogits(new Rng(41), 300, 12, 1);
  const res = await sinkhorn(z, 300, 12, { tol: 1e-14, maxIters: 3 });
  assert.equal(res.iterations, 3);
  assert.equal(res.converged, false);
  assert.match(res.warning ?? "", /maxIters=3/);
  assert.ok(res.error > 1e-14);
  assert.equal(res.labels.length, 300);
});

test("warm start from the previous scalings saves iterations", async () => {
  const n = 3000, k = 50;
  const rng = new Rng(51);
  const z = randomLogits(rng, n, k, 1);
  const cold = await sinkhorn(z, n, k, { tol: 0.01 });
  const again = await sinkhorn(z, n, k, { tol: 0.01, warmStart: cold.scaling.logR });
  assert.equal(again.iterations, 1, "a converged r needs one check");
  assert.ok(again.converged);
  // next label pass: the network moved a little
  const z2 = z.map((v) => v + 0.1 * rng.normal());
  const cold2 = await sinkhorn(z2, n, k, { tol: 0.01 });
  const warm2 = await sinkhorn(z2, n, k, { tol: 0.01, warmStart: cold.scaling.logR });
  assert.ok(warm2.converged);
  assert.ok(warm2.iterations < cold2.iterations, `warm ${warm2.iterations} vs cold ${cold2.iterations}`);
});

async function rejects(p: () => Promise<unknown>, type: ErrorConstructor, re: RegExp, code?: string) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    assert.match((e as Error).message, re);
    if (code) assert.equal((e as { code?: string }).code, code);
    return true;
  });
}

test("guards: non-finite logits name the first bad row", async () => {
  const n = 50, k = 5;
  const z = randomLogits(new Rng(61), n, k, 1);
  z[7 * k + 2] = NaN;
  z[3 * k + 4] = Infinity;
  await rejects(() => sinkhorn(z, n, k), RangeError, /row 3 .*\+Inf at column 4/, "SLN_NONFINITE_LOGITS");
  z[3 * k + 4] = 0;
  await rejects(() => sinkhorn(z, n, k, { dtype: "f32" }), RangeError, /row 7 .*NaN at column 2/, "SLN_NONFINITE_LOGITS");
  const f = new Float32Array(n * 4).fill(0.5);
  f[9 * 4 + 1] = -Infinity;
  const w = new Float32Array(k * 4).fill(1);
  await rejects(() => sinkhornFromFeatures(f, n, 4, w, null, k), RangeError, /row 9 .*features/, "SLN_NONFINITE_LOGITS");
});

test("guards: scalings that leave the float64 range give a clear error, not NaN labels", async () => {
  // Three images prefer cluster 0 by 40 logits; at lambda 25 their cluster-1 entries are
  // e^-975 = 0, so only image 3 can fill cluster 1: no equipartition exists and the
  // scalings grow without bound until one leaves the float64 range.
  const z = new Float32Array([0, -40, 0, -40, 0, -40, 0, -1]);
  for (const dtype of ["f64", "f32"] as const) {
    await rejects(
      () => sinkhorn(z, 4, 2, { lambda: 25, dtype, maxIters: 5000 }),
      RangeError,
      /scaling of (image|cluster) \d+ left the float64 range at iteration \d+ \(N=4, K=2, lambda=25\).*lower lambda/,
      "SLN_SINKHORN_RANGE",
    );
  }
  // the same logits at a lambda that keeps every entry: solved, and image 3 (the only
  // one near cluster 1) is the one the equipartition pushes into cluster 1
  const ok = await sinkhorn(z, 4, 2, { lambda: 1 });
  assert.ok(ok.converged);
  assert.equal(ok.labels[3], 1);
});

test("guards: shapes and options", async () => {
  const z = new Float32Array(40);
  await rejects(() => sinkhorn(z, 4, 10), RangeError, /N \(images\) must be >= K \(clusters\).*N=4, K=10/);
  await rejects(() => sinkhorn(new Float32Array(0), 5, 0), RangeError, /K \(clusters\) must be >= 1/);
  await rejects(() => sinkhorn(z, 10, 4, { lambda: 0 }), RangeError, /lambda must be a finite number > 0/);
  await rejects(() => sinkhorn(z, 10, 4, { lambda: -1 }), RangeError, /lambda/);
  await rejects(() => sinkhorn(z, 10, 4, { lambda: NaN }), RangeError, /lambda/);
  await rejects(() => sinkhorn(z, 10, 4, { tol: -1 }), RangeError, /tol/);
  await rejects(() => sinkhorn(z, 10, 4, { maxIters: 0 }), RangeError, /maxIters/);
  await rejects(() => sinkhorn(z, 10, 4, { threads: 0 }), RangeError, /threads/);
  await rejects(() => sinkhorn(z, 10, 4, { dtype: "f16" as "f32" }), RangeError, /'f64' or 'f32'/);
  await rejects(() => sinkhorn(z, 10, 4, { warmStart: new Float64Array(3) }), RangeError, /warmStart .*expected K = 4/);
  await rejects(() => sinkhorn(z, 10, 4, { warmStart: new Float32Array(4) as unknown as Float64Array }), TypeError, /Float64Array/);
  await rejects(() => sinkhorn(z, 10, 4, { warmStart: new Float64Array([0, NaN, 0, 0]) }), RangeError, /warmStart\[1\]/);
  await rejects(() => sinkhorn(new Float64Array(40) as unknown as Float32Array, 10, 4), TypeError, /Float32Array/);
  await rejects(() => sinkhorn(z, 10, 5), RangeError, /40 elements, expected n\*k/);
  await rejects(() => sinkhorn(z, 10.5, 4), RangeError, /integer/);
  await rejects(() => sinkhorn(z, "10" as unknown as number, 4), TypeError, /n must be a number/);
  await rejects(() => sinkhornFromFeatures(z, 10, 4, new Float32Array(3), null, 4), RangeError, /weight .*expected k\*d/);
  await rejects(() => sinkhornFromFeatures(z, 10, 4, new Float32Array(16), new Float32Array(3), 4), RangeError, /bias/);
});

test("memory planning refuses before allocating and names --dtype f32", async () => {
  const n = 1000, k = 100;
  const z = new Float32Array(n * k);
  await assert.rejects(
    () => sinkhorn(z, n, k, { memoryBudget: 500_000 }),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, "SLN_OUT_OF_MEMORY");
      // 800000 matrix + 64 slack + 36000 per-image + 256 x 104 x 8 partials (K padded to 8) + 4992: 1.054 MB
      assert.match(e.message, /N x K = 1000 x 100 matrix in f64 storage needs 1\.1 MB but only 500000 bytes/);
      assert.match(e.message, /--dtype f32/);
      return true;
    },
  );
  await rejects(() => sinkhorn(z, n, k, { memoryBudget: 300_000, dtype: "f32" }), Error, /already the smallest/, "SLN_OUT_OF_MEMORY");
  // a plan that fits is solved
  const ok = await sinkhorn(z, n, k, { memoryBudget: 2_000_000 });
  assert.ok(ok.converged);
  // this machine: a 2^22 x 2^18 f64 matrix (8.8 TB) is refused from MemAvailable, before any allocation
  const bigN = 2 ** 22, bigK = 2 ** 18;
  await rejects(
    () => sinkhornFromFeatures(new Float32Array(bigN), bigN, 1, new Float32Array(bigK), null, bigK),
    Error,
    /4194304 x 262144 matrix in f64 storage needs 8\d\d\d\.\d\d GB .*use --dtype f32/,
    "SLN_OUT_OF_MEMORY",
  );
});
