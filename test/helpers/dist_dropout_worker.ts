// Run under `mpirun -np 2` by test/distributed_train.test.ts: AlexNet (its
// classifier has two Dropout(0.5) layers) takes one SGD step on a global batch
// of 4 copies of one image (identical images: per-rank batch norm statistics are
// the global batch's, so only the dropout masks can make the ranks differ from
// one process), split over the ranks, twice: with rowOffset = the rank's first
// position in the batch (the fix: masks of the global positions) and with
// rowOffset 0 on every rank (before the fix, each rank drew the masks of
// positions 0.. of its own part). Rank 0 also takes the step on the whole batch
// in one plain process, and prints `SLN_DIST_DROPOUT <json>`: per variant, the
// worst over the classifier's and the head's tensors of max|w - w_single| /
// max|w_single - w0|.
import { createModel, Model } from "../../lib/model";
import { native } from "../../lib/binding";
import { Prng } from "../../lib/prng";
import { partRange } from "../../lib/data/loader";
import { initMpi, mpiNative } from "../../lib/distributed/mpi";

const spec = { arch: "alexnet", archSpec: "small" as const, numClasses: [10], inputShape: [3, 224, 224] as [number, number, number], seed: 5 };
const watched = (k: string) => /^(classifier|top_layer)/.test(k) && !/running_/.test(k);

async function tensors(m: Model): Promise<Record<string, Float32Array>> {
  const sd = await m.stateDict();
  const out: Record<string, Float32Array> = {};
  for (const k of Object.keys(sd)) if (watched(k)) out[k] = sd[k].data;
  return out;
}

async function main() {
  const w = initMpi();
  native().setThreads(1);
  const G = 4, per = 3 * 224 * 224;
  const p = new Prng(21);
  const one = Float32Array.from({ length: per }, () => p.random() * 2 - 1);
  const images = new Float32Array(G * per);
  for (let i = 0; i < G; i++) images.set(one, i * per);
  const labels = Int32Array.from([3, 1, 4, 1]);
  const [a, b] = partRange(G, w.rank, w.size);
  const step = { lr: 0.01, momentum: 0.9, weightDecay: 0 };
  const result: Record<string, unknown> = { rank: w.rank };
  let single: Record<string, Float32Array> | null = null,
    w0: Record<string, Float32Array> | null = null;
  if (w.rank === 0) {
    const m = await createModel(spec);
    w0 = await tensors(m);
    await m.trainStep(images, [labels], step);
    single = await tensors(m);
    m.dispose();
  }
  for (const variant of ["global", "perRank"] as const) {
    const m = await createModel(spec);
    const opts = { ...step, distributed: true, lossScale: (b - a) / G, syncBn: false, rowOffset: variant === "global" ? a : 0 };
    await m.trainStep(images.subarray(a * per, b * per), [labels.subarray(a, b)], opts as never);
    if (single && w0) {
      const t = await tensors(m);
      let worst = { ratio: 0, tensor: "" };
      for (const k of Object.keys(t)) {
        let d = 0,
          u = 0;
        for (let i = 0; i < t[k].length; i++) {
          d = Math.max(d, Math.abs(t[k][i] - single[k][i]));
          u = Math.max(u, Math.abs(single[k][i] - w0[k][i]));
        }
        if (d / u > worst.ratio) worst = { ratio: d / u, tensor: k };
      }
      result[variant] = worst;
    }
    m.dispose();
  }
  if (w.rank === 0) console.log("SLN_DIST_DROPOUT " + JSON.stringify(result));
  mpiNative().mpiFinalize();
}

main().catch((err) => {
  console.error(`dropout worker: ${(err as Error).stack}`);
  process.exit(1);
});
