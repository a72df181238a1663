// CIFAR-10/100 binary batches. CIFAR-10: data_batch_1..5.bin (train) and
// test_batch.bin, records of 1 label byte + 3072 pixel bytes (CHW, 32x32).
// CIFAR-100: train.bin / test.bin, records of coarse + fine label bytes + 3072
// (labels are the fine ones). Also accepted: the directory above
// cifar-10-batches-bin/ or cifar-100-binary/. Pixels stay in the file buffer.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { InMemoryDataset, Split } from "./dataset";
import { EmptyDatasetError, TruncatedFileError, BadFileError } from "./errors";

const PIXELS = 3072;

export const CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

export interface CifarFiles {
  dir: string;
  variant: "cifar-10" | "cifar-100";
  files: string[];
}

export function findCifarFiles(dir: string, split: Split): CifarFiles | null {
  for (const d of [dir, path.join(dir, "cifar-10-batches-bin"), path.join(dir, "cifar-100-binary")]) {
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      continue;
    }
    const batches = names.filter((n) => /^data_batch_\d+\.bin$/.test(n));
    if (batches.length || names.includes("test_batch.bin")) {
      const files =
        split === "train"
          ? batches.sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]))
          : names.filter((n) => n === "test_batch.bin");
      return { dir: d, variant: "cifar-10", files: files.map((f) => path.join(d, f)) };
    }
    if (names.includes("train.bin") || names.includes("test.bin")) {
      const f = split === "train" ? "train.bin" : "test.bin";
      return { dir: d, variant: "cifar-100", files: names.includes(f) ? [path.join(d, f)] : [] };
    }
  }
  return null;
}

function readNames(file: string): string[] | null {
  try {
    const names = fs.readFileSync(file, "utf8").split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
    return names.length ? names : null;
  } catch {
    return null;
  }
}

export async function loadCifar(dir: string, split: Split): Promise<InMemoryDataset> {
  const found = findCifarFiles(dir, split);
  if (!found) throw new EmptyDatasetError(dir, "no CIFAR binary batches (data_batch_N.bin, test_batch.bin, train.bin, test.bin)");
  if (found.files.length === 0) throw new EmptyDatasetError(found.dir, `no ${found.variant} files for the ${split} split`);
  const labelBytes = found.variant === "cifar-10" ? 1 : 2;
  const rec = labelBytes + PIXELS;
  const bufs: Buffer[] = [];
  for (const f of found.files) {
    const b = await fs.promises.readFile(f);
    if (b.length === 0 || b.length % rec !== 0) {
      throw new TruncatedFileError(f, `${b.length} bytes is not a whole number of ${rec}-byte ${found.variant} records`);
    }
    bufs.push(b);
  }
  const data = bufs.length === 1 ? bufs[0] : Buffer.concat(bufs);
  const n = data.length / rec;
  const offsets = new Float64Array(n);
  const labels = new Int32Array(n);
  let maxLabel = 0;
  for (let i = 0; i < n; i++) {
    offsets[i] = i * rec + labelBytes;
    labels[i] = data[i * rec + labelBytes - 1];
    if (labels[i] > maxLabel) maxLabel = labels[i];
  }
  const limit = found.variant === "cifar-10" ? 10 : 100;
  if (maxLabel >= limit) throw new BadFileError(found.files[0], `label ${maxLabel} is out of range for ${found.variant} (< ${limit})`);
  const classes =
    found.variant === "cifar-10"
      ? readNames(path.join(found.dir, "batches.meta.txt")) ?? CIFAR10_CLASSES.slice()
      : readNames(path.join(found.dir, "fine_label_names.txt")) ?? Array.from({ length: 100 }, (_, i) => String(i));
  const hash = crypto.createHash("sha1").update(data).digest("hex").slice(0, 16);
  return new InMemoryDataset({
    format: "cifar",
    name: found.variant,
    split,
    root: found.dir,
    channels: 3,
    layout: "CHW",
    data,
    offsets,
    heights: new Int32Array(n).fill(32),
    widths: new Int32Array(n).fill(32),
    labels,
    classes,
    paths: null,
    fingerprint: `cifar:${found.variant}:${split}:${n}x3x32x32:sha1=${hash}`,
  });
}
