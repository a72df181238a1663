// Spectral clustering against a float64 reference (test/fixtures/spectral.json,
// made by scripts/make-spectral-fixture.py: brute-force kNN graph, numpy's
// dense eigh, scikit-learn's k-means on the embedding), the projection, thread
// determinism, and bad input.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { native, packageRoot } from "../lib/binding";
import { kmeans, spectral } from "../lib/kmeans";
import { nmi } from "../lib/metrics";
import { Prng } from "../lib/prng";

interface Case {
  name: string;
  n: number;
  d: number;
  k: number;
  neighbors: number;
  data: number[];
  truth: number[];
  edges: number;
  eigenvalues: number[];
  sklearnSpectralNmi: number;
  sklearnKmeansNmi: number;
}
const fixture = JSON.parse(fs.readFileSync(path.join(packageRoot(), "test", "fixtures", "spectral.json"), "utf8")) as { cases: Case[] };

for (const c of fixture.cases) {
  test(`spectral matches the float64 reference: ${c.name} (n ${c.n}, d ${c.d}, k ${c.k})`, async () => {
    const x = Float32Array.from(c.data);
    const r = await spectral(x, c.n, c.d, c.k, { neighbors: c.neighbors, dims: 0 });
    assert.equal(r.edges, c.edges, "kNN graph edges");
    assert.equal(r.dims, c.d);
    for (let j = 0; j < c.k; j++) assert.ok(Math.abs(r.eigenvalues[j] - c.eigenvalues[j]) < 1e-6, `eigenvalue ${j}: ${r.eigenvalues[j]} vs ${c.eigenvalues[j]}`);
    assert.ok(r.residual <= 1e-5, `residual ${r.residual}`);
    const truth = Int32Array.from(c.truth);
    const ours = await nmi(r.labels, truth);
    assert.ok(ours >= c.sklearnSpectralNmi - 0.01, `NMI ${ours} vs the reference pipeline's ${c.sklearnSpectralNmi}`);
    // the case separates the methods: k-means on the rows fails where the graph succeeds
    const km = await kmeans(x, c.n, c.d, c.k, { restarts: 10 });
    assert.ok((await nmi(km.labels, truth)) < ours - 0.5, "k-means should not solve this case");
    assert.ok(r.within > 0.99, `within ${r.within}`);
  });
}

test("spectral: a projection on the principal directions keeps data that lie in a low-dimensional subspace", async () => {
  const c = fixture.cases[1];
  // rotate the rows into 40 dimensions (orthonormal 5 x 40 map): cosine geometry unchanged
  const D = 40,
    rng = new Prng(5);
  const m: number[][] = [];
  for (let a = 0; a < c.d; a++) {
    let v = Array.from({ length: D }, () => rng.random() - 0.5);
    for (const u of m) {
      const dot = v.reduce((s, t, j) => s + t * u[j], 0);
      v = v.map((t, j) => t - dot * u[j]);
    }
    const nv = Math.sqrt(v.reduce((s, t) => s + t * t, 0));
    m.push(v.map((t) => t / nv));
  }
  const x = new Float32Array(c.n * D);
  for (let i = 0; i < c.n; i++) for (let a = 0; a < c.d; a++) for (let j = 0; j < D; j++) x[i * D + j] += c.data[i * c.d + a] * m[a][j];
  const r = await spectral(x, c.n, D, c.k, { neighbors: c.neighbors, dims: c.d });
  assert.equal(r.dims, c.d);
  assert.equal(r.edges, c.edges);
  for (let j = 0; j < c.k; j++) assert.ok(Math.abs(r.eigenvalues[j] - c.eigenvalues[j]) < 1e-5, `eigenvalue ${j}`);
  assert.equal(await nmi(r.labels, Int32Array.from(c.truth)), 1);
});

test("spectral: same seed, same result for 1 and 2 threads", async () => {
  const c = fixture.cases[0];
  const x = Float32Array.from(c.data);
  const before = native().info().threads;
  try {
    native().setThreads(1);
    const a = await spectral(x, c.n, c.d, c.k, { dims: 2, seed: 3 });
    native().setThreads(2);
    const b = await spectral(x, c.n, c.d, c.k, { dims: 2, seed: 3 });
    assert.deepEqual(b.labels, a.labels);
    assert.deepEqual(b.eigenvalues, a.eigenvalues);
  } finally {
    native().setThreads(before);
  }
});

test("spectral: bad input is refused with one clear error", async () => {
  const x = new Float32Array(12);
  await assert.rejects(() => spectral(x, 4, 3, 5), (e: Error) => e instanceof RangeError && /spectral: k = 5 is larger than the number of rows n = 4/.test(e.message));
  const nan = Float32Array.from([0, 1, 2, 3, NaN, 5]);
  await assert.rejects(
    () => spectral(nan, 3, 2, 2),
    (e: Error & { code?: string }) => e instanceof RangeError && e.code === "SLN_NONFINITE" && /spectral: row 2 holds NaN or Inf/.test(e.message),
  );
  await assert.rejects(() => spectral(new Float32Array(2), 1, 2, 1), /spectral: needs at least 2 rows/);
  await assert.rejects(() => spectral(x, 4, 3, 2, { neighbors: 0 }), /spectral: options.neighbors must be an integer >= 1/);
  await assert.rejects(() => spectral(x, 4, 3, 2, { dims: -1 }), /spectral: options.dims must be an integer >= 0/);
});

test("spectral: degenerate data do not fail: fewer rows than projection directions, identical rows, k = n", async () => {
  const rng = new Prng(9);
  const n = 60,
    d = 3072;
  const x = Float32Array.from({ length: n * d }, () => rng.random());
  const r = await spectral(x, n, d, 10); // dims 64 > n: the projection keeps at most n directions
  assert.equal(r.labels.length, n);
  assert.ok(r.dims <= n && r.dims >= 1, `dims ${r.dims}`);
  const same = new Float32Array(30 * 8).fill(0.5); // every row the same: no variance, every similarity ties
  const s = await spectral(same, 30, 8, 3, { dims: 4 });
  assert.equal(s.labels.length, 30);
  const zeros = await spectral(new Float32Array(20 * 5), 20, 5, 2, { dims: 2 });
  assert.equal(zeros.labels.length, 20);
  const all = await spectral(x.subarray(0, 12 * d), 12, d, 12, { dims: 0 });
  assert.equal(new Set(all.labels).size, 12);
});
