// npm run bench -- metrics [--n 1280000] [--clusters 3000] [--classes 1000] [--reps 3] [--no-sklearn]
//
// Times ami() and clusterAccuracy() on ImageNet-sized labelings (N = 1.28M,
// K = 3000 clusters, 1000 classes: imbalanced classes, each spread over a few
// home clusters, 30% of samples relabelled at random), and scikit-learn /
// scipy on the same labels in the same run when /usr/bin/python3 has them.
// sklearn's expected_mutual_information loops over every (i, j, nij); when its
// predicted time (iteration count x its measured cost per iteration on a
// smaller problem) exceeds 2 minutes, it is timed on that smaller problem only,
// with ours on the same, and the full-size time is reported as an estimate.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ami, clusterAccuracy, clusteringScores } from "../lib/metrics";
import { native } from "../lib/binding";

const PY = "/usr/bin/python3";
const SKLEARN_BUDGET_S = 120;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Structured labels: class sizes vary ~ +-30%, class c lives in clusters c, c + C, c + 2C...
 * (K / C home clusters), and a fraction `noise` of samples goes to a random cluster. */
export function makeLabels(n: number, K: number, C: number, seed: number, noise = 0.3): { pred: Int32Array; truth: Int32Array } {
  const r = rng(seed);
  const w = Array.from({ length: C }, () => 0.7 + 0.6 * r());
  const cum: number[] = [];
  let acc = 0;
  for (const v of w) cum.push((acc += v));
  const truth = new Int32Array(n);
  const pred = new Int32Array(n);
  const homes = Math.max(1, Math.floor(K / C));
  for (let i = 0; i < n; i++) {
    const u = r() * acc;
    let lo = 0;
    let hi = C - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cum[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    truth[i] = lo;
    pred[i] = r() < noise ? Math.floor(r() * K) : Math.min(K - 1, (lo % K) + C * Math.floor(r() * homes));
  }
  return { pred, truth };
}

async function timeIt<T>(f: () => Promise<T>, reps: number): Promise<{ s: number; v: T }> {
  let best = Infinity;
  let v!: T;
  for (let k = 0; k < reps; k++) {
    const t = process.hrtime.bigint();
    v = await f();
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
  }
  return { s: best, v };
}

/** sklearn's inner-loop count: sum over cells of the nij range it visits. */
function sklearnIterations(pred: Int32Array, truth: Int32Array): number {
  const n = pred.length;
  const count = (x: Int32Array) => {
    const m = new Map<number, number>();
    for (const v of x) m.set(v, (m.get(v) ?? 0) + 1);
    return [...m.values()];
  };
  const a = count(truth);
  const b = count(pred);
  let it = 0;
  for (const ai of a) for (const bj of b) it += Math.max(0, Math.min(ai, bj) - Math.max(1, ai + bj - n) + 1);
  return it;
}

function hasSklearn(): boolean {
  try {
    execFileSync(PY, ["-c", "import sklearn, scipy"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const PY_SCRIPT = `
import sys, time, json
import numpy as np
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from scipy.optimize import linear_sum_assignment
pred = np.fromfile(sys.argv[1], dtype=np.int32)
truth = np.fromfile(sys.argv[2], dtype=np.int32)
out = {}
if sys.argv[3] == "1":
    t = time.perf_counter(); out["ami"] = float(adjusted_mutual_info_score(truth, pred)); out["ami_s"] = time.perf_counter() - t
t = time.perf_counter()
c = contingency_matrix(pred, truth)
r, q = linear_sum_assignment(c, maximize=True)
out["correct"] = int(c[r, q].sum()); out["acc_s"] = time.perf_counter() - t
print(json.dumps(out))
`;

interface SkResult {
  ami?: number;
  ami_s?: number;
  correct: number;
  acc_s: number;
}

/** sklearn's AMI (when withAmi) and scipy's assignment on the contingency table, timed in Python. */
function runSklearn(pred: Int32Array, truth: Int32Array, withAmi: boolean): SkResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sln-bench-metrics-"));
  try {
    const pf = path.join(dir, "pred.i32");
    const tf = path.join(dir, "truth.i32");
    fs.writeFileSync(pf, Buffer.from(pred.buffer, pred.byteOffset, pred.byteLength));
    fs.writeFileSync(tf, Buffer.from(truth.buffer, truth.byteOffset, truth.byteLength));
    const out = execFileSync(PY, ["-c", PY_SCRIPT, pf, tf, withAmi ? "1" : "0"], { encoding: "utf8", maxBuffer: 1 << 20 });
    return JSON.parse(out.trim().split("\n").pop()!);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function arg(args: string[], name: string, dflt: number): number {
  const k = args.indexOf(name);
  if (k < 0) return dflt;
  const v = Number(args[k + 1]);
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got '${args[k + 1]}'`);
  return v;
}

export async function main(args: string[]): Promise<void> {
  const n = arg(args, "--n", 1_280_000);
  const K = arg(args, "--clusters", 3000);
  const C = arg(args, "--classes", 1000);
  const reps = arg(args, "--reps", 3);
  const { pred, truth } = makeLabels(n, K, C, 1);
  console.log(`metrics bench: N=${n}, ${K} clusters, ${C} classes; ${native().info().cpu}; best of ${reps}`);

  const a = await timeIt(() => ami(pred, truth), reps);
  const acc = await timeIt(() => clusterAccuracy(pred, truth), reps);
  const all = await clusteringScores(pred, truth);
  console.log(`  ours  ami            ${a.s.toFixed(3)} s   ami=${a.v.toFixed(6)} (nmi=${all.nmi.toFixed(6)}, ari=${all.ari.toFixed(6)})`);
  console.log(`  ours  clusterAccuracy ${acc.s.toFixed(3)} s   accuracy=${acc.v.accuracy.toFixed(6)}, purity=${acc.v.purity.toFixed(6)}`);

  if (args.includes("--no-sklearn")) return;
  if (!hasSklearn()) {
    console.log(`  sklearn: skipped (${PY} has no sklearn/scipy; Debian: apt-get install python3-sklearn)`);
    return;
  }
  // Measure sklearn's cost per EMI iteration on a 10x smaller problem of the same shape.
  const f = 10;
  const small = makeLabels(Math.round(n / f), Math.max(2, Math.round(K / f)), Math.max(2, Math.round(C / f)), 2);
  const itSmall = sklearnIterations(small.pred, small.truth);
  const itFull = sklearnIterations(pred, truth);
  const skSmall = runSklearn(small.pred, small.truth, true);
  const oursSmall = await timeIt(() => ami(small.pred, small.truth), reps);
  const oursSmallAcc = await timeIt(() => clusterAccuracy(small.pred, small.truth), reps);
  const predicted = (skSmall.ami_s! * itFull) / itSmall;
  const sk = small.pred.length;
  console.log(
    `  sklearn at 1/${f} size (N=${sk}, ${Math.round(K / f)}x${Math.round(C / f)}): ami ${skSmall.ami_s!.toFixed(3)} s ` +
      `(${itSmall.toExponential(2)} EMI iterations, ${((skSmall.ami_s! / itSmall) * 1e9).toFixed(1)} ns each) vs ours ` +
      `${oursSmall.s.toFixed(4)} s: ${(skSmall.ami_s! / oursSmall.s).toFixed(1)}x; |ami diff| ${Math.abs(skSmall.ami! - oursSmall.v).toExponential(2)}`,
  );
  console.log(
    `      scipy linear_sum_assignment (incl. contingency) ${skSmall.acc_s.toFixed(4)} s vs ours ${oursSmallAcc.s.toFixed(4)} s: ` +
      `${(skSmall.acc_s / oursSmallAcc.s).toFixed(1)}x; matched ${skSmall.correct} vs ours ${oursSmallAcc.v.correct}`,
  );
  const fullAmi = predicted <= SKLEARN_BUDGET_S;
  if (!fullAmi) {
    console.log(
      `  sklearn full size: ami not run: predicted ${predicted.toFixed(0)} s (${itFull.toExponential(2)} EMI iterations) > ` +
        `${SKLEARN_BUDGET_S} s budget; estimated ratio ~${(predicted / a.s).toFixed(0)}x`,
    );
  }
  const full = runSklearn(pred, truth, fullAmi);
  if (fullAmi) {
    console.log(
      `  sklearn full size: ami ${full.ami_s!.toFixed(3)} s vs ours ${a.s.toFixed(3)} s: ${(full.ami_s! / a.s).toFixed(1)}x ` +
        `(predicted ${predicted.toFixed(1)} s); |ami diff| ${Math.abs(full.ami! - a.v).toExponential(2)}`,
    );
  }
  console.log(
    `  scipy full size: linear_sum_assignment (incl. contingency) ${full.acc_s.toFixed(3)} s vs ours ${acc.s.toFixed(3)} s: ` +
      `${(full.acc_s / acc.s).toFixed(1)}x; matched ${full.correct} vs ours ${acc.v.correct}`,
  );
}
