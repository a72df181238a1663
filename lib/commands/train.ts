// selflabel-native train: the SeLa loop. Flags carry the reference's names;
// with no arguments it trains smallcnn on the built-in synthetic set.
import type { Argv } from "yargs";
import { train, TrainOptions, HeadQuality } from "../train/train";

export const command = "train";
export const describe = "Train a network by self-labelling (SeLa); no arguments: smallcnn on the built-in synthetic set";

export function builder(y: Argv): Argv {
  return y
    .option("data", { type: "string", alias: "imagenet-path", describe: "data: ImageFolder, IDX (MNIST/Fashion-MNIST), CIFAR; omitted: built-in synthetic set" })
    .option("data-format", { type: "string", choices: ["auto", "imagefolder", "idx", "cifar", "synthetic"], default: "auto" })
    .option("exp", { type: "string", default: "./self-label-default", describe: "experiment directory (checkpoints, log.jsonl, model.safetensors, labels.csv)" })
    .option("epochs", { type: "number", describe: "epochs (reference 400; small images 8)" })
    .option("batch-size", { type: "number", describe: "batch size (reference 256; small images 128)" })
    .option("lr", { type: "number", describe: "learning rate (0.05)" })
    .option("lrdrop", { type: "number", describe: "multiply the lr by 0.1 every this many epochs (reference 150; small images 6)" })
    .option("wd", { type: "number", default: -5, describe: "weight decay as a power of ten" })
    .option("dtype", { type: "string", choices: ["f64", "f32"], default: "f64", describe: "Sinkhorn matrix storage" })
    .option("nopts", { type: "number", describe: "label optimisations over the run (reference 100; small images 10)" })
    .option("augs", { type: "number", describe: "training augmentation level 0-3 (3)" })
    .option("paugs", { type: "number", describe: "label-pass augmentation level 0-3 (reference 3; small images 0)" })
    .option("lamb", { type: "number", describe: "Sinkhorn lambda (25)" })
    .option("cpu", { type: "boolean", default: false, describe: "run everything on the CPU" })
    .option("arch", { type: "string", describe: "architecture (reference alexnet; small images smallcnn)" })
    .option("archspec", { type: "string", choices: ["big", "small"], default: "big" })
    .option("ncl", { type: "string", describe: "clusters per head, or a comma-separated list, one per head (head 0 is reported) (reference 3000; small images 10)" })
    .option("hc", { type: "number", describe: "number of heads (1)" })
    .option("device", { type: "string", choices: ["cpu", "cuda", "auto"], default: "auto", describe: "cuda: the CUDA backend (libselflabel_cuda.so, `npm run build:cuda`); auto: CUDA when it works, else the CPU with a notice" })
    .option("tf32", { type: "boolean", default: false, describe: "TF32 math on the GPU (convolutions, matrix products); off by default" })
    .option("gpu-augment", { type: "boolean", default: true, describe: "with the CUDA backend, augment the training batches on the GPU (--no-gpu-augment: on the CPU, then uploaded)" })
    .option("workers", { type: "number", describe: "decoding/augmentation threads" })
    .option("comment", { type: "string", default: "", describe: "free text stored with the run" })
    .option("log-intv", { type: "number", default: 1, describe: "print a line every this many epochs" })
    .option("log-iter", { type: "number", default: 200, describe: "log.jsonl record every this many batches" })
    .option("seed", { type: "number", default: 0 })
    .option("resume", { type: "boolean", default: true, describe: "continue from the newest checkpoint in --exp (--no-resume starts over)" })
    .option("label-mode", { type: "string", choices: ["eval", "train"], default: "eval", describe: "BN mode of the label pass (train = the reference)" })
    .option("input-size", { type: "number", describe: "model input side (default: the data's for small images, else 224)" })
    .option("sk-tol", { type: "number", default: 0.1, describe: "Sinkhorn tolerance" })
    .option("sk-max-iters", { type: "number", default: 10000, describe: "Sinkhorn iteration cap per label pass" })
    .option("sk-warm", { type: "boolean", default: false, describe: "warm-start each label pass from the previous one's scaling" })
    .option("init", { type: "string", describe: "initial weights: a PyTorch .pth (read without executing code), a converted .safetensors or a checkpoint" })
    .option("synthetic-count", { type: "number", hidden: true })
    .option("subset", { type: "number", hidden: true, describe: "train on a seeded random subset of this many images (experiments)" })
    .option("crop-scale", {
      type: "number",
      describe: "smallest RandomResizedCrop area fraction of the training augmentation, levels 2-3 (default the level's: 0.08, or 0.2 at <= 32 px)",
    })
    .option("eval-test", { type: "boolean", default: true, describe: "evaluate the final network on the test split" });
}

/** `--ncl 10` or `--ncl 10,50`: numbers are checked by resolveOptions (non-numbers become NaN). */
function parseNcl(v: unknown): number | number[] | undefined {
  if (v === undefined || v === null) return undefined;
  const parts = String(v).split(",").map((x) => (x.trim() === "" ? NaN : Number(x)));
  return parts.length === 1 ? parts[0] : parts;
}

function fmt(q: HeadQuality[] | null): string {
  if (!q) return "n/a";
  return q.map((x, h) => `head ${h}: NMI ${x.nmi.toFixed(3)}, ARI ${x.ari.toFixed(3)}, accuracy ${x.accuracy.toFixed(3)}`).join("; ");
}

export async function handler(a: Record<string, unknown>): Promise<void> {
  const opts: TrainOptions = {
    data: (a.data as string) ?? null,
    dataFormat: a.dataFormat as string,
    exp: a.exp as string,
    epochs: a.epochs as number | undefined,
    batchSize: a.batchSize as number | undefined,
    lr: a.lr as number | undefined,
    lrdrop: a.lrdrop as number | undefined,
    wd: a.wd as number,
    dtype: a.dtype as "f64" | "f32",
    nopts: a.nopts as number | undefined,
    augs: a.augs as number | undefined,
    paugs: a.paugs as number | undefined,
    lamb: a.lamb as number | undefined,
    cpu: a.cpu as boolean,
    arch: a.arch as string | undefined,
    archspec: a.archspec as "big" | "small",
    ncl: parseNcl(a.ncl),
    hc: a.hc as number | undefined,
    device: a.device as "cpu" | "cuda" | "auto",
    tf32: a.tf32 as boolean,
    gpuAugment: a.gpuAugment as boolean,
    workers: a.workers as number | undefined,
    comment: a.comment as string,
    logIntv: a.logIntv as number,
    logIter: a.logIter as number,
    seed: a.seed as number,
    resume: a.resume as boolean,
    labelMode: a.labelMode as "eval" | "train",
    inputSize: a.inputSize as number | undefined,
    skTol: a.skTol as number,
    skMaxIters: a.skMaxIters as number,
    skWarm: a.skWarm as boolean,
    init: a.init as string | undefined,
    syntheticCount: a.syntheticCount as number | undefined,
    subset: a.subset as number | undefined,
    cropScale: a.cropScale as number | undefined,
    evalTest: a.evalTest as boolean,
  };
  const tty = process.stderr.isTTY;
  let barShown = false;
  const clearBar = () => {
    if (barShown) process.stderr.write("\r\x1b[K");
    barShown = false;
  };
  const log = (line: string) => {
    clearBar();
    console.log(line);
  };
  let lastDraw = 0;
  const killAfter = process.env.SELFLABEL_TEST_KILL_AFTER_CHECKPOINT; // test hook
  const r = await train(opts, {
    log,
    afterCheckpoint: killAfter ? (epoch) => (String(epoch) === killAfter ? process.kill(process.pid, "SIGKILL") : undefined) : undefined,
    progress: tty
      ? (p) => {
          const now = Date.now();
          if (now - lastDraw < 100 && p.batch !== p.batches) return;
          lastDraw = now;
          const w = 24;
          const fill = Math.round((w * p.batch) / p.batches);
          process.stderr.write(
            `\r[${"#".repeat(fill)}${".".repeat(w - fill)}] epoch ${p.epoch + 1}/${p.epochs} batch ${p.batch}/${p.batches} ` +
              `${p.imagesPerSec.toFixed(0)} img/s loss ${p.loss.toFixed(3)} ETA ${p.etaSec.toFixed(0)} s\x1b[K`,
          );
          barShown = true;
        }
      : undefined,
  });
  clearBar();
  console.log(`done in ${r.seconds.toFixed(1)} s, ${r.labelPasses} label passes; outputs in ${r.exp}`);
  console.log(`self-labels vs true classes: ${fmt(r.selfLabels)}`);
  if (r.test) console.log(`test-set predictions: ${fmt(r.test)}`);
}
