// npm run bench -- recipe [--data DIR] [--subset N] [--seeds 0,1,2] [--variants a,b] [--epochs E]
// The recipe ablation (docs/quality.md): trains every variant for every seed
// on a seeded subset of the data (default: 10000 Fashion-MNIST training images;
// the test NMI is on the full test split) and prints self-label and test NMI,
// mean and spread (sample standard deviation) over the seeds, beside the
// raw-pixel k-means NMI of the same training images. Variants
// (comma-separated names for --variants): see VARIANTS. Variants are train()
// options over the recipe: see VARIANTS.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { train, TrainOptions } from "../lib/train/train";

// the reference recipe's schedule, spelled out (a variant that changes one part
// of it names no recipe, so the default recipe's choices must all be overridden)
const REF_SCHEDULE: TrainOptions = { relabel: "sinkhorn", lrSchedule: "step", epochs: 8, nopts: 10 };
const VARIANTS: Record<string, TrainOptions> = {
  reference: { recipe: "reference" },
  "reference+label-mode-train": { recipe: "reference", labelMode: "train" },
  kmeans: { recipe: "kmeans" },
  spectral: { recipe: "spectral" },
  // the kmeans recipe's parts, one at a time over the reference recipe (docs/quality.md rows 2-4)
  "kmeans-init": { ...REF_SCHEDULE, initLabels: "kmeans" },
  "kmeans-init+first-pass-0.25": { ...REF_SCHEDULE, initLabels: "kmeans", firstPass: 0.25 },
  "kmeans-init+final-pass-only": { ...REF_SCHEDULE, initLabels: "kmeans", firstPass: 0.99 },
  // the spectral recipe's parts: its first labels with the kmeans recipe's Sinkhorn final pass; its label passes without the one half way
  "spectral-init+sinkhorn-final-pass": { initLabels: "spectral", relabel: "sinkhorn", lrSchedule: "cosine", firstPass: 0.99, nopts: 10 },
  "spectral+final-pass-only": { recipe: "spectral", nopts: 1 },
  // mixed-precision training (--precision bf16) against the same recipes in float32 (issue 14 item 3)
  "spectral+bf16": { recipe: "spectral", precision: "bf16" },
  "reference+bf16": { recipe: "reference", precision: "bf16" },
};

function arg(args: string[], name: string, dflt: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}

const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
const sd = (x: number[]) => (x.length < 2 ? 0 : Math.sqrt(x.reduce((a, b) => a + (b - mean(x)) ** 2, 0) / (x.length - 1)));
const fmt = (x: number[]) => `${mean(x).toFixed(3)} ± ${sd(x).toFixed(3)}`;

export async function main(args: string[]): Promise<void> {
  const data = arg(args, "data", "/usr/share/datasets/fashion-mnist");
  const subset = Number(arg(args, "subset", "10000"));
  const seeds = arg(args, "seeds", "0,1,2").split(",").map(Number);
  const names = arg(args, "variants", "reference,kmeans,spectral").split(",");
  const epochs = args.includes("--epochs") ? Number(arg(args, "epochs", "8")) : undefined;
  for (const n of names) if (!VARIANTS[n]) throw new Error(`unknown variant ${n} (known: ${Object.keys(VARIANTS).join(", ")})`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-bench-recipe-"));
  const rows: string[] = [];
  let pixel: number[] = [];
  try {
    for (const name of names) {
      const self: number[] = [],
        test: number[] = [],
        secs: number[] = [];
      for (const seed of seeds) {
        const r = await train({ data, subset, seed, exp: path.join(tmp, `${name}-${seed}`), resume: false, ...(epochs ? { epochs } : {}), ...VARIANTS[name] });
        self.push(r.selfLabels![0].nmi);
        test.push(r.test ? r.test[0].nmi : NaN);
        secs.push(r.seconds);
        if (r.pixelKmeans) pixel.push(r.pixelKmeans.nmi);
        console.log(`${name} seed ${seed}: self-label NMI ${self.at(-1)!.toFixed(3)}, test NMI ${test.at(-1)!.toFixed(3)}, ${r.seconds.toFixed(0)} s`);
      }
      rows.push(`${name.padEnd(28)} ${fmt(self).padStart(14)} ${fmt(test).padStart(14)} ${mean(secs).toFixed(0).padStart(8)}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  pixel = [...new Set(pixel.map((x) => x.toFixed(3)))].map(Number);
  console.log(`\n${data}, subset ${subset}, seeds ${seeds.join(",")}; raw-pixel k-means NMI of the training images: ${pixel.join(", ")}`);
  console.log(`${"variant".padEnd(28)} ${"self NMI".padStart(14)} ${"test NMI".padStart(14)} ${"s".padStart(8)}`);
  for (const r of rows) console.log(r);
}
