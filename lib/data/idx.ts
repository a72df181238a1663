// IDX files (MNIST, Fashion-MNIST): {train,t10k}-images-idx3-ubyte and
// {train,t10k}-labels-idx1-ubyte, gzipped (.gz) or raw. The pixels stay in the
// decompressed file buffer; images are views at 16 + i * rows * cols.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { promisify } from "node:util";
import { InMemoryDataset, Split, uniformOffsets } from "./dataset";
import { BadFileError, EmptyDatasetError, TruncatedFileError } from "./errors";

const gunzip = promisify(zlib.gunzip);

export const FASHION_MNIST_CLASSES = [
  "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
];

/** Classes of the IDX data sets this reader finds ({train,t10k}-labels-idx1-ubyte: MNIST, Fashion-MNIST, KMNIST). */
export const IDX_CLASSES = 10;

const PREFIX: Record<Split, string> = { train: "train", test: "t10k" };

/** The images and labels file of a split in dir, or null. Accepts '-' or '.' before idx, .gz or raw. */
export function findIdxFiles(dir: string, split: Split): { images: string; labels: string | null } | null {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return null;
  }
  const pick = (kind: "images" | "labels", dims: number): string | null => {
    const re = new RegExp(`^${PREFIX[split]}-${kind}[-.]idx${dims}-ubyte(\\.gz)?$`);
    const hits = names.filter((n) => re.test(n)).sort(); // raw sorts before .gz: prefer raw
    return hits.length ? path.join(dir, hits[0]) : null;
  };
  const images = pick("images", 3);
  return images ? { images, labels: pick("labels", 1) } : null;
}

async function readMaybeGz(file: string): Promise<Buffer> {
  const raw = await fs.promises.readFile(file);
  const gz = raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b;
  if (!gz) return raw;
  try {
    return await gunzip(raw);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/unexpected end/i.test(msg)) throw new TruncatedFileError(file, `gzip stream ends early (${msg})`);
    throw new BadFileError(file, `gzip error: ${msg}`);
  }
}

/** Parse an IDX header: returns dims and the data offset. Checks the type byte and the length. */
export function parseIdx(file: string, buf: Uint8Array, expectDims: number): { dims: number[]; offset: number } {
  if (buf.length < 4) throw new TruncatedFileError(file, `${buf.length} bytes, shorter than the 4-byte IDX magic`);
  if (buf[0] !== 0 || buf[1] !== 0) throw new BadFileError(file, "bad IDX magic (first two bytes must be 0)");
  if (buf[2] !== 0x08) throw new BadFileError(file, `IDX element type 0x${buf[2].toString(16)} is not unsigned byte (0x08)`);
  const nd = buf[3];
  if (nd !== expectDims) throw new BadFileError(file, `IDX has ${nd} dimensions, expected ${expectDims}`);
  const offset = 4 + 4 * nd;
  if (buf.length < offset) throw new TruncatedFileError(file, `${buf.length} bytes, shorter than its ${offset}-byte header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const need = dims.reduce((a, b) => a * b, 1);
  if (buf.length - offset < need) {
    throw new TruncatedFileError(file, `header says ${dims.join("x")} = ${need} bytes of data, file has ${buf.length - offset}`);
  }
  return { dims, offset };
}

export async function loadIdx(dir: string, split: Split): Promise<InMemoryDataset> {
  const files = findIdxFiles(dir, split);
  if (!files) throw new EmptyDatasetError(dir, `no ${PREFIX[split]}-images-idx3-ubyte[.gz] for the ${split} split`);
  const ibuf = await readMaybeGz(files.images);
  const { dims, offset } = parseIdx(files.images, ibuf, 3);
  const [n, rows, cols] = dims;
  if (n === 0) throw new EmptyDatasetError(files.images, "the IDX header says 0 images");
  let labels: Int32Array | null = null;
  const hash = crypto.createHash("sha1");
  hash.update(ibuf.subarray(offset, offset + n * rows * cols));
  let nclasses = 0;
  if (files.labels) {
    const lbuf = await readMaybeGz(files.labels);
    const l = parseIdx(files.labels, lbuf, 1);
    if (l.dims[0] !== n) throw new BadFileError(files.labels, `${l.dims[0]} labels for ${n} images in ${path.basename(files.images)}`);
    labels = Int32Array.from(lbuf.subarray(l.offset, l.offset + n));
    hash.update(lbuf.subarray(l.offset, l.offset + n));
    // MNIST, Fashion-MNIST and KMNIST declare 10 classes; a label outside
    // them is corrupt data, not a new class
    nclasses = IDX_CLASSES;
    for (let i = 0; i < n; i++)
      if (labels[i] >= IDX_CLASSES)
        throw new BadFileError(files.labels, `label ${labels[i]} of image ${i} is outside the ${IDX_CLASSES} classes of MNIST-style data (corrupt labels file?)`);
  }
  const fashion = /fashion/i.test(path.resolve(dir));
  const name = fashion ? "fashion-mnist" : "mnist";
  const classes = fashion && nclasses <= 10 ? FASHION_MNIST_CLASSES.slice() : Array.from({ length: Math.max(nclasses, 0) }, (_, i) => String(i));
  return new InMemoryDataset({
    format: "idx",
    name,
    split,
    root: dir,
    channels: 1,
    layout: "HWC",
    data: ibuf,
    offsets: uniformOffsets(n, offset, rows * cols),
    heights: new Int32Array(n).fill(rows),
    widths: new Int32Array(n).fill(cols),
    labels,
    classes,
    paths: null,
    fingerprint: `idx:${name}:${split}:${n}x${rows}x${cols}:sha1=${hash.digest("hex").slice(0, 16)}`,
  });
}
