// npm run bench -- zoo [--steps N] [--warmup W] [--threads T] [--no-torch] [--only NAME,...] [--no-fusion]
// (also: npm run bench -- models). Training-step images/s on the CPU for
// AlexNet small and big (224 px, batch 32) and ResNet-18/50 (224 px, batch
// 16), each with one 1000-way head, next to PyTorch (same architectures from
// scripts/make-zoo-fixtures.py, same threads, same optimizer) timed in the
// same run when a python3 with torch and torchvision is found. Both sides are
// timed alike: W untimed warm-up steps (oneDNN and PyTorch create their
// primitives on the first steps), then the median of N single-step timings;
// the setup is printed. Not a test.
import { findTorchPython, arg, runTorchBaseline, printRatios, printFusion } from "./_torch";
import * as path from "node:path";
import { createModel, ModelOptions } from "../lib/model";
import { medianSeconds } from "./trainstep";
import { native } from "../lib/binding";

interface Case {
  name: string;
  arch: string;
  archSpec?: "big" | "small";
  numClasses: number[];
  inputShape: [number, number, number];
  batch: number;
}

const CASES: Case[] = [
  { name: "alexnet small b32", arch: "alexnet", archSpec: "small", numClasses: [1000], inputShape: [3, 224, 224], batch: 32 },
  { name: "alexnet big b32", arch: "alexnet", archSpec: "big", numClasses: [1000], inputShape: [3, 224, 224], batch: 32 },
  { name: "resnet18 b16", arch: "resnet18", numClasses: [1000], inputShape: [3, 224, 224], batch: 16 },
  { name: "resnet50 b16", arch: "resnet50", numClasses: [1000], inputShape: [3, 224, 224], batch: 16 },
];


export async function main(args: string[]): Promise<void> {
  const steps = arg(args, "--steps", 5);
  const warmup = arg(args, "--warmup", 3);
  const threads = arg(args, "--threads", native().info().threads);
  const only = args.includes("--only") ? args[args.indexOf("--only") + 1].split(",") : null;
  const cases = CASES.filter((c) => !only || only.some((o) => c.name.startsWith(o)));
  native().setThreads(threads);
  console.log(`# zoo: training step, ${native().info().cpu}; median of ${steps} steps after ${warmup} warm-up (ours and PyTorch alike)`);
  console.log(`# cases: ${cases.map((c) => `${c.name} (${c.inputShape.join("x")}, ${c.numClasses.join("+")}-way head, SGD momentum 0.9, wd 1e-5)`).join("; ")}`);
  const ours: Record<string, number> = {};
  const unfused: Record<string, number> = {};
  // each case also with batch norm and ReLU unfused (SELFLABEL_FUSE=0, read when
  // a model is built), right after the default: --no-fusion skips
  const variants = args.includes("--no-fusion") ? [ours] : [ours, unfused];
  for (const c of cases) for (const out of variants) {
    if (out === unfused) process.env.SELFLABEL_FUSE = "0";
    const opts: ModelOptions = { arch: c.arch, numClasses: c.numClasses, inputShape: c.inputShape, seed: 1 };
    if (c.archSpec) opts.archSpec = c.archSpec;
    const m = await createModel(opts);
    const n = c.batch;
    const x = new Float32Array(n * c.inputShape[0] * c.inputShape[1] * c.inputShape[2]).map(() => Math.random() * 2 - 1);
    const y = new Int32Array(n).map(() => Math.floor(Math.random() * c.numClasses[0]));
    const step = () => m.trainStep(x, [y], { lr: 0.01, momentum: 0.9, weightDecay: 1e-5 });
    out[c.name] = n / (await medianSeconds(step, steps, warmup));
    m.dispose();
    delete process.env.SELFLABEL_FUSE;
  }
  const py = args.includes("--no-torch") ? null : findTorchPython("torch, torchvision");
  let theirs: Record<string, number> = {};
  if (py)
    theirs = runTorchBaseline(
      py,
      path.join(__dirname, "../../bench/torch_zoo.py"),
      [String(threads), String(steps), String(warmup), JSON.stringify(cases)],
      threads,
    );
  else console.log("# baseline: no python3 with torch and torchvision found; ours only");
  printRatios(ours, theirs, 20, 1);
  if (Object.keys(unfused).length) printFusion(ours, unfused, 20);
}
