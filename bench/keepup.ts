// npm run bench -- keepup [--data DIR] [--subset N] [--batch B] [--nopts P] [--threads T] [--steps S]
//
// Does the training phase keep up with the bare training step? Runs train() for
// one epoch (default: a 20000-image seeded subset of Fashion-MNIST at
// /usr/share/datasets/fashion-mnist, smallcnn, batch 256, 4 label passes, 2
// threads, CPU) and takes the images/s of the training batches between label
// passes (the time from one batch's end to the next one's, leaving out every
// interval that holds a label pass, an epoch end or the run's first batch);
// then times the bare model.trainStep of the same model, input shape and batch
// on fixed in-memory data (median of S steps after 3 warm-up) in the same
// process. Prints both and their ratio (the target: 0.85x or better).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { train } from "../lib/train/train";
import type { TrainProgress } from "../lib/train/progress";
import { createModel } from "../lib/model";
import { native } from "../lib/binding";
import { strArg, numArgs, FASHION_MNIST } from "./_torch";
import { medianSeconds } from "./trainstep";

export async function main(args: string[]): Promise<void> {
  const data = strArg(args, "--data", FASHION_MNIST);
  const { subset, batch, nopts, threads, steps } = numArgs(args, { subset: 20000, batch: 256, nopts: 4, threads: 2, steps: 20 });
  const exp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-keepup-"));
  console.log(`# keepup: ${native().info().cpu}; ${data}, subset ${subset}, batch ${batch}, 1 epoch, ${nopts} label passes; load average ${os.loadavg().map((v) => v.toFixed(1)).join(" ")}`);
  let last = 0n,
    broken = true, // the next interval holds something other than a training batch
    trainSec = 0,
    trainImgs = 0,
    labelSec = 0;
  const onProgress = (p: TrainProgress) => {
    const now = process.hrtime.bigint();
    if (p.type === "batch") {
      if (!broken && p.batch < p.batches) {
        trainSec += Number(now - last) / 1e9;
        trainImgs += batch;
      }
      broken = false;
      last = now;
    } else if (p.type === "labelPass" || p.type === "epoch" || p.type === "start") {
      broken = true;
      if (p.type === "labelPass" && p.phase === "end" && p.seconds) labelSec += p.seconds;
    }
  };
  try {
    const t0 = Date.now();
    await train(
      { exp, data, subset, epochs: 1, nopts, batchSize: batch, threads, device: "cpu", arch: "smallcnn", ncl: [10], evalTest: false, recipe: "reference" },
      { onProgress },
    );
    const wall = (Date.now() - t0) / 1000;
    const start = fs
      .readFileSync(path.join(exp, "log.jsonl"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((r) => r.event === "start");
    const inputShape = start.inputShape as [number, number, number];
    const phase = trainImgs / trainSec;
    console.log(`train(): ${wall.toFixed(1)} s wall, label passes ${labelSec.toFixed(1)} s; training phase ${trainImgs} images in ${trainSec.toFixed(1)} s = ${phase.toFixed(0)} img/s (input ${inputShape.join("x")})`);

    const m = await createModel({ arch: "smallcnn", numClasses: [10], inputShape, seed: 1 });
    const x = new Float32Array(batch * inputShape[0] * inputShape[1] * inputShape[2]).map(() => Math.random() * 2 - 1);
    const y = new Int32Array(batch).map(() => Math.floor(Math.random() * 10));
    const t = await medianSeconds(() => m.trainStep(x, [y], { lr: 0.05, momentum: 0.9, weightDecay: 1e-5 }), steps, 3);
    m.dispose();
    const bare = batch / t;
    console.log(`bare trainStep: ${bare.toFixed(0)} img/s (median of ${steps} steps, batch ${batch})`);
    console.log(`training phase / bare step: ${(phase / bare).toFixed(2)}x`);
  } finally {
    fs.rmSync(exp, { recursive: true, force: true });
  }
}
