// Clustering metrics against scikit-learn / scipy (test/fixtures/metrics.json,
// made by scripts/make-metrics-fixture.py), hand-checked small cases, edge
// cases and bad inputs.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { native, packageRoot } from "../lib/binding";
import {
  ami,
  ari,
  clusterAccuracy,
  clusteringScores,
  expectedMutualInfo,
  linearSumAssignment,
  nmi,
} from "../lib/metrics";
import { Rng } from "./helpers/opcheck";

interface Case {
  name: string;
  pred: number[];
  truth: number[];
  nmi: number;
  ami: number;
  ari: number;
  emi?: number;
  rowSums?: number[];
  colSums?: number[];
  correct?: number;
  purityCorrect?: number;
  accuracy?: number;
  purity?: number;
}
interface Assignment {
  rows: number;
  cols: number;
  maximize: boolean;
  cost: number[];
  optimum: number;
}
const fixture = JSON.parse(fs.readFileSync(path.join(packageRoot(), "test/fixtures/metrics.json"), "utf8")) as {
  cases: Case[];
  assignments: Assignment[];
};

const EPS = 2.220446049250313e-16;

// lgamma(N + 1) by Stirling; only used to size tolerances.
function logFactorial(n: number): number {
  return n < 2 ? 0 : n * Math.log(n) - n + 0.5 * Math.log(2 * Math.PI * n) + 1 / (12 * n);
}

// Tolerances.
// NMI: MI and the entropies are sums of at most N <= 2000 terms each below
// log N in size; numpy sums pairwise (error <= eps * log2(N) * sum|terms|,
// ~1.2e-14 here) and we sum compensated (error ~ eps), so 5e-14 absolute.
const NMI_TOL = 5e-14;
// ARI: both compute the pair counts exactly in integers; Python then divides
// two big ints correctly rounded, we round numerator and denominator to double
// and divide: at most 2 ulp apart, so 4 eps relative.
const ariTol = (v: number) => 4 * EPS * Math.max(1, Math.abs(v));
// EMI: every term is exp(gln), gln a sum of 9 lgamma values of size up to
// lgamma(N + 1) ~ N ln N, so gln carries an absolute (hence each term a
// relative) rounding error up to ~9 eps lgamma(N + 1); scipy's gammaln and
// glibc's lgamma round differently, so that is the bound between the two
// (2.6e-11 at N = 2000; observed up to 9e-13).
const emiRelTol = (n: number) => 9 * EPS * Math.max(1, logFactorial(n)) + 1e-14;
// AMI = (MI - EMI) / (mean(H) - EMI): d AMI / d EMI = (AMI - 1) / (mean(H) - EMI),
// so the EMI tolerance propagates with that factor, plus the NMI-like error of MI/H.
function amiTol(c: Case, s: { ami: number; expectedMutualInfo: number; entropyA: number; entropyB: number }): number {
  const den = Math.abs(0.5 * (s.entropyA + s.entropyB) - s.expectedMutualInfo);
  const dEmi = Math.abs(s.expectedMutualInfo) * emiRelTol(c.pred.length);
  return NMI_TOL + (den > 0 ? (dEmi * Math.abs(s.ami - 1)) / den : 0);
}

test("fixture: NMI, AMI, ARI equal scikit-learn's", async () => {
  for (const c of fixture.cases) {
    const s = await clusteringScores(c.pred, c.truth);
    const where = `case '${c.name}' (N=${c.pred.length})`;
    assert.ok(Math.abs(s.nmi - c.nmi) <= NMI_TOL, `${where}: nmi ${s.nmi} vs sklearn ${c.nmi}`);
    assert.ok(Math.abs(s.ari - c.ari) <= ariTol(c.ari), `${where}: ari ${s.ari} vs sklearn ${c.ari}`);
    assert.ok(Math.abs(s.ami - c.ami) <= amiTol(c, s), `${where}: ami ${s.ami} vs sklearn ${c.ami} (tol ${amiTol(c, s)})`);
    // the single-metric entry points give the same numbers
    assert.equal(await nmi(c.pred, c.truth), s.nmi, where);
    assert.equal(await ami(c.pred, c.truth), s.ami, where);
    assert.equal(await ari(c.pred, c.truth), s.ari, where);
    // symmetric, as sklearn's
    assert.ok(Math.abs((await nmi(c.truth, c.pred)) - s.nmi) <= NMI_TOL, `${where}: nmi not symmetric`);
    assert.equal(await ari(c.truth, c.pred), s.ari, `${where}: ari not symmetric`);
    if (c.emi !== undefined) {
      const tol = emiRelTol(c.pred.length) * Math.abs(c.emi) + 1e-300;
      assert.ok(Math.abs(s.expectedMutualInfo - c.emi) <= tol, `${where}: emi ${s.expectedMutualInfo} vs sklearn ${c.emi}`);
    }
  }
});

test("fixture: expected MI, fast and naive (sklearn's loop), from the marginals", async () => {
  for (const c of fixture.cases) {
    if (c.emi === undefined) continue;
    const tol = emiRelTol(c.pred.length) * Math.abs(c.emi) + 1e-300;
    for (const method of ["fast", "naive"] as const) {
      const e = await expectedMutualInfo(c.rowSums!, c.colSums!, method);
      assert.ok(Math.abs(e - c.emi) <= tol, `case '${c.name}' ${method}: emi ${e} vs sklearn ${c.emi}`);
    }
  }
});

test("fixture: Hungarian accuracy and purity equal scipy's linear_sum_assignment / majority vote", async () => {
  for (const c of fixture.cases) {
    if (c.correct === undefined) continue;
    const r = await clusterAccuracy(c.pred, c.truth);
    const where = `case '${c.name}'`;
    // integer counts: exact
    assert.equal(r.correct, c.correct, `${where}: matched samples`);
    assert.equal(r.purityCorrect, c.purityCorrect, `${where}: majority samples`);
    assert.equal(r.accuracy, c.accuracy, where);
    assert.equal(r.purity, c.purity, where);
    // the mapping is one-to-one and achieves the reported count
    const classes = new Set(r.mapping.values());
    assert.equal(classes.size, r.mapping.size, `${where}: mapping not one-to-one`);
    assert.equal(r.mapping.size, Math.min(r.numClusters, r.numClasses), where);
    let hit = 0;
    let maj = 0;
    for (let i = 0; i < c.pred.length; i++) {
      if (r.mapping.get(c.pred[i]) === c.truth[i]) hit++;
      if (r.majority.get(c.pred[i]) === c.truth[i]) maj++;
    }
    assert.equal(hit, r.correct, `${where}: mapping does not give the count`);
    assert.equal(maj, r.purityCorrect, `${where}: majority does not give the count`);
  }
});

test("fixture: linearSumAssignment optimum equals scipy's on real costs", async () => {
  for (const a of fixture.assignments) {
    const m = await linearSumAssignment(a.cost, a.rows, a.cols, a.maximize);
    assert.equal(m.length, a.rows);
    const used = new Set<number>();
    let total = 0;
    for (let r = 0; r < a.rows; r++) {
      if (m[r] < 0) continue;
      assert.ok(!used.has(m[r]), "column used twice");
      used.add(m[r]);
      total += a.cost[r * a.cols + m[r]];
    }
    assert.equal(used.size, Math.min(a.rows, a.cols));
    // Costs have 6 decimals and |c| < 60; sums of <= 60 of them in another order
    // differ by rounding only (< 60 * 60 * eps ~ 1e-12); a different matching
    // would differ by >= 1e-6.
    assert.ok(Math.abs(total - a.optimum) <= 1e-9, `${a.rows}x${a.cols}: ${total} vs scipy ${a.optimum}`);
  }
});

function bruteForceBest(w: number[][], maximize: boolean): number {
  // best matching of min(R, C) pairs by enumerating injective maps of the smaller side
  const R = w.length;
  const C = w[0].length;
  const t = R <= C ? w : w[0].map((_, j) => w.map((row) => row[j]));
  const rows = Math.min(R, C);
  const cols = Math.max(R, C);
  let best = maximize ? -Infinity : Infinity;
  const used = new Array(cols).fill(false);
  const go = (r: number, acc: number) => {
    if (r === rows) {
      best = maximize ? Math.max(best, acc) : Math.min(best, acc);
      return;
    }
    for (let j = 0; j < cols; j++) {
      if (used[j]) continue;
      used[j] = true;
      go(r + 1, acc + t[r][j]);
      used[j] = false;
    }
  };
  go(0, 0);
  return best;
}

test("linearSumAssignment equals brute force on small integer matrices with many ties", async () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 60; trial++) {
    const R = rng.int(1, 7);
    const C = rng.int(1, 7);
    const w: number[][] = [];
    for (let r = 0; r < R; r++) w.push(Array.from({ length: C }, () => rng.int(0, 3)));
    for (const maximize of [false, true]) {
      const m = await linearSumAssignment(w.flat(), R, C, maximize);
      let total = 0;
      const used = new Set<number>();
      for (let r = 0; r < R; r++) {
        if (m[r] < 0) continue;
        assert.ok(m[r] < C && !used.has(m[r]));
        used.add(m[r]);
        total += w[r][m[r]];
      }
      assert.equal(used.size, Math.min(R, C), `${R}x${C}: not a full matching`);
      assert.equal(total, bruteForceBest(w, maximize), `${R}x${C} maximize=${maximize}: ${JSON.stringify(w)}`);
    }
  }
});

test("expected MI: fast equals sklearn's loop on random marginals up to N = 30000", async () => {
  const rng = new Rng(11);
  for (let trial = 0; trial < 8; trial++) {
    const n = [50, 400, 3000, 30000][trial % 4];
    const split = (k: number): number[] => {
      // k positive parts summing to n, sizes varied (some repeated, some unique)
      const cuts = new Set<number>();
      while (cuts.size < k - 1) cuts.add(rng.int(1, n - 1));
      const s = [0, ...[...cuts].sort((x, y) => x - y), n];
      return s.slice(1).map((v, i) => v - s[i]);
    };
    const a = split(rng.int(2, 40));
    const b = split(rng.int(2, 30));
    const fast = await expectedMutualInfo(a, b, "fast");
    const naive = await expectedMutualInfo(a, b, "naive");
    // Same lgamma terms in both (fast skips only terms whose exp underflows to 0);
    // they differ in summation order (naive: one running sum over up to ~1e6
    // terms of both signs) and in how the three logs of term2 are grouped.
    // Observed up to 1.5e-14 relative at N = 30000; a missing or wrong term would
    // be off by far more than the 1e-12 allowed.
    assert.ok(Math.abs(fast - naive) <= 1e-12 * Math.abs(naive), `N=${n}: fast ${fast} vs naive ${naive}`);
    assert.ok(naive > 0);
  }
});

test("hand-checked small cases", async () => {
  // a = b: NMI = AMI = ARI = 1, whatever the label ids.
  let s = await clusteringScores([0, 0, 2, 2], [10, 10, 30, 30]);
  assert.equal(s.nmi, 1);
  assert.equal(s.ami, 1);
  assert.equal(s.ari, 1);
  // Independent 2x2 (every cell 1): MI = 0. EMI for marginals (2,2),(2,2), N = 4:
  // nij = 1 has weight (1/4) log(4*1/4) = 0, nij = 2 has (2/4) log 2 with
  // probability 1/6, four cells: EMI = ln2 / 3; AMI = (0 - ln2/3)/(ln2 - ln2/3) = -1/2.
  // Pairs (ordered): tp = 0, fp = fn = 4, tn = 4: ARI = 2(0 - 16)/(4*8 + 4*8) = -1/2.
  s = await clusteringScores([0, 0, 1, 1], [0, 1, 0, 1]);
  assert.equal(s.nmi, 0);
  assert.ok(Math.abs(s.expectedMutualInfo - Math.LN2 / 3) <= 4 * EPS);
  assert.ok(Math.abs(s.ami + 0.5) <= 8 * EPS, String(s.ami));
  assert.equal(s.ari, -0.5);
  // a refines b: H(a) = 1.5 ln2, H(b) = MI = ln2, NMI = ln2 / 1.25 ln2 = 0.8;
  // tp = 2, fn = 0, fp = 2, tn = 8: ARI = 2*16/(2*8 + 4*10) = 4/7.
  s = await clusteringScores([0, 0, 1, 2], [0, 0, 1, 1]);
  assert.ok(Math.abs(s.nmi - 0.8) <= 2 * EPS);
  assert.ok(Math.abs(s.entropyA - 1.5 * Math.LN2) <= 2 * EPS);
  assert.ok(Math.abs(s.ari - 4 / 7) <= 2 * EPS);
  // accuracy: 5->1 and 7->2 match 4 of 5; 9 is unmatched (wrong) but its majority is 2.
  const r = await clusterAccuracy([5, 5, 7, 7, 9], [1, 1, 2, 2, 2]);
  assert.equal(r.accuracy, 0.8);
  assert.equal(r.purity, 1);
  assert.deepEqual([...r.mapping].sort(), [[5, 1], [7, 2]]);
  assert.deepEqual([...r.majority].sort(), [[5, 1], [7, 2], [9, 2]]);
  assert.equal(r.numClusters, 3);
  assert.equal(r.numClasses, 2);
});

test("edge cases: one cluster, all singletons, fewer clusters than classes, empty, unused ids", async () => {
  const truth = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2];
  // One cluster: no information. NMI = AMI = ARI = 0; accuracy = purity = largest class.
  let s = await clusteringScores(new Array(10).fill(4), truth);
  assert.deepEqual([s.nmi, s.ami, s.ari], [0, 0, 0]);
  let r = await clusterAccuracy(new Array(10).fill(4), truth);
  assert.equal(r.accuracy, 0.5);
  assert.equal(r.purity, 0.5);
  assert.deepEqual([...r.mapping], [[4, 2]]);
  // All singletons: MI = H(truth), and EMI = H(truth) too (every permutation gives
  // the same table), so AMI = 0 up to rounding; no pair is together in a, so
  // tp = fn = 0 and ARI = 2(0 - 0)/(...) = 0.
  const single = truth.map((_, i) => i);
  s = await clusteringScores(single, truth);
  assert.ok(Math.abs(s.mutualInfo - s.entropyB) <= 4 * EPS);
  assert.ok(Math.abs(s.nmi - (2 * s.entropyB) / (s.entropyB + Math.log(10))) <= 4 * EPS);
  assert.ok(Math.abs(s.ami) <= 1e-14, String(s.ami));
  assert.equal(s.ari, 0);
  r = await clusterAccuracy(single, truth);
  assert.equal(r.purity, 1);
  assert.equal(r.accuracy, 0.3); // one singleton per class
  // Both labelings all singletons: a perfect match.
  s = await clusteringScores(single, single.slice().reverse());
  assert.deepEqual([s.nmi, s.ami, s.ari], [1, 1, 1]);
  // Fewer clusters than classes: only two classes can be matched.
  r = await clusterAccuracy([0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 2, 2]);
  assert.equal(r.correct, 4);
  assert.equal(r.mapping.size, 2);
  assert.equal(r.mapping.get(1), 2);
  // One sample, and one label on both sides: sklearn's "perfect match" convention.
  s = await clusteringScores([9], [0]);
  assert.deepEqual([s.nmi, s.ami, s.ari], [1, 1, 1]);
  // Empty: sklearn returns 1.0 for all three; accuracy is undefined and rejected.
  s = await clusteringScores([], []);
  assert.deepEqual([s.nmi, s.ami, s.ari], [1, 1, 1]);
  await assert.rejects(clusterAccuracy([], []), RangeError);
  // Unused (empty) class and cluster ids change nothing: compare with compacted ids.
  const p = Int32Array.from([0, 0, 7, 7, 7, 3]);
  const t = Int32Array.from([100, 100, 4, 4, 9, 9]);
  const pc = Int32Array.from([0, 0, 2, 2, 2, 1]);
  const tc = Int32Array.from([2, 2, 0, 0, 1, 1]);
  const a1 = await clusteringScores(p, t);
  const a2 = await clusteringScores(pc, tc);
  assert.deepEqual([a1.nmi, a1.ami, a1.ari], [a2.nmi, a2.ami, a2.ari]);
  assert.equal(a1.labelsA, 3);
  assert.equal(a1.labelsB, 3);
  // Huge label values take the sort path of the compaction; same answer.
  const big = Int32Array.from(p, (v) => 2_000_000_000 - v);
  const a3 = await clusteringScores(big, t);
  assert.deepEqual([a3.nmi, a3.ami, a3.ari], [a2.nmi, a2.ami, a2.ari]);
});

test("a planted permutation of 500 classes is recovered exactly", async () => {
  const rng = new Rng(3);
  const K = 500;
  const perm = Array.from({ length: K }, (_, i) => i);
  for (let i = K - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const truth = Int32Array.from({ length: 5000 }, (_, i) => i % K);
  const pred = Int32Array.from(truth, (c) => perm[c] * 3 + 1); // gaps in cluster ids
  const r = await clusterAccuracy(pred, truth);
  assert.equal(r.accuracy, 1);
  assert.equal(r.purity, 1);
  for (let c = 0; c < K; c++) assert.equal(r.mapping.get(perm[c] * 3 + 1), c);
  assert.equal(await nmi(pred, truth), 1);
  assert.equal(await ari(pred, truth), 1);
});

test("bad inputs: a clear TypeError or RangeError", async () => {
  await assert.rejects(nmi([0, 1, 2], [0, 1]), { name: "RangeError", message: /same length, got 3 .* and 2/ });
  await assert.rejects(ami([0, -1], [0, 1]), (e: Error & { code?: string }) => {
    assert.ok(e instanceof RangeError);
    assert.equal(e.code, "SLN_BAD_LABEL");
    assert.match(e.message, /non-negative.*got -1 at index 1/);
    return true;
  });
  await assert.rejects(clusterAccuracy([0, 1], [0, -5]), { name: "RangeError", message: /truth.*got -5 at index 1/ });
  await assert.rejects(ari([0, 1.5], [0, 1]), { name: "TypeError", message: /integer labels, got 1.5 at index 1/ });
  await assert.rejects(ari([0, NaN], [0, 1]), TypeError);
  await assert.rejects(ari([0, 2 ** 31], [0, 1]), TypeError);
  await assert.rejects(nmi(null as unknown as number[], [0]), TypeError);
  await assert.rejects(nmi("01" as unknown as number[], [0, 1]), TypeError);
  await assert.rejects(nmi(["0", "1"] as unknown as number[], [0, 1]), TypeError);
  // the native layer checks on its own as well
  const nb = native();
  assert.throws(() => nb.metricsScores(new Float64Array(2) as unknown as Int32Array, new Int32Array(2), 7), {
    name: "TypeError",
    message: /a must be an Int32Array/,
  });
  assert.throws(() => nb.metricsClusterAccuracy(new Int32Array(2), new Int32Array(3)), RangeError);
  // 6000 x 6000 cells is over the dense matching limit (2^25): refused before allocating
  const many = Int32Array.from({ length: 6000 }, (_, i) => i);
  await assert.rejects(clusterAccuracy(many, many.slice().reverse()), {
    name: "RangeError",
    message: /6000 clusters x 6000 classes = 36000000 cells exceeds the dense matching limit/,
  });
  await assert.rejects(linearSumAssignment([1, 2, 3], 2, 2), { name: "RangeError", message: /expected rows \* cols/ });
  await assert.rejects(linearSumAssignment([1, NaN, 3, 4], 2, 2), { name: "RangeError", message: /non-finite/ });
  await assert.rejects(expectedMutualInfo([1, 2], [2, 2]), { name: "RangeError", message: /same total/ });
  await assert.rejects(expectedMutualInfo([0, 3], [1, 2]), RangeError);
  await assert.rejects(expectedMutualInfo([1, 2], [1, 2], "slow" as "fast"), RangeError);
});

test("the native metrics return Promises (work runs on the libuv pool)", async () => {
  const nb = native();
  const a = Int32Array.from({ length: 1000 }, (_, i) => i % 7);
  const b = Int32Array.from({ length: 1000 }, (_, i) => i % 5);
  const calls = [
    nb.metricsScores(a, b, 7),
    nb.metricsClusterAccuracy(a, b),
    nb.metricsExpectedMI(new Float64Array([2, 2]), new Float64Array([1, 3]), "fast"),
    nb.metricsLinearSumAssignment(new Float64Array([1, 2, 3, 4]), 2, 2, false),
  ];
  for (const p of calls) assert.ok(p instanceof Promise);
  await Promise.all(calls);
});
