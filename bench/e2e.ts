// npm run bench -- e2e [--epochs 2] [--nopts 5] [--batch 256] [--subset N] [--threads 2]
//                      [--workers W] [--data DIR] [--no-torch] [--default-recipe]
//
// The whole Fashion-MNIST run, end to end, against a PyTorch port of the
// reference recipe on the same machine, one after the other in this call
// (issue 14's target: ours at most 0.4x PyTorch's wall time):
//   ours     `selflabel-native --threads T train --recipe reference --epochs 2
//            --nopts 5 --batch-size 256 --cpu --crop-scale 0.5 --no-eval-test`
//            (the CLI in a child process, a temporary --exp; --crop-scale 0.5:
//            the port's RandomResizedCrop range, so both train on the same
//            augmentation; no test-split evaluation, which the port does not do);
//   PyTorch  bench/torch_e2e.py: the reference's main.py loop with our smallcnn,
//            batch 256, torchvision RandomResizedCrop(0.5, 1) + flip in a
//            DataLoader (W worker processes, default 1 of the 2 cores' worth),
//            label passes on unaugmented images at our schedule's times, numpy
//            float64 Sinkhorn (lambda 25, tolerance 0.1), T threads.
// --default-recipe adds a third run: ours with the default recipe (spectral for
// 28 px images) and the same --epochs/--nopts/--batch-size, no --crop-scale.
// Prints, per run: the wall time of the child process (start to exit: imports,
// data decoding, first labels and checkpoints included), the label passes'
// seconds and share of the wall, the training phase's images/s (between label
// passes), the NMI of the final labels against the true classes, the solver's
// iterations per pass (Sinkhorn; the eigensolver's sparse products for spectral
// passes); then the ratio of the walls ours/PyTorch. --subset N: a seeded
// N-image subset (quick checks; each side draws its own subset). --no-torch:
// ours only. Without a python3 that has torch, torchvision, sklearn and PIL
// the PyTorch run says "skipped".
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { findTorchPython, strArg, numArgs, FASHION_MNIST } from "./_torch";
import { native } from "../lib/binding";

interface RunSummary {
  name: string;
  wall: number;
  label: number;
  labelForward: number;
  passes: number;
  iterations: number[];
  trainImagesPerSec: number;
  nmi: number;
  note?: string;
}

/** Run a child process; its stderr (and stdout unless captured) printed line by line behind `prefix`. */
function runPrefixed(cmd: string, argv: string[], prefix: string, captureStdout: boolean): Promise<{ code: number | null; stdout: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, SELFLABEL_PROGRESS_SECONDS: "60" } });
    let stdout = "";
    const forward = (stream: NodeJS.ReadableStream, keep: boolean) => {
      let rest = "";
      stream.setEncoding("utf8");
      stream.on("data", (s: string) => {
        if (keep) stdout += s;
        else {
          const lines = (rest + s).split("\n");
          rest = lines.pop()!;
          for (const l of lines) console.log(prefix + l);
        }
      });
      stream.on("end", () => {
        if (!keep && rest) console.log(prefix + rest);
      });
    };
    forward(child.stdout, captureStdout);
    forward(child.stderr, false);
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
  });
}

/** Ours: the CLI in a child process, summarised from its log.jsonl. */
async function runOurs(name: string, data: string, trainArgs: string[], threads: number, exp: string): Promise<RunSummary | null> {
  const cli = path.join(__dirname, "..", "lib", "cli.js");
  const argv = [cli, "--threads", String(threads), "train", "--data", data, ...trainArgs, "--cpu", "--no-eval-test", "--exp", exp, "--no-resume"];
  console.log(`# ${name}: node ${path.relative(process.cwd(), cli)} ${argv.slice(1).join(" ")}`);
  const r = await runPrefixed(process.execPath, argv, "  ours| ", false);
  if (r.code !== 0) {
    console.log(`# ${name} failed (exit ${r.code})`);
    return null;
  }
  const events = fs
    .readFileSync(path.join(exp, "log.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const start = events.find((e) => e.event === "start");
  const total = start.flags.epochs * start.n;
  const labels = events.filter((e) => e.event === "labels");
  const epochSecs = events.filter((e) => e.event === "epoch").reduce((a, e) => a + e.seconds, 0);
  // the passes inside the epochs' timing: all but one after the final batch
  const inLoop = labels.filter((e) => e.seen < total).reduce((a, e) => a + e.seconds, 0);
  const done = events.find((e) => e.event === "done");
  const base = events.find((e) => e.event === "baseline");
  const note = base?.kmeansPixels && base.kmeansPixels.cached === false ? "wall includes the raw-pixel k-means baseline (first run on this data; cached after)" : undefined;
  return {
    name,
    wall: r.seconds,
    label: labels.reduce((a, e) => a + e.seconds, 0),
    labelForward: labels.reduce((a, e) => a + e.featureSeconds, 0),
    passes: labels.length,
    iterations: labels.map((e) => e.heads[0].iterations ?? 0),
    trainImagesPerSec: total / (epochSecs - inLoop),
    nmi: done.selfLabels[0].nmi,
    note,
  };
}

async function runTorch(py: string, data: string, o: { epochs: number; nopts: number; batch: number; subset: number; threads: number; workers: number }, exp: string): Promise<RunSummary | null> {
  const script = path.join(__dirname, "..", "..", "bench", "torch_e2e.py");
  const argv = [script, "--data", data, "--epochs", String(o.epochs), "--nopts", String(o.nopts), "--batch", String(o.batch), "--threads", String(o.threads), "--workers", String(o.workers), "--exp", exp];
  if (o.subset > 0) argv.push("--subset", String(o.subset));
  console.log(`# PyTorch: ${py} ${path.relative(process.cwd(), script)} ${argv.slice(1).join(" ")}`);
  const r = await runPrefixed(py, argv, " torch| ", true);
  const line = r.stdout.trim().split("\n").pop();
  if (r.code !== 0 || !line) {
    console.log(`# PyTorch port failed (exit ${r.code})`);
    return null;
  }
  const j = JSON.parse(line);
  return {
    name: `PyTorch ${j.torch} port`,
    wall: r.seconds,
    label: j.label_s,
    labelForward: j.label_forward_s,
    passes: j.passes.length,
    iterations: j.passes.map((q: { iterations: number }) => q.iterations),
    trainImagesPerSec: j.train_images_per_s,
    nmi: j.nmi,
  };
}

export async function main(args: string[]): Promise<void> {
  const data = strArg(args, "--data", FASHION_MNIST);
  const { epochs, nopts, batch, subset, threads, workers } = numArgs(args, { epochs: 2, nopts: 5, batch: 256, subset: 0, threads: 2, workers: 1 });
  const withTorch = !args.includes("--no-torch");
  const loads = () => os.loadavg().map((v) => v.toFixed(2)).join(" ");
  console.log(
    `# e2e: ${native().info().cpu}, ${os.cpus().length} cores; ${data}${subset ? `, subset ${subset}` : ""}; ${epochs} epochs, ${nopts} label passes, batch ${batch}, ${threads} threads; load average ${loads()}`,
  );
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-bench-e2e-"));
  const runs: RunSummary[] = [];
  const common = ["--epochs", String(epochs), "--nopts", String(nopts), "--batch-size", String(batch), ...(subset ? ["--subset", String(subset)] : [])];
  try {
    const ours = await runOurs("ours (reference recipe)", data, ["--recipe", "reference", ...common, "--crop-scale", "0.5"], threads, path.join(tmp, "ours"));
    if (ours) runs.push(ours);
    console.log(`# load average after ours: ${loads()}`);
    let theirs: RunSummary | null = null;
    if (!withTorch) console.log("# PyTorch port: skipped (--no-torch)");
    else {
      const py = findTorchPython("torch, torchvision, sklearn, PIL");
      if (!py) console.log("# PyTorch port: skipped (no python3 with torch, torchvision, sklearn and PIL; set SELFLABEL_PYTHON)");
      else {
        theirs = await runTorch(py, data, { epochs, nopts, batch, subset, threads, workers }, path.join(tmp, "torch"));
        if (theirs) runs.push(theirs);
        console.log(`# load average after PyTorch: ${loads()}`);
      }
    }
    if (args.includes("--default-recipe")) {
      const def = await runOurs("ours (default recipe)", data, common, threads, path.join(tmp, "default"));
      if (def) runs.push(def);
      console.log(`# load average after the default recipe: ${loads()}`);
    }
    console.log("");
    console.log(`${"run".padEnd(26)} ${"wall s".padStart(8)} ${"label passes s".padStart(15)} ${"share".padStart(6)} ${"fwd s".padStart(6)} ${"train img/s".padStart(12)} ${"NMI".padStart(6)}  solver iterations per pass`);
    for (const r of runs) {
      console.log(
        `${r.name.padEnd(26)} ${r.wall.toFixed(1).padStart(8)} ${`${r.label.toFixed(1)} (${r.passes})`.padStart(15)} ${((100 * r.label) / r.wall).toFixed(0).padStart(5)}% ${r.labelForward.toFixed(1).padStart(6)} ${r.trainImagesPerSec.toFixed(0).padStart(12)} ${r.nmi.toFixed(3).padStart(6)}  ${r.iterations.join(" ")}`,
      );
      if (r.note) console.log(`  (${r.name}: ${r.note})`);
    }
    if (ours && theirs) console.log(`\nwall ours/PyTorch: ${(ours.wall / theirs.wall).toFixed(2)}x (target <= 0.40x); label passes ${(ours.label / theirs.label).toFixed(2)}x; training images/s ${(ours.trainImagesPerSec / theirs.trainImagesPerSec).toFixed(2)}x`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
