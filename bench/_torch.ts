// Shared by the benchmarks that time PyTorch beside us in the same run:
// finding a python3 with torch, running a baseline script that prints one JSON
// line { case, images_per_s } per case, and the ratio table.
import { spawnSync } from "node:child_process";

/** A python3 that can `import <modules>` (SELFLABEL_PYTHON first, then Debian's, then PATH's), or null. */
export function findTorchPython(modules = "torch"): string | null {
  const candidates = [process.env.SELFLABEL_PYTHON, "/usr/bin/python3", "python3"].filter(Boolean) as string[];
  for (const py of candidates) {
    if (spawnSync(py, ["-c", `import ${modules}`], { stdio: "ignore" }).status === 0) return py;
  }
  return null;
}

export function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

/** A string flag's value, or dflt when absent. */
export function strArg(args: string[], name: string, dflt: string): string {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
}

/** Numeric flags by name (`{ batch: 256 }` reads --batch, 256 when absent). */
export function numArgs<K extends string>(args: string[], defaults: Record<K, number>): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const k of Object.keys(defaults) as K[]) out[k] = arg(args, `--${k}`, defaults[k]);
  return out;
}

/** Where the bench data defaults to: the real Fashion-MNIST IDX files. */
export const FASHION_MNIST = "/usr/share/datasets/fashion-mnist";

/** Run a baseline script; images/s per case, and a '# baseline' line naming PyTorch's version. */
export function runTorchBaseline(py: string, script: string, scriptArgs: string[], threads: number): Record<string, number> {
  const theirs: Record<string, number> = {};
  const r = spawnSync(py, [script, ...scriptArgs], { encoding: "utf8" });
  if (r.status !== 0) console.log(`# PyTorch baseline failed: ${r.stderr.trim().split("\n").pop()}`);
  for (const line of r.stdout.split("\n").filter(Boolean)) {
    const j = JSON.parse(line);
    theirs[j.case] = j.images_per_s;
  }
  const v = spawnSync(py, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" }).stdout.trim();
  console.log(`# baseline: PyTorch ${v} (${py}), ${threads} threads`);
  return theirs;
}

/** case | ours img/s | torch img/s | ratio */
export function printRatios(ours: Record<string, number>, theirs: Record<string, number>, width: number, digits: number): void {
  console.log(`${"case".padEnd(width)} ${"ours img/s".padStart(11)} ${"torch img/s".padStart(13)}   ratio`);
  for (const k of Object.keys(ours)) {
    const t = theirs[k];
    console.log(
      `${k.padEnd(width)} ${ours[k].toFixed(digits).padStart(11)} ${t ? t.toFixed(digits).padStart(13) : "-".padStart(13)}   ${
        t ? (ours[k] / t).toFixed(2) + "x" : "-"
      }`,
    );
  }
}

/** Default (fused batch norm + ReLU) vs SELFLABEL_FUSE=0 images/s, timed in the same run. */
export function printFusion(fused: Record<string, number>, unfused: Record<string, number>, width: number): void {
  console.log(`# ours with batch norm and ReLU unfused (SELFLABEL_FUSE=0) vs the default (fused where the trunk is blocked)`);
  console.log(`${"case".padEnd(width)} ${"default img/s".padStart(14)} ${"unfused img/s".padStart(14)} ${"ratio".padStart(7)}`);
  for (const k of Object.keys(unfused))
    console.log(`${k.padEnd(width)} ${fused[k].toFixed(1).padStart(14)} ${unfused[k].toFixed(1).padStart(14)} ${(fused[k] / unfused[k]).toFixed(2).padStart(6)}x`);
}
