// Format detection for --data PATH, and openDataset(): the one entry point that
// turns (--data, --data-format, split) into a Dataset. No --data: the built-in
// synthetic set.
import * as fs from "node:fs";
import * as path from "node:path";
import { loadCifar, findCifarFiles } from "./cifar";
import { DATA_FORMATS, DataFormat, Dataset, Split } from "./dataset";
import { DataNotFoundError, DataUsageError, UnknownFormatError } from "./errors";
import { findIdxFiles, loadIdx } from "./idx";
import { ImageFolderOptions, loadImageFolder, looksLikeImageFolder } from "./imagefolder";
import { SyntheticOptions, loadSynthetic } from "./synthetic";

/** The ImageFolder options (cacheDir, workers, decodeTimeoutMs, ...) are ImageFolderOptions' own, written once there. */
export interface OpenDatasetOptions extends Omit<ImageFolderOptions, "split"> {
  /** Data path; omitted, null or "" means the built-in synthetic set. */
  data?: string | null;
  /** Force a format (--data-format); "auto" or omitted detects it. */
  format?: DataFormat | "auto";
  /** "train" (default) or "test"; "val" is the same as "test". */
  split?: Split | "val";
  /** Model input size; ImageFolder caches at shorter side round(inputSize * 256 / 224) unless shortSide is given. */
  inputSize?: number;
  synthetic?: SyntheticOptions;
}

/** The format of the data at p (a directory; a file inside one means its directory). */
export function detectFormat(p: string): DataFormat {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new DataNotFoundError(p);
  }
  const dir = st.isDirectory() ? p : path.dirname(p);
  if (findIdxFiles(dir, "train") || findIdxFiles(dir, "test")) return "idx";
  if (findCifarFiles(dir, "train")) return "cifar";
  if (st.isDirectory() && looksLikeImageFolder(dir)) return "imagefolder";
  let listing = "";
  try {
    const names = fs.readdirSync(dir).slice(0, 8);
    listing = names.length ? `found ${names.join(", ")}` : "the directory is empty";
  } catch {
    listing = "cannot list it";
  }
  throw new UnknownFormatError(p, listing);
}

export function parseSplit(split: string | undefined): Split {
  if (split === undefined || split === "train") return "train";
  if (split === "test" || split === "val") return "test";
  throw new DataUsageError(`unknown split '${split}'; use train or test (val is the same as test)`);
}

/** Short side the ImageFolder cache keeps for a model input size: torchvision's 256-for-224 ratio. */
export function cacheShortSide(inputSize: number): number {
  return Math.round((inputSize * 256) / 224);
}

export async function openDataset(opts: OpenDatasetOptions = {}): Promise<Dataset> {
  const split = parseSplit(opts.split);
  const fmt = opts.format ?? "auto";
  if (fmt !== "auto" && !DATA_FORMATS.includes(fmt)) {
    throw new UnknownFormatError(opts.data ?? "(none)", `--data-format '${fmt}' is not one of auto, ${DATA_FORMATS.join(", ")}`);
  }
  if (!opts.data) {
    if (fmt !== "auto" && fmt !== "synthetic") throw new DataUsageError(`--data-format ${fmt} needs --data PATH`);
    return loadSynthetic(split, opts.synthetic);
  }
  const p = path.resolve(opts.data);
  if (!fs.existsSync(p)) throw new DataNotFoundError(opts.data);
  const format = fmt === "auto" ? detectFormat(p) : fmt;
  const dir = fs.statSync(p).isDirectory() ? p : path.dirname(p);
  switch (format) {
    case "idx":
      return loadIdx(dir, split);
    case "cifar":
      return loadCifar(dir, split);
    case "synthetic":
      throw new DataUsageError("--data-format synthetic takes no --data path");
    case "imagefolder": {
      if (!fs.statSync(p).isDirectory()) throw new UnknownFormatError(opts.data, "an ImageFolder must be a directory");
      const ifo: ImageFolderOptions = {
        split,
        shortSide: opts.shortSide ?? (opts.inputSize ? cacheShortSide(opts.inputSize) : 256),
        cacheDir: opts.cacheDir,
        workers: opts.workers,
        decodeTimeoutMs: opts.decodeTimeoutMs,
        maxMemoryBytes: opts.maxMemoryBytes,
        onProgress: opts.onProgress,
        onWarning: opts.onWarning,
      };
      return (await loadImageFolder(p, ifo)).dataset;
    }
  }
}
