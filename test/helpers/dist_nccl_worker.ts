// The multi-GPU check of `--distributed --device cuda` (run by
// scripts/device-check-nccl.sh under `mpirun -np <GPUs>` on a machine with >= 2
// GPUs; it cannot run without them). Each rank takes its own GPU
// (pickRankGpu), loads the CUDA library, joins the NCCL communicator (unique id
// over MPI), then checks and prints one line `SLN_DIST_NCCL <json>`:
//   allreduce: rank-dependent float64 vectors summed / maxed / mined in GPU memory
//              over NCCL equal the exact host results;
//   sinkhorn:  the same logits solved (a) on this GPU alone, (b) row-sharded over
//              every GPU (the K-vector sums over NCCL), (c) on the CPU: labels
//              agreement, iterations, max |log r| difference;
//   trainStep: every rank trains the same batch with lossScale 1/R: the NCCL sum
//              of R equal gradients times 1/R is the one-GPU gradient, so the
//              weights equal a one-GPU step on that batch (max relative difference).
import { Prng } from "../../lib/prng";
import { createModel } from "../../lib/model";
import { sinkhorn, sinkhornCuda as cudaSinkhorn } from "../../lib/sinkhorn";
import { loadCuda } from "../../lib/cuda";
import { initMpi, mpiNative, mpiStatus } from "../../lib/distributed/mpi";
import { initNccl, pickRankGpu, ncclAllreduceTest, finishNccl } from "../../lib/distributed/nccl";
import { myRows } from "../../lib/distributed/sinkhorn";

function normals(n: number, seed: number, scale: number): Float32Array {
  const p = new Prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * (p.random() + p.random() + p.random() - 1.5) * 2;
  return out;
}

async function main() {
  // `npm test` runs every .js under .build-ts/test, this helper too: alone (not
  // started by mpirun) it has nothing to check and must not fail the suite
  if (!process.env.OMPI_COMM_WORLD_SIZE && !process.env.PMI_SIZE) {
    console.log("# dist_nccl_worker: the multi-GPU check of scripts/device-check-nccl.sh (mpirun -np <GPUs>); nothing to do when run alone");
    return;
  }
  const w = initMpi();
  const gpu = pickRankGpu(w.rank);
  const st = await loadCuda();
  if (!st.available) throw new Error(`rank ${w.rank}: CUDA unavailable: ${st.reason}`);
  await initNccl(w, mpiStatus());
  const out: Record<string, unknown> = { rank: w.rank, size: w.size, gpu };

  // 1. device all-reduce
  const n = 1000;
  const ok: Record<string, boolean> = {};
  for (const op of ["sum", "max", "min"] as const) {
    const a = Float64Array.from({ length: n }, (_, i) => (i % 7) * 0.25 + w.rank * (op === "min" ? -1 : 1));
    await ncclAllreduceTest(a, op);
    let good = true;
    for (let i = 0; i < n; i++) {
      const v = (r: number) => (i % 7) * 0.25 + r * (op === "min" ? -1 : 1);
      let want = v(0);
      for (let r = 1; r < w.size; r++) want = op === "sum" ? want + v(r) : op === "max" ? Math.max(want, v(r)) : Math.min(want, v(r));
      if (a[i] !== want) good = false;
    }
    ok[op] = good;
  }
  out.allreduce = ok;

  // 2. sharded CUDA Sinkhorn vs one GPU vs the CPU
  const N = 20000, K = 100;
  const z = normals(N * K, 7, 1.5);
  const base = { lambda: 10, tol: 1e-6, maxIters: 500 };
  const [b, e] = myRows(N);
  const one = await cudaSinkhorn(z, N, K, base);
  const cpu = await sinkhorn(z, N, K, { ...base, threads: 4 });
  const part = await cudaSinkhorn(z.slice(b * K, e * K), e - b, K, { ...base, shard: { nTotal: N, exact: false } } as never);
  let agreeOne = 0,
    agreeCpu = 0,
    dR = 0;
  for (let i = b; i < e; i++) {
    agreeOne += one.labels[i] === part.labels[i - b] ? 1 : 0;
    agreeCpu += cpu.labels[i] === part.labels[i - b] ? 1 : 0;
  }
  for (let k = 0; k < K; k++) dR = Math.max(dR, Math.abs(one.scaling.logR[k] - part.scaling.logR[k]));
  out.sinkhorn = {
    rows: e - b,
    agreeOneGpu: agreeOne / (e - b),
    agreeCpu: agreeCpu / (e - b),
    iterations: [cpu.iterations, one.iterations, part.iterations],
    error: [cpu.error, one.error, part.error],
    countsEqual: Array.from(one.counts).every((c, k) => c === part.counts[k]),
    maxLogRDiff: dR,
    medianIterMs: [one.medianIterSeconds * 1e3, part.medianIterSeconds * 1e3],
  };

  // 3. a training step over NCCL vs one GPU (same batch on every rank)
  const spec = { arch: "smallcnn", numClasses: [10], inputShape: [3, 32, 32] as [number, number, number], seed: 3, device: "cuda" as const };
  const B = 32;
  const x = normals(B * 3 * 32 * 32, 9, 1);
  const y = Int32Array.from({ length: B }, (_, i) => i % 10);
  const dist = await createModel(spec);
  const solo = await createModel(spec);
  for (let s = 0; s < 3; s++) {
    await dist.trainStep(x, [y], { lr: 0.05, momentum: 0.9, distributed: true, lossScale: 1 / w.size, syncBn: false, rowOffset: 0 } as never);
    await solo.trainStep(x, [y], { lr: 0.05, momentum: 0.9 });
  }
  const a = await dist.stateDict(),
    c = await solo.stateDict();
  let worst = 0;
  for (const k of Object.keys(a)) {
    let d = 0,
      m = 0;
    for (let i = 0; i < a[k].data.length; i++) {
      d = Math.max(d, Math.abs(a[k].data[i] - c[k].data[i]));
      m = Math.max(m, Math.abs(c[k].data[i]));
    }
    worst = Math.max(worst, m > 0 ? d / m : d);
  }
  out.trainStep = { steps: 3, maxRelDiff: worst };
  console.log("SLN_DIST_NCCL " + JSON.stringify(out));
  dist.dispose();
  solo.dispose();
  finishNccl();
  mpiNative().mpiFinalize();
}

main().catch((err) => {
  console.error(`dist_nccl_worker: ${(err as Error).stack}`);
  process.exit(1);
});
