// npm run bench -- trainstep [--steps N] [--threads T] [--no-torch]
// images/s of the smallcnn training step (batch 256) and forward (batch 512) on
// 1x28x28 and 3x32x32, next to PyTorch (same model, same threads) timed in the
// same run when a python3 with torch is found. Not a test: prints ratios.
import { findTorchPython, arg, runTorchBaseline, printRatios } from "./_torch";
import { createModel } from "../lib/model";
import { native } from "../lib/binding";

async function timeit(fn: () => Promise<unknown>, steps: number): Promise<number> {
  for (let i = 0; i < 3; i++) await fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < steps; i++) await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9 / steps;
}

export async function main(args: string[]): Promise<void> {
  const steps = arg(args, "--steps", 10);
  const threads = arg(args, "--threads", native().info().threads);
  native().setThreads(threads);
  console.log(`# trainstep: ${native().info().cpu}; ${steps} timed steps after 3 warm-up`);
  const ours: Record<string, number> = {};
  for (const [c, h, w] of [
    [1, 28, 28],
    [3, 32, 32],
  ] as [number, number, number][]) {
    const model = await createModel({ arch: "smallcnn", numClasses: [10], inputShape: [c, h, w], seed: 1 });
    const x = new Float32Array(256 * c * h * w).map(() => Math.random() * 2 - 1);
    const y = new Int32Array(256).map(() => Math.floor(Math.random() * 10));
    let t = await timeit(() => model.trainStep(x, [y], { lr: 0.05, momentum: 0.9, weightDecay: 1e-5 }), steps);
    ours[`train ${c}x${h}x${w} b256`] = 256 / t;
    const xf = new Float32Array(512 * c * h * w).map(() => Math.random() * 2 - 1);
    t = await timeit(() => model.forward(xf, { mode: "eval", output: "logits" }), steps);
    ours[`forward ${c}x${h}x${w} b512`] = 512 / t;
    model.dispose();
  }
  const py = args.includes("--no-torch") ? null : findTorchPython();
  let theirs: Record<string, number> = {};
  if (py) theirs = runTorchBaseline(py, __dirname + "/../../bench/torch_trainstep.py", [String(threads), String(steps)], threads);
  else console.log("# baseline: no python3 with torch found (install python3-torch); ours only");
  printRatios(ours, theirs, 24, 0);
}
