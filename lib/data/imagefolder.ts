// ImageFolder: ROOT/train/<class>/<image> (and ROOT/val/... for the test split),
// or a plain ROOT/<class>/<image>. Classes sorted by name, files sorted within
// each class folder (walked recursively), so indices are stable (torchvision's
// rule). Images are decoded once (JPEGs by the addon's libjpeg decoder where it
// is built, else and for other files sharp when installed, else jimp:
// decoders.ts), resized so the
// shorter side is at most `shortSide` (PIL-style antialiased bilinear, native;
// a large JPEG is shrunk on load first),
// stored as uint8 RGB HWC, and cached on disk:
//   <cacheDir>/imagefolder-<key>.u8    the pixels, image after image
//   <cacheDir>/imagefolder-<key>.json  sizes, labels, paths, skipped files
// key = sha256 of (cache version, shortSide, every file's relative path, size
// and mtime), so any change to the files makes a new cache. The .json is
// written last (after an atomic rename), so its presence means complete.
// An image that fails to decode is skipped with one warning, counted, and
// listed in the .json so later runs report it too.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { native } from "../binding";
import { Dataset, InMemoryDataset, SourceBatch, Split } from "./dataset";
import { DataError, DataUsageError, EmptyDatasetError } from "./errors";
import { DecodePool } from "./decode_pool";
import { cacheSize, resizedSize } from "./decoders";

export { resizedSize };

export const IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff"];
const CACHE_VERSION = 1;

export interface ImageFolderFile {
  rel: string; // relative to the split directory, '/'-separated
  label: number;
  size: number;
  mtimeMs: number;
}

export interface ImageFolderScan {
  dir: string; // the split directory
  classes: string[];
  files: ImageFolderFile[];
}

export interface ImageFolderOptions {
  split: Split;
  /** Cached images are shrunk so the shorter side is at most this (default 256). */
  shortSide?: number;
  /** Default: $SELFLABEL_CACHE_DIR, else $XDG_CACHE_HOME/selflabel-native, else ~/.cache/selflabel-native. */
  cacheDir?: string;
  /** Decoding threads (worker_threads); default min(4, CPUs). */
  workers?: number;
  /** A file still decoding after this many ms is skipped as undecodable and its decoder thread replaced (default 120000). */
  decodeTimeoutMs?: number;
  /** Keep the cache in memory when it is at most this many bytes (default 2 GiB); otherwise read per batch. */
  maxMemoryBytes?: number;
  onProgress?: (done: number, total: number) => void;
  onWarning?: (message: string) => void;
}

export function defaultCacheDir(): string {
  if (process.env.SELFLABEL_CACHE_DIR) return process.env.SELFLABEL_CACHE_DIR;
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg && xdg.length ? xdg : path.join(os.homedir(), ".cache"), "selflabel-native");
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(name).toLowerCase());
}

/** The directory holding the class folders of a split. */
export function splitDir(root: string, split: Split): string {
  if (isDir(path.join(root, "train"))) {
    if (split === "train") return path.join(root, "train");
    for (const d of ["val", "test"]) if (isDir(path.join(root, d))) return path.join(root, d);
    throw new DataUsageError(`'${root}' has train/ but no val/ or test/ folder for the test split; add one or evaluate on train`);
  }
  if (split === "test") throw new DataUsageError(`'${root}' is a plain ImageFolder (no train/ and val/); it has no test split`);
  return root;
}

/** Does dir look like an ImageFolder (class folders holding image files, directly or under train/)? */
export function looksLikeImageFolder(root: string): boolean {
  const dir = isDir(path.join(root, "train")) ? path.join(root, "train") : root;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  return entries.some((e) => e.isDirectory() && !e.name.startsWith("."));
}

function walk(dir: string, relBase: string, out: { rel: string; full: string }[]): void {
  const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith(".")) continue;
    const full = path.join(dir, e.name);
    const rel = relBase ? relBase + "/" + e.name : e.name;
    let isDirectory = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      try {
        const st = fs.statSync(full);
        isDirectory = st.isDirectory();
        isFile = st.isFile();
      } catch {
        continue; // dangling link
      }
    }
    if (isDirectory) walk(full, rel, out);
    else if (isFile && isImageName(e.name)) out.push({ rel, full });
  }
}

export function scanImageFolder(root: string, split: Split): ImageFolderScan {
  const dir = splitDir(root, split);
  const classes = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => !e.name.startsWith(".") && (e.isDirectory() || (e.isSymbolicLink() && isDir(path.join(dir, e.name)))))
    .map((e) => e.name)
    .sort();
  if (classes.length === 0) throw new EmptyDatasetError(dir, "no class folders; an ImageFolder is <root>/<class>/<image> (or <root>/train/<class>/<image>)");
  const files: ImageFolderFile[] = [];
  const empty: string[] = [];
  classes.forEach((cls, label) => {
    const found: { rel: string; full: string }[] = [];
    walk(path.join(dir, cls), cls, found);
    if (found.length === 0) empty.push(cls);
    for (const f of found) {
      const st = fs.statSync(f.full);
      files.push({ rel: f.rel, label, size: st.size, mtimeMs: Math.floor(st.mtimeMs) });
    }
  });
  if (empty.length) {
    const list = empty.length > 5 ? empty.slice(0, 5).join(", ") + `, ... (${empty.length} in all)` : empty.join(", ");
    throw new EmptyDatasetError(
      dir,
      `class folder(s) ${list} hold no images (${IMAGE_EXTENSIONS.join(" ")}); remove the empty folders or add images`,
    );
  }
  return { dir, classes, files };
}

export function cacheKey(scan: ImageFolderScan, shortSide: number): string {
  const h = crypto.createHash("sha256");
  h.update(`selflabel-imagefolder-cache v${CACHE_VERSION}\nshort=${shortSide}\nclasses=${JSON.stringify(scan.classes)}\n`);
  for (const f of scan.files) h.update(`${f.rel}\t${f.size}\t${f.mtimeMs}\n`);
  return h.digest("hex").slice(0, 32);
}

interface CacheMeta {
  version: number;
  key: string;
  dir: string;
  shortSide: number;
  classes: string[];
  paths: string[];
  labels: number[];
  heights: number[];
  widths: number[];
  bytes: number;
  skipped: { path: string; reason: string }[];
}

/** The default limit on one file's decode (ImageFolderOptions.decodeTimeoutMs). */
export const DECODE_TIMEOUT_MS = 120_000;

/**
 * Append an image's pixels to the cache file being built, synchronously: the
 * write lands in the page cache, and an asynchronous write took twice the CPU
 * (0.16-0.53 against 0.07-0.14 ms per 245 KB image) and a thread of the pool
 * sharp decodes on. A failure (disk full, ...) names the file and the bytes.
 */
function writePixels(fd: number, px: Uint8Array, file: string): void {
  try {
    for (let off = 0; off < px.length; ) off += fs.writeSync(fd, px, off, px.length - off);
  } catch (e) {
    const x = e as NodeJS.ErrnoException;
    const why = x.code === "ENOSPC" || x.code === "EDQUOT" ? `no space left on the device (${x.code})` : (x.code ?? x.message);
    throw new DataError(
      "SLN_CACHE_UNWRITABLE",
      `${file}: cannot write ${px.length} bytes of the image cache (${why}); free some space, or set --cache-dir or SELFLABEL_CACHE_DIR to another directory`,
    );
  }
}

function cachePaths(cacheDir: string, key: string): { meta: string; data: string } {
  return { meta: path.join(cacheDir, `imagefolder-${key}.json`), data: path.join(cacheDir, `imagefolder-${key}.u8`) };
}

/** Decode every image of the scan into the cache (or find it there). Returns the cache's metadata path. */
export async function buildImageFolderCache(
  scan: ImageFolderScan,
  opts: ImageFolderOptions,
): Promise<{ meta: CacheMeta; dataPath: string; built: boolean }> {
  const shortSide = opts.shortSide ?? 256;
  if (!Number.isInteger(shortSide) || shortSide < 1) throw new DataUsageError(`imagefolder: shortSide must be a positive integer, got ${shortSide}`);
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const key = cacheKey(scan, shortSide);
  const p = cachePaths(cacheDir, key);
  try {
    const meta = JSON.parse(await fs.promises.readFile(p.meta, "utf8")) as CacheMeta;
    const st = await fs.promises.stat(p.data);
    if (meta.version === CACHE_VERSION && meta.key === key && st.size === meta.bytes) {
      return { meta, dataPath: p.data, built: false };
    }
  } catch {
    /* no usable cache: build it */
  }
  try {
    await fs.promises.mkdir(cacheDir, { recursive: true });
  } catch (e) {
    throw new DataError("SLN_CACHE_UNWRITABLE", `cannot create the image cache directory '${cacheDir}' (${(e as Error).message}); set --cache-dir or SELFLABEL_CACHE_DIR to a writable directory`);
  }
  const tmp = `${p.data}.${process.pid}.${Date.now()}.tmp`;
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(tmp, "w");
  } catch (e) {
    throw new DataError("SLN_CACHE_UNWRITABLE", `cannot write the image cache in '${cacheDir}' (${(e as Error).message}); set --cache-dir or SELFLABEL_CACHE_DIR to a writable directory`);
  }
  const nworkers = Math.max(1, Math.min(opts.workers ?? Math.min(4, os.cpus().length), scan.files.length));
  // decode with a bounded window ahead; write strictly in index order
  const window = nworkers * 4;
  const pool = new DecodePool(nworkers, shortSide, opts.decodeTimeoutMs ?? DECODE_TIMEOUT_MS, window);
  const warn = opts.onWarning ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  const meta: CacheMeta = {
    version: CACHE_VERSION, key, dir: scan.dir, shortSide, classes: scan.classes,
    paths: [], labels: [], heights: [], widths: [], bytes: 0, skipped: [],
  };
  const total = scan.files.length;
  let done = 0;
  try {
    const results: Promise<{ rgb: Uint8Array; h: number; w: number } | { error: string }>[] = [];
    const start = (i: number) => {
      const f = scan.files[i];
      results[i] = pool.decode(path.join(scan.dir, f.rel)).then(async (r) => {
        if (!r.ok) return { error: r.error };
        const px = r.pixels;
        if (r.resized) return { rgb: px, h: r.height, w: r.width }; // sharp shrank it on load (decoders.ts)
        const [h, w] = cacheSize(r.height, r.width, shortSide);
        if (r.channels === 3 && h === r.height && w === r.width) return { rgb: px, h, w };
        const rgb = await native().resizeU8(px, r.height, r.width, r.channels, 3, h, w);
        return { rgb, h, w };
      });
      results[i].catch(() => undefined); // awaited in order below; this only covers an early exit
    };
    for (let i = 0; i < Math.min(window, total); i++) start(i);
    for (let i = 0; i < total; i++) {
      const r = await results[i];
      delete results[i];
      if (i + window < total) start(i + window);
      const f = scan.files[i];
      if ("error" in r) {
        warn(`skipping ${path.join(scan.dir, f.rel)}: cannot decode (${r.error})`);
        meta.skipped.push({ path: f.rel, reason: r.error });
      } else {
        writePixels(fh.fd, r.rgb, tmp);
        pool.buffers.give(r.rgb);
        meta.paths.push(f.rel);
        meta.labels.push(f.label);
        meta.heights.push(r.h);
        meta.widths.push(r.w);
        meta.bytes += r.rgb.length;
      }
      done++;
      opts.onProgress?.(done, total);
    }
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw e;
  } finally {
    await pool.close();
  }
  if (meta.paths.length === 0) {
    await fs.promises.rm(tmp, { force: true });
    throw new EmptyDatasetError(scan.dir, `none of the ${total} image files could be decoded (first: ${meta.skipped[0]?.reason}); check the files`);
  }
  const metaTmp = `${p.meta}.${process.pid}.tmp`;
  await fs.promises.rename(tmp, p.data);
  await fs.promises.writeFile(metaTmp, JSON.stringify(meta));
  await fs.promises.rename(metaTmp, p.meta);
  return { meta, dataPath: p.data, built: true };
}

/** An ImageFolder whose cache stays on disk: read() fetches just the requested images. */
export class FileDataset implements Dataset {
  readonly format = "imagefolder" as const;
  readonly layout = "HWC" as const;
  readonly channels = 3 as const;
  readonly height: number = 0;
  readonly width: number = 0;
  readonly count: number;
  private readonly offsets: Float64Array;
  private fh: fs.promises.FileHandle | null = null;

  constructor(
    readonly name: string,
    readonly split: Split,
    readonly root: string,
    readonly heights: Int32Array,
    readonly widths: Int32Array,
    readonly labels: Int32Array,
    readonly classes: string[],
    readonly paths: string[],
    readonly fingerprint: string,
    readonly skipped: number,
    private readonly dataPath: string,
  ) {
    this.count = heights.length;
    this.offsets = new Float64Array(this.count);
    let off = 0;
    for (let i = 0; i < this.count; i++) {
      this.offsets[i] = off;
      off += heights[i] * widths[i] * 3;
    }
  }

  async read(indices: Int32Array): Promise<SourceBatch> {
    if (!this.fh) this.fh = await fs.promises.open(this.dataPath, "r");
    const k = indices.length;
    const offsets = new Float64Array(k);
    const heights = new Int32Array(k);
    const widths = new Int32Array(k);
    let total = 0;
    for (let j = 0; j < k; j++) {
      const i = indices[j];
      if (!(i >= 0 && i < this.count)) throw new RangeError(`dataset.read: index ${i} out of range [0, ${this.count})`);
      offsets[j] = total;
      heights[j] = this.heights[i];
      widths[j] = this.widths[i];
      total += heights[j] * widths[j] * 3;
    }
    const data = new Uint8Array(total);
    const fh = this.fh;
    await Promise.all(
      Array.from(indices, (i, j) => fh.read(data, offsets[j], heights[j] * widths[j] * 3, this.offsets[i])),
    );
    return { data, offsets, heights, widths };
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    if (fh) await fh.close();
  }
}

/**
 * The cache file in memory, in the addon's allocPages memory (huge pages where
 * the kernel gives them): on the VM of docs/benchmarks.md, reading 76 MB into
 * a fresh buffer of 4 KiB pages cost about 1 ms of CPU per 320x256 image in
 * page faults, as much as decoding it.
 */
export async function readCache(file: string, bytes: number): Promise<Uint8Array> {
  if (bytes === 0) return new Uint8Array(0);
  const data = new Uint8Array(native().allocPages(bytes));
  const fh = await fs.promises.open(file, "r");
  try {
    for (let off = 0; off < bytes; ) {
      const { bytesRead } = await fh.read(data, off, Math.min(bytes - off, 1 << 28), off);
      if (bytesRead === 0) throw new DataError("SLN_CACHE_CORRUPT", `${file}: the image cache ends at byte ${off} of ${bytes}; delete it to rebuild`);
      off += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return data;
}

export interface ImageFolderResult {
  dataset: Dataset;
  cachePath: string;
  built: boolean;
}

export async function loadImageFolder(root: string, opts: ImageFolderOptions): Promise<ImageFolderResult> {
  const scan = scanImageFolder(root, opts.split);
  const { meta, dataPath, built } = await buildImageFolderCache(scan, opts);
  const warn = opts.onWarning ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  if (meta.skipped.length) {
    if (!built) for (const s of meta.skipped) warn(`skipping ${path.join(scan.dir, s.path)}: cannot decode (${s.reason})`);
    warn(`${meta.skipped.length} of ${scan.files.length} images in '${scan.dir}' could not be decoded and were skipped`);
  }
  const n = meta.paths.length;
  const heights = Int32Array.from(meta.heights);
  const widths = Int32Array.from(meta.widths);
  const labels = Int32Array.from(meta.labels);
  const name = `imagefolder:${path.basename(path.resolve(root))}`;
  const fingerprint = `imagefolder:${opts.split}:${n}:short=${meta.shortSide}:key=${meta.key}`;
  const maxMem = opts.maxMemoryBytes ?? 2 * 1024 * 1024 * 1024;
  let dataset: Dataset;
  if (meta.bytes <= maxMem) {
    const data = await readCache(dataPath, meta.bytes);
    const offsets = new Float64Array(n);
    let off = 0;
    for (let i = 0; i < n; i++) {
      offsets[i] = off;
      off += heights[i] * widths[i] * 3;
    }
    dataset = new InMemoryDataset({
      format: "imagefolder", name, split: opts.split, root: scan.dir, channels: 3, layout: "HWC",
      data, offsets, heights, widths, labels, classes: meta.classes, paths: meta.paths, fingerprint,
      skipped: meta.skipped.length,
    });
  } else {
    dataset = new FileDataset(name, opts.split, scan.dir, heights, widths, labels, meta.classes, meta.paths, fingerprint, meta.skipped.length, dataPath);
  }
  return { dataset, cachePath: dataPath, built };
}
