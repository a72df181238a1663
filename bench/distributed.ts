// npm run bench -- distributed [--quick]
//
// Data-parallel training and the row-sharded Sinkhorn over MPI on this machine:
// `mpirun -np R` with R = 1 and 2 ranks of one thread each (bench/_distributed_worker.ts).
//   Sinkhorn N x K (default 200000 x 128; --quick 60000 x 64), 100 iterations:
//     median seconds per iteration of the single-process solver (1 thread: the
//     baseline), of the sharded solver in its exact (allgather of the per-block
//     column sums) and all-reduce modes, and the seconds per iteration inside MPI.
//   Training: smallcnn, 32x32, global batch 128, 20 SGD steps (--quick 8):
//     images/s and the share of each step spent in the gradient all-reduce.
// Ratios are against the 1-rank runs of this same invocation. Needs OpenMPI
// (mpirun) and `npm run build:mpi`.
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { mpiStatus } from "../lib/distributed/mpi";

interface Line {
  ranks: number;
  what: string;
  [k: string]: unknown;
}

function run(ranks: number, args: string[], lib: string): Line[] {
  const worker = path.join(__dirname, "_distributed_worker.js");
  const env: NodeJS.ProcessEnv = { ...process.env, SELFLABEL_MPI_LIB: lib, SELFLABEL_NUM_THREADS: "1", OMP_NUM_THREADS: "1" };
  const r = spawnSync(
    "mpirun",
    ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-x", "SELFLABEL_MPI_LIB", "-x", "SELFLABEL_NUM_THREADS", "-x", "OMP_NUM_THREADS", "-np", String(ranks), process.execPath, worker, ...args],
    { encoding: "utf8", env, timeout: 900_000 },
  );
  if (r.status !== 0) throw new Error(`mpirun -np ${ranks} ${args.join(" ")} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return r.stdout
    .split("\n")
    .filter((l) => l.startsWith("SLN_BENCH "))
    .map((l) => JSON.parse(l.slice(10)) as Line);
}

const ms = (s: number) => (s * 1e3).toFixed(2);

export async function main(args: string[]): Promise<void> {
  const quick = args.includes("--quick");
  const st = mpiStatus();
  if (!st.available || !st.library) {
    console.log(`distributed: skipped: ${st.reason}`);
    return;
  }
  console.log(`MPI: ${st.reason}`);
  const [N, K] = quick ? [60000, 64] : [200000, 128];
  const steps = quick ? 8 : 20;
  const sk = [...run(1, ["sinkhorn", String(N), String(K), "100"], st.library), ...run(2, ["sinkhorn", String(N), String(K), "100"], st.library)];
  const base = sk.find((l) => l.impl === "single-process")!.perIter as number;
  console.log(`\nSinkhorn ${N} x ${K}, f64, 100 iterations, 1 thread per rank (per-iteration medians; baseline: single-process ${ms(base)} ms)`);
  console.log("ranks  solver               ms/iter  vs single  MPI ms/iter  MPI share");
  for (const l of sk) {
    const p = l.perIter as number,
      c = l.mpiPerIter as number;
    console.log(
      `${String(l.ranks).padEnd(6)} ${String(l.impl).padEnd(20)} ${ms(p).padStart(7)}  ${(base / p).toFixed(2).padStart(8)}x  ${ms(c).padStart(11)}  ${((100 * c) / p).toFixed(1).padStart(8)}%`,
    );
  }
  const tr = [...run(1, ["train", "128", String(steps)], st.library), ...run(2, ["train", "128", String(steps)], st.library)];
  const t1 = tr.find((l) => l.ranks === 1)!.imagesPerSec as number;
  console.log(`\nTraining smallcnn (${tr[0].params} parameters), global batch 128, ${steps} steps, 1 thread per rank`);
  console.log("ranks  images/s  vs 1 rank  ms/step  all-reduce share");
  for (const l of tr)
    console.log(
      `${String(l.ranks).padEnd(6)} ${(l.imagesPerSec as number).toFixed(1).padStart(8)}  ${((l.imagesPerSec as number) / t1).toFixed(2).padStart(8)}x  ${ms(l.stepSeconds as number).padStart(7)}  ${(100 * (l.allreduceShare as number)).toFixed(1).padStart(15)}%`,
    );
  console.log("\n(2 ranks share this machine's 2 cores with everything else running; a quiet machine is needed for clean ratios)");
}
