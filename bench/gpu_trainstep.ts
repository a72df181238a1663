// npm run bench -- gpu_trainstep [--steps N] [--no-torch]
// Training-step images/s on the CUDA backend: smallcnn 3x32x32 and the
// reference's AlexNet (small, 224 px, one head of 3000), batch 256, next to
// PyTorch eager (cuDNN, TF32 off) on the same card in the same run
// (bench/torch_gpu_trainstep.py). Both copy the batch from host memory every
// step and read the loss back. Without a CUDA device it says so and exits 0.
import { findTorchPython, arg, runTorchBaseline, printRatios } from "./_torch";
import { createModel } from "../lib/model";
import { loadCuda } from "../lib/cuda";

export async function main(args: string[]): Promise<void> {
  const steps = arg(args, "--steps", 10);
  const st = await loadCuda();
  if (!st.available) {
    console.log(`# gpu_trainstep: skipped: no CUDA device (${st.reason})`);
    return;
  }
  console.log(`# gpu_trainstep: ${st.reason}; ${steps} timed steps after 3 warm-up`);
  const ours: Record<string, number> = {};
  for (const [name, arch, shape, ncl, extra] of [
    ["smallcnn 3x32x32 b256", "smallcnn", [3, 32, 32], 10, {}],
    ["alexnet-small 3x224x224 b256", "alexnet", [3, 224, 224], 3000, { archSpec: "small" }],
  ] as [string, string, [number, number, number], number, object][]) {
    const model = await createModel({ arch, numClasses: [ncl], inputShape: shape, seed: 1, device: "cuda", ...extra });
    const n = 256 * shape[0] * shape[1] * shape[2];
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.618) * 1.5; // deterministic, no Math.random cost
    const y = Int32Array.from({ length: 256 }, (_, i) => (i * 7919) % ncl);
    const step = () => model.trainStep(x, [y], { lr: 0.05, momentum: 0.9, weightDecay: 1e-5 });
    for (let i = 0; i < 3; i++) await step();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < steps; i++) await step();
    const t = Number(process.hrtime.bigint() - t0) / 1e9 / steps;
    ours[`train ${name}`] = 256 / t;
    console.log(JSON.stringify({ case: `train ${name}`, images_per_s: 256 / t, source: "ours" }));
    model.dispose();
  }
  const py = args.includes("--no-torch") ? null : findTorchPython();
  let theirs: Record<string, number> = {};
  if (py) theirs = runTorchBaseline(py, __dirname + "/../../bench/torch_gpu_trainstep.py", [String(steps)], 0);
  else console.log("# baseline: no python3 with torch found; ours only");
  printRatios(ours, theirs, 38, 0);
}
