// Run under mpirun by test/distributed.test.ts: every rank builds the same logits,
// solves them once alone (all rows, one process) and once row-sharded over the
// ranks, and prints one line `SLN_DIST_SINKHORN <json>` comparing its rows.
import { Prng } from "../../lib/prng";
import { sinkhorn, sinkhornFromFeatures, SinkhornOptions, SinkhornResult } from "../../lib/sinkhorn";
import { initMpi, mpiNative } from "../../lib/distributed/mpi";
import { myRows, shardedSinkhorn, shardedSinkhornFromFeatures, gatherLabels } from "../../lib/distributed/sinkhorn";

function sameBits(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function normals(n: number, seed: number, scale: number): Float32Array {
  const p = new Prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * (p.random() + p.random() + p.random() - 1.5) * 2;
  return out;
}

function compare(full: SinkhornResult, part: SinkhornResult, b: number, e: number) {
  return {
    labels: sameBits(full.labels.subarray(b, e), part.labels),
    logC: sameBits(full.scaling.logC.subarray(b, e), part.scaling.logC),
    logR: sameBits(full.scaling.logR, part.scaling.logR),
    counts: sameBits(full.counts, part.counts),
    iterations: [full.iterations, part.iterations],
    error: [full.error, part.error],
    cost: [full.cost, part.cost],
    labelsDiffer: full.labels.subarray(b, e).reduce((s, v, i) => s + (v === part.labels[i] ? 0 : 1), 0),
    rows: e - b,
  };
}

async function main() {
  const w = initMpi();
  const N = Number(process.env.SLN_N ?? 2000), K = Number(process.env.SLN_K ?? 24), D = 16;
  const z = normals(N * K, 7, 1.5);
  const [b, e] = myRows(N);
  const base: SinkhornOptions = { lambda: 10, tol: 1e-9, maxIters: 400, threads: 1 };
  const out: Record<string, unknown> = { rank: w.rank, size: w.size, rows: [b, e] };
  const cases: [string, SinkhornOptions & { exact?: boolean }][] = [
    ["f64", { ...base }],
    ["f32", { ...base, dtype: "f32" }],
    ["maxIters", { ...base, maxIters: 25 }],
    ["inexact", { ...base, exact: false }],
  ];
  for (const [name, o] of cases) {
    const { exact, ...so } = o;
    const full = await sinkhorn(z, N, K, so);
    const part = await shardedSinkhorn(z.slice(b * K, e * K), N, K, { ...so, exact });
    out[name] = compare(full, part, b, e);
    if (name === "f64") {
      const warm = { ...base, warmStart: full.scaling.logR };
      out.warm = compare(await sinkhorn(z, N, K, warm), await shardedSinkhorn(z.slice(b * K, e * K), N, K, warm), b, e);
      out.gathered = sameBits(await gatherLabels(part.labels), full.labels);
    }
  }
  const f = normals(N * D, 11, 1), wt = normals(K * D, 12, 1), bias = normals(K, 13, 0.1);
  const ff = await sinkhornFromFeatures(f, N, D, wt, bias, K, base);
  const fp = await shardedSinkhornFromFeatures(f.slice(b * D, e * D), N, D, wt, bias, K, base);
  out.features = compare(ff, fp, b, e);
  // A NaN on the last row: every rank must refuse, naming the row (no rank left waiting).
  const bad = z.slice();
  bad[(N - 1) * K + 3] = NaN;
  try {
    await shardedSinkhorn(bad.slice(b * K, e * K), N, K, base);
    out.nan = "solved";
  } catch (err) {
    out.nan = (err as Error).message;
  }
  console.log("SLN_DIST_SINKHORN " + JSON.stringify(out));
  mpiNative().mpiFinalize();
}

main().catch((err) => {
  console.error(`rank ?: ${(err as Error).stack}`);
  process.exit(1);
});
