// Run under mpirun by bench/distributed.ts (one thread per rank). Prints one
// `SLN_BENCH <json>` line per measurement from rank 0:
//   sinkhorn: per-iteration median seconds of the single-process solver (all
//             rows, baseline), and of the row-sharded solver (exact and
//             all-reduce modes), with the seconds inside MPI per iteration;
//   train:    images/s of `steps` data-parallel SGD steps (global batch split
//             over the ranks, gradients all-reduced; smallcnn, 32x32) and the
//             share of each step spent in the gradient all-reduce.
import { initMpi, mpiNative } from "../lib/distributed/mpi";
import { myRows, shardedSinkhorn } from "../lib/distributed/sinkhorn";
import { sinkhorn } from "../lib/sinkhorn";
import { createModel } from "../lib/model";
import { partRange } from "../lib/data/loader";

function logits(n: number, k: number): Float32Array {
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  const z = new Float32Array(n * k);
  for (let i = 0; i < z.length; i++) z[i] = 2 * (rnd() + rnd() + rnd() - 1.5);
  return z;
}

async function main() {
  const [mode, ...rest] = process.argv.slice(2);
  const w = initMpi();
  const m = mpiNative();
  const out = (o: Record<string, unknown>) => w.rank === 0 && console.log("SLN_BENCH " + JSON.stringify({ ranks: w.size, ...o }));
  if (mode === "sinkhorn") {
    const [N, K, iters] = rest.map(Number);
    const z = logits(N, K);
    const opts = { lambda: 10, tol: 0, maxIters: iters, threads: 1 };
    if (w.size === 1) {
      const r = await sinkhorn(z, N, K, opts);
      out({ what: "sinkhorn", impl: "single-process", n: N, k: K, iters: r.iterations, perIter: r.medianIterSeconds, mpiPerIter: 0 });
    }
    const [b, e] = myRows(N);
    for (const exact of [true, false]) {
      await m.mpiBarrier();
      m.mpiStats();
      const r = await shardedSinkhorn(z.slice(b * K, e * K), N, K, { ...opts, exact });
      const st = m.mpiStats();
      const a = Float64Array.from([st.seconds / r.iterations]);
      await m.mpiAllreduce(a, "max");
      out({ what: "sinkhorn", impl: exact ? "sharded exact" : "sharded allreduce", n: N, k: K, iters: r.iterations, perIter: r.medianIterSeconds, mpiPerIter: a[0] });
    }
  } else if (mode === "train") {
    const [B, steps] = rest.map(Number);
    const model = await createModel({ arch: "smallcnn", numClasses: [10], inputShape: [3, 32, 32], seed: 0 });
    const [b, e] = partRange(B, w.rank, w.size);
    const n = e - b;
    const x = logits(n, 3 * 32 * 32);
    const y = [Int32Array.from({ length: n }, (_, i) => (b + i) % 10)];
    const opts = { lr: 0.01, momentum: 0.9, weightDecay: 1e-5, distributed: true, lossScale: n / B, syncBn: false };
    for (let i = 0; i < 2; i++) await model.trainStep(x, y, opts); // warm-up
    await m.mpiBarrier();
    m.mpiStats();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < steps; i++) await model.trainStep(x, y, opts);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const st = m.mpiStats();
    const a = Float64Array.from([secs, st.seconds]);
    await m.mpiAllreduce(a, "max");
    out({ what: "train", batch: B, steps, params: model.numParameters, imagesPerSec: (B * steps) / a[0], stepSeconds: a[0] / steps, allreduceShare: a[1] / a[0] });
    model.dispose();
  }
  m.mpiFinalize();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
