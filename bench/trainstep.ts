// npm run bench -- trainstep [--steps N] [--warmup W] [--threads T] [--gemm N] [--no-torch] [--no-layouts] [--no-bf16] [--no-fusion]
// images/s of the smallcnn training step (batch 256) and forward (batch 512) on
// 1x28x28 and 3x32x32, next to PyTorch (same model, same threads, same timing:
// median of N steps after W warm-up steps) timed in the same run when a python3
// with torch is found. Each case also prints its achieved GFLOP/s (conv and
// linear multiply-adds, bench/_flops.ts) beside oneDNN's float32 GEMM of two
// --gemm x --gemm matrices on the same threads (bench/probe.ts), measured before
// and after the cases: the arithmetic ceiling of this machine. Then the same
// cases with the trunk kept NCHW, and trained in mixed precision (--precision
// bf16: bfloat16 convolutions) where the CPU has AVX512-BF16/AMX, and with batch
// norm and ReLU unfused (SELFLABEL_FUSE=0; --no-fusion skips). Not a test: prints ratios.
import { findTorchPython, arg, runTorchBaseline, printRatios } from "./_torch";
import { createModel } from "../lib/model";
import { native } from "../lib/binding";
import { trainStepFlops, forwardFlops } from "./_flops";
import { sgemmGflops } from "./probe";

/** Median seconds of one call over `steps` calls after `warmup` untimed ones. */
export async function medianSeconds(fn: () => Promise<unknown>, steps: number, warmup: number): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const t: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

export async function main(args: string[]): Promise<void> {
  const steps = arg(args, "--steps", 10);
  const warmup = arg(args, "--warmup", 3);
  const threads = arg(args, "--threads", native().info().threads);
  const gemmN = arg(args, "--gemm", 4096);
  native().setThreads(threads);
  console.log(`# trainstep: ${native().info().cpu}; median of ${steps} steps after ${warmup} warm-up (ours and PyTorch alike)`);
  const gemmBefore = sgemmGflops(gemmN, threads, 5).gflops;
  console.log(`# float32 GEMM ${gemmN}^2 (oneDNN sgemm, ${threads} threads, median of 5): ${gemmBefore.toFixed(1)} GFLOP/s (before the cases)`);
  const ours: Record<string, number> = {};
  const flops: Record<string, number> = {};
  // images/s of each case's training step and forward, with the models built now
  const timeCases = async (out: Record<string, number>, fl?: Record<string, number>, precision: "f32" | "bf16" = "f32") => {
    for (const [c, h, w] of [
      [1, 28, 28],
      [3, 32, 32],
    ] as [number, number, number][]) {
      const model = await createModel({ arch: "smallcnn", numClasses: [10], inputShape: [c, h, w], seed: 1, precision });
      const x = new Float32Array(256 * c * h * w).map(() => Math.random() * 2 - 1);
      const y = new Int32Array(256).map(() => Math.floor(Math.random() * 10));
      const tk = `train ${c}x${h}x${w} b256`;
      out[tk] = 256 / (await medianSeconds(() => model.trainStep(x, [y], { lr: 0.05, momentum: 0.9, weightDecay: 1e-5 }), steps, warmup));
      const xf = new Float32Array(512 * c * h * w).map(() => Math.random() * 2 - 1);
      const fk = `forward ${c}x${h}x${w} b512`;
      out[fk] = 512 / (await medianSeconds(() => model.forward(xf, { mode: "eval", output: "logits" }), steps, warmup));
      if (fl) (fl[tk] = trainStepFlops(model)), (fl[fk] = forwardFlops(model).total);
      model.dispose();
    }
  };
  await timeCases(ours, flops);
  // the same cases with the trunk's activations kept NCHW (SELFLABEL_LAYOUT=plain,
  // read when a model is built): what the blocked layout (nChw16c) gains
  const nchw: Record<string, number> = {};
  if (!args.includes("--no-layouts")) {
    process.env.SELFLABEL_LAYOUT = "plain";
    await timeCases(nchw);
    delete process.env.SELFLABEL_LAYOUT;
  }
  const bf16: Record<string, number> = {};
  if (!args.includes("--no-bf16") && native().info().bf16) await timeCases(bf16, undefined, "bf16");
  // and with each batch norm's ReLU run on its own (SELFLABEL_FUSE=0, read when a
  // model is built): what the fused batch norm + ReLU gains
  const unfused: Record<string, number> = {};
  if (!args.includes("--no-fusion")) {
    process.env.SELFLABEL_FUSE = "0";
    await timeCases(unfused);
    delete process.env.SELFLABEL_FUSE;
  }
  const py = args.includes("--no-torch") ? null : findTorchPython();
  let theirs: Record<string, number> = {};
  if (py)
    theirs = runTorchBaseline(py, __dirname + "/../../bench/torch_trainstep.py", [String(threads), String(steps), String(warmup)], threads);
  else console.log("# baseline: no python3 with torch found (install python3-torch); ours only");
  const gemmAfter = sgemmGflops(gemmN, threads, 5).gflops;
  console.log(`# float32 GEMM ${gemmN}^2: ${gemmAfter.toFixed(1)} GFLOP/s (after the cases); the table divides by the larger of the two`);
  printRatios(ours, theirs, 24, 0);
  // a variant's images/s beside the default's; ratio = default / variant
  const versus = (other: Record<string, number>, title: string, col: string) => {
    if (!Object.keys(other).length) return;
    console.log(title);
    console.log(`${"case".padEnd(24)} ${"default img/s".padStart(14)} ${col.padStart(11)} ${"ratio".padStart(7)}`);
    for (const k of Object.keys(other))
      console.log(`${k.padEnd(24)} ${ours[k].toFixed(0).padStart(14)} ${other[k].toFixed(0).padStart(11)} ${(ours[k] / other[k]).toFixed(2).padStart(6)}x`);
  };
  versus(nchw, `# ours with the trunk's activations in NCHW (SELFLABEL_LAYOUT=plain) vs the default (blocked nChw16c where the CPU has AVX-512)`, "NCHW img/s");
  versus(bf16, `# ours with --precision bf16 (mixed: bfloat16 convolutions, float32 accumulation) vs the default f32; ratio < 1: bf16 is faster`, "bf16 img/s");
  versus(unfused, `# ours with batch norm and ReLU unfused (SELFLABEL_FUSE=0) vs the default (fused where the trunk is blocked)`, "unfused img/s");
  const gemm = Math.max(gemmBefore, gemmAfter);
  console.log(`${"case".padEnd(24)} ${"MFLOP/img".padStart(10)} ${"ours GFLOP/s".padStart(13)} ${"of GEMM".padStart(8)} ${"torch GFLOP/s".padStart(14)} ${"of GEMM".padStart(8)}`);
  for (const k of Object.keys(ours)) {
    const g = (ours[k] * flops[k]) / 1e9;
    const tg = theirs[k] ? (theirs[k] * flops[k]) / 1e9 : NaN;
    console.log(
      `${k.padEnd(24)} ${(flops[k] / 1e6).toFixed(1).padStart(10)} ${g.toFixed(1).padStart(13)} ${((100 * g) / gemm).toFixed(0).padStart(7)}% ${
        Number.isNaN(tg) ? "-".padStart(14) : tg.toFixed(1).padStart(14)
      } ${Number.isNaN(tg) ? "-".padStart(8) : (((100 * tg) / gemm).toFixed(0) + "%").padStart(8)}`,
    );
  }
}
