// `selflabel-native prepare --data PATH`: decode an ImageFolder once into the
// on-disk uint8 cache (with a progress bar), so training starts without
// decoding; for IDX and CIFAR data (nothing to cache) it checks the files.
import * as path from "node:path";
import type { ArgumentsCamelCase, Argv } from "yargs";
import { DATA_FORMATS, DataFormat, Dataset, Split } from "../data/dataset";
import { cacheShortSide, detectFormat } from "../data/detect";
import { DataNotFoundError, DataUsageError } from "../data/errors";
import { loadImageFolder, defaultCacheDir } from "../data/imagefolder";
import { loadIdx } from "../data/idx";
import { loadCifar } from "../data/cifar";
import * as fs from "node:fs";

export const command = "prepare";
export const describe = "Decode an ImageFolder once into the image cache (IDX/CIFAR: check the files)";

export interface PrepareArgs {
  data: string;
  dataFormat: string;
  inputSize: number;
  split: string;
  cacheDir?: string;
  workers?: number;
}

export function builder(y: Argv): Argv<PrepareArgs> {
  return y
    .option("data", { alias: "imagenet-path", type: "string", demandOption: true, describe: "data directory (ImageFolder, IDX or CIFAR)" })
    .option("data-format", { type: "string", choices: ["auto", ...DATA_FORMATS.filter((f) => f !== "synthetic")], default: "auto", describe: "force the data format" })
    .option("input-size", { type: "number", default: 224, describe: "model input size; the cache keeps the shorter side at round(size * 256 / 224)" })
    .option("split", { type: "string", choices: ["train", "test", "val", "all"], default: "all", describe: "which split to prepare (all: train and, when present, val/test)" })
    .option("cache-dir", { type: "string", describe: `image cache directory (default $SELFLABEL_CACHE_DIR or ${defaultCacheDir()})` })
    .option("workers", { type: "number", describe: "decoding threads (default min(4, CPUs))" }) as unknown as Argv<PrepareArgs>;
}

/** A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise. */
export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr): (done: number, total: number) => void {
  const t0 = Date.now();
  let lastTenth = -1;
  let lastDraw = 0;
  return (done, total) => {
    const now = Date.now();
    const rate = done / Math.max(1e-3, (now - t0) / 1000);
    const text = `${label} ${done}/${total} images, ${rate.toFixed(0)} img/s`;
    if (stream.isTTY) {
      if (done !== total && now - lastDraw < 100) return;
      lastDraw = now;
      const width = 30;
      const fill = Math.round((width * done) / Math.max(1, total));
      stream.write(`\r[${"#".repeat(fill)}${".".repeat(width - fill)}] ${text}`);
      if (done === total) stream.write("\n");
    } else {
      const tenth = Math.floor((10 * done) / Math.max(1, total));
      if (tenth !== lastTenth || done === total) {
        lastTenth = tenth;
        stream.write(`${text}\n`);
      }
    }
  };
}

function summary(ds: Dataset): string {
  const size = ds.height ? `${ds.channels}x${ds.height}x${ds.width}` : `${ds.channels} channels, sizes vary`;
  const skipped = ds.skipped ? `, ${ds.skipped} skipped (undecodable)` : "";
  return `${ds.name} ${ds.split}: ${ds.count} images (${size}), ${ds.classes.length} classes${skipped}; fingerprint ${ds.fingerprint}`;
}

export async function prepare(
  args: PrepareArgs,
  log: (line: string) => void = (l) => process.stdout.write(l + "\n"),
  progress: (label: string) => (done: number, total: number) => void = progressBar,
): Promise<Dataset[]> {
  const p = path.resolve(args.data);
  if (!fs.existsSync(p)) throw new DataNotFoundError(args.data);
  if (!Number.isInteger(args.inputSize) || args.inputSize < 1) throw new DataUsageError(`--input-size must be a positive integer, got ${args.inputSize}`);
  const format: DataFormat = args.dataFormat === "auto" ? detectFormat(p) : (args.dataFormat as DataFormat);
  if (format === "synthetic") throw new DataUsageError("prepare: the synthetic set is generated in memory and needs no preparing");
  const dir = fs.statSync(p).isDirectory() ? p : path.dirname(p);
  const splits: Split[] = args.split === "all" ? ["train", "test"] : [args.split === "train" ? "train" : "test"];
  const out: Dataset[] = [];
  for (const split of splits) {
    let ds: Dataset;
    try {
      if (format === "imagefolder") {
        const r = await loadImageFolder(p, {
          split,
          shortSide: cacheShortSide(args.inputSize),
          cacheDir: args.cacheDir,
          workers: args.workers,
          onProgress: progress(`decoding ${split}`),
        });
        ds = r.dataset;
        log(`${summary(ds)}\ncache: ${r.cachePath} (${r.built ? "built" : "already up to date"})`);
      } else {
        ds = format === "idx" ? await loadIdx(dir, split) : await loadCifar(dir, split);
        log(`${summary(ds)}\n${format} data is read directly; no cache needed`);
      }
    } catch (e) {
      // "all" asks for the test split only where there is one
      if (args.split === "all" && split === "test" && e instanceof Error && ["SLN_DATA_USAGE", "SLN_EMPTY_DATASET"].includes((e as { code?: string }).code ?? "")) {
        log(`no test split: ${e.message}`);
        continue;
      }
      throw e;
    }
    out.push(ds);
    await ds.close();
  }
  return out;
}

export async function handler(argv: ArgumentsCamelCase<PrepareArgs>): Promise<void> {
  await prepare(argv);
}
