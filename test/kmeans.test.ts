// k-means against scikit-learn (test/fixtures/kmeans.json, made by
// scripts/make-kmeans-fixture.py), a float64 recomputation of its own result,
// determinism across thread counts, and bad input.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { native, packageRoot } from "../lib/binding";
import { kmeans } from "../lib/kmeans";
import { nmi } from "../lib/metrics";

interface Case {
  name: string;
  n: number;
  d: number;
  k: number;
  data: number[];
  truth: number[];
  sklearnInertia: number;
  sklearnNmi: number;
}
const fixture = JSON.parse(fs.readFileSync(path.join(packageRoot(), "test", "fixtures", "kmeans.json"), "utf8")) as { cases: Case[] };

/** Float64 inertia of labels/centroids and the float64 means of each cluster's rows. */
function recompute(x: Float32Array, n: number, d: number, k: number, labels: Int32Array, c: Float32Array) {
  let inertia = 0;
  const sum = new Float64Array(k * d),
    cnt = new Float64Array(k);
  let nearestViolations = 0;
  for (let i = 0; i < n; i++) {
    const dist = (m: number) => {
      let s = 0;
      for (let j = 0; j < d; j++) {
        const t = x[i * d + j] - c[m * d + j];
        s += t * t;
      }
      return s;
    };
    const own = dist(labels[i]);
    inertia += own;
    for (let m = 0; m < k; m++) if (dist(m) < own * (1 - 1e-9)) nearestViolations++;
    cnt[labels[i]]++;
    for (let j = 0; j < d; j++) sum[labels[i] * d + j] += x[i * d + j];
  }
  return { inertia, sum, cnt, nearestViolations };
}

for (const c of fixture.cases) {
  test(`kmeans matches scikit-learn's inertia and NMI: ${c.name} (n ${c.n}, d ${c.d}, k ${c.k})`, async () => {
    const x = Float32Array.from(c.data);
    const r = await kmeans(x, c.n, c.d, c.k, { restarts: 10, seed: 1 });
    assert.equal(r.labels.length, c.n);
    assert.equal(r.centroids.length, c.k * c.d);
    assert.equal(r.inertias.length, 10);
    assert.equal(r.inertia, Math.min(...r.inertias));
    // Both keep the best of 10 k-means++ runs; a different local optimum would
    // show as a higher inertia. 1e-5 relative: float32 centres (ours) against
    // float64 ones (sklearn accumulates in float32 data's own precision too).
    assert.ok(r.inertia <= c.sklearnInertia * (1 + 1e-5), `inertia ${r.inertia} > sklearn ${c.sklearnInertia}`);
    const q = await nmi(r.labels, Int32Array.from(c.truth));
    // the same partition up to a permutation: the same NMI up to float64 rounding
    assert.ok(Math.abs(q - c.sklearnNmi) < 1e-9, `NMI ${q} vs sklearn ${c.sklearnNmi}`);
    // the result is a Lloyd fixed point: every row at its nearest centre, each
    // centre the mean of its rows (float32 rounding of a float64 mean), the
    // inertia the float64 sum of squared distances
    const ref = recompute(x, c.n, c.d, c.k, r.labels, r.centroids);
    assert.equal(ref.nearestViolations, 0);
    // 1e-9 relative: both sum float64 squares of the same float32 differences, only the order differs
    assert.ok(Math.abs(ref.inertia - r.inertia) <= 1e-9 * ref.inertia, `inertia ${r.inertia} vs recomputed ${ref.inertia}`);
    for (let m = 0; m < c.k; m++) {
      assert.ok(ref.cnt[m] > 0, `cluster ${m} is empty`);
      for (let j = 0; j < c.d; j++) assert.equal(r.centroids[m * c.d + j], Math.fround(ref.sum[m * c.d + j] / ref.cnt[m]));
    }
  });
}

test("kmeans: same seed, same result for 1 and 2 threads; another seed may differ", async () => {
  const c = fixture.cases[2];
  const x = Float32Array.from(c.data);
  const before = native().info().threads;
  try {
    native().setThreads(1);
    const a = await kmeans(x, c.n, c.d, c.k, { restarts: 2, seed: 7 });
    native().setThreads(2);
    const b = await kmeans(x, c.n, c.d, c.k, { restarts: 2, seed: 7 });
    assert.deepEqual(b.labels, a.labels);
    assert.deepEqual(b.centroids, a.centroids);
    assert.equal(b.inertia, a.inertia);
  } finally {
    native().setThreads(before);
  }
});

test("kmeans: k = n puts every row in its own cluster (inertia 0); k = 1 is the mean", async () => {
  const x = Float32Array.from([0, 0, 1, 0, 0, 2, 5, 5]);
  const r = await kmeans(x, 4, 2, 4);
  assert.equal(new Set(r.labels).size, 4);
  assert.equal(r.inertia, 0);
  const one = await kmeans(x, 4, 2, 1);
  assert.deepEqual(Array.from(one.centroids), [1.5, 1.75]);
});

test("kmeans: bad input is refused with one clear error", async () => {
  const x = new Float32Array(12);
  await assert.rejects(() => kmeans(x, 4, 3, 5), (e: Error) => e instanceof RangeError && /k = 5 is larger than the number of rows n = 4/.test(e.message));
  const nan = Float32Array.from([0, 1, 2, 3, NaN, 5]);
  await assert.rejects(
    () => kmeans(nan, 3, 2, 2),
    (e: Error & { code?: string }) => e instanceof RangeError && e.code === "SLN_NONFINITE" && /row 2 holds NaN or Inf/.test(e.message),
  );
  await assert.rejects(() => kmeans(x, 5, 3, 2), /data has 12 elements, expected n x d = 5 x 3/);
  await assert.rejects(() => kmeans(new Float64Array(12) as unknown as Float32Array, 4, 3, 2), /data must be a Float32Array/);
  await assert.rejects(() => kmeans(x, 4, 3, 0), /k must be an integer >= 1/);
  await assert.rejects(() => kmeans(x, 4, 3, 2, { restarts: 0 }), /restarts must be an integer >= 1/);
});
