// Fuzz targets: for each parser a set of valid seed inputs, a structure-aware
// mutator on top of the byte mutator, and the call that parses one input the
// way the package does. A target returns normally (accepted) or throws; the
// driver classifies what it throws (see child.ts).
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { Jimp } from "jimp";
import { Prng } from "../../lib/prng";
import { decode as decodeSafetensors, encode as encodeSafetensors } from "../../lib/safetensors";
import { decodePth, weightsFrom } from "../../lib/pth";
import { openDataset } from "../../lib/data";
import { checkImagePixels } from "../../lib/data/image_limits";
import { decodeJpegNative } from "../../lib/data/decoders";
import { readCheckpoint, writeCheckpoint, FORMAT, CheckpointMeta } from "../../lib/train/checkpoint";
import { validateCheckpoint } from "../../lib/train/resume";
import { labelTimes } from "../../lib/train/schedule";
import { pth, zip, idx, statePickle } from "../../test/helpers/craft";
import { mutate } from "./mutate";

export interface Target {
  name: string;
  /** Valid inputs to mutate. */
  seeds(): Promise<Buffer[]>;
  /** Optional structure-aware mutation (else bytes only). */
  mutate?(seed: Buffer, rng: Prng): Buffer;
  /** Parse one input; `file` is the name it must carry in its errors. */
  run(input: Buffer, dir: string): Promise<{ file: string }>;
  /** Errors that must name the file: true for every parser whose caller does not add the name itself. */
  namesFile: boolean;
}

// ---------------------------------------------------------------- IDX

const idxSeed = () => {
  const n = 12,
    r = 4,
    c = 4;
  const px = new Uint8Array(n * r * c).map((_, i) => (i * 29) & 255);
  return { images: idx([n, r, c], px), labels: idx([n], new Uint8Array(n).map((_, i) => i % 10)) };
};

const idxTarget: Target = {
  name: "idx",
  namesFile: true,
  async seeds() {
    const s = idxSeed();
    // [0]: images, [1]: labels, [2]: gzipped images
    return [s.images, s.labels, zlib.gzipSync(s.images)];
  },
  mutate(seed, rng) {
    return mutate(seed, rng);
  },
  async run(input, dir) {
    // the input replaces the images file or the labels file (the other stays valid)
    const s = idxSeed();
    const isLabels = input.length >= 4 && input[3] === 1;
    const images = path.join(dir, "train-images-idx3-ubyte");
    const labels = path.join(dir, "train-labels-idx1-ubyte");
    fs.writeFileSync(images, isLabels ? s.images : input);
    fs.writeFileSync(labels, isLabels ? input : s.labels);
    const ds = await openDataset({ data: dir, format: "idx" });
    try {
      if (ds.count > 0) ds.read(Int32Array.from([0, ds.count - 1]));
    } finally {
      await ds.close();
    }
    return { file: isLabels ? labels : images };
  },
};

// ---------------------------------------------------------------- CIFAR

const cifarTarget: Target = {
  name: "cifar",
  namesFile: true,
  async seeds() {
    const rec = 3073;
    const b = Buffer.alloc(4 * rec);
    for (let i = 0; i < 4; i++) {
      b[i * rec] = i % 10;
      for (let j = 1; j < rec; j++) b[i * rec + j] = (i * 7 + j) & 255;
    }
    return [b];
  },
  async run(input, dir) {
    const f = path.join(dir, "data_batch_1.bin");
    fs.writeFileSync(f, input);
    const ds = await openDataset({ data: dir, format: "cifar" });
    try {
      if (ds.count > 0) ds.read(Int32Array.from([0, ds.count - 1]));
    } finally {
      await ds.close();
    }
    return { file: f };
  },
};

// ---------------------------------------------------------------- safetensors

const stSeed = () =>
  encodeSafetensors(
    {
      "a.weight": { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
      "b.bias": { shape: [3], data: new Float64Array([1, 2, 3]) },
      labels: { shape: [4], data: new Int32Array([0, 1, 2, 3]) },
      empty: { shape: [0, 4], data: new Float32Array(0) },
    },
    { format: "x", note: "seed" },
  );

/** Mutate the JSON header's values (numbers, nulls, nested arrays, keys) and re-serialise. */
function mutateSafetensorsHeader(seed: Buffer, rng: Prng): Buffer {
  try {
    return mutateHeaderValues(seed, rng);
  } catch {
    return mutate(seed, rng); // the header was not one this mutator understands
  }
}

function mutateHeaderValues(seed: Buffer, rng: Prng): Buffer {
  const hlen = Number(seed.readBigUInt64LE(0));
  let header: Record<string, any>;
  try {
    header = JSON.parse(seed.subarray(8, 8 + hlen).toString());
  } catch {
    return mutate(seed, rng);
  }
  const weird = [0, -1, 1, -16, 8, 2 ** 31, 2 ** 32, 2 ** 53, 1e300, -1e300, 0.5, null, "7", [], {}, [0, 1e300], [null], true];
  const pick = <T>(a: T[]) => a[rng.nextU32() % a.length];
  const keys = Object.keys(header);
  for (let m = 1 + (rng.nextU32() % 3); m > 0; m--) {
    const k = pick(keys);
    const v = header[k];
    const r = rng.nextU32() % 8;
    if (r === 0) header[k] = pick(weird);
    else if (v && typeof v === "object" && !Array.isArray(v)) {
      const f = pick([...Object.keys(v), "dtype", "shape", "data_offsets"]);
      if (Array.isArray(v[f]) && v[f].length && r < 5) v[f][rng.nextU32() % v[f].length] = pick(weird);
      else if (r === 5) v[f] = pick(["F32", "F64", "I32", "I64", "U8", "BF16", "F16", "x", "__proto__"]);
      else v[f] = pick(weird);
    } else header[pick(["__metadata__", "__proto__", "constructor", "z"])] = pick(weird);
  }
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, seed.subarray(8 + hlen)]);
}

const safetensorsTarget: Target = {
  name: "safetensors",
  namesFile: true,
  async seeds() {
    return [stSeed()];
  },
  mutate(seed, rng) {
    return rng.nextU32() % 2 ? mutateSafetensorsHeader(seed, rng) : mutate(seed, rng);
  },
  async run(input) {
    const file = "/fuzz/input.safetensors";
    decodeSafetensors(input, file);
    return { file };
  },
};

// ---------------------------------------------------------------- .pth

const pthRecords = [
  { key: "features.0.weight", storage: "0", numel: 24, size: [2, 3, 2, 2], stride: [12, 4, 2, 1] },
  { key: "features.0.bias", storage: "1", numel: 2, size: [2], stride: [1] },
  { key: "top_layer.weight", storage: "2", numel: 6, size: [3, 2], stride: [1, 3] },
];

/** Mutate the pickle (bytes and integers) and rebuild the zip with right CRCs, so mutations reach the pickle machine. */
function mutatePthStructure(rng: Prng): Buffer {
  const recs = pthRecords.map((r) => ({ ...r, size: [...r.size], stride: [...r.stride] }));
  const weird = [0, 1, 2, 3, 7, 2 ** 30, 2 ** 31 - 1, 2 ** 32, 2e9, 2 ** 53];
  const r = rng.nextU32() % 4;
  const t = recs[rng.nextU32() % recs.length];
  if (r === 0) t.size[rng.nextU32() % t.size.length] = weird[rng.nextU32() % weird.length];
  else if (r === 1) t.stride[rng.nextU32() % t.stride.length] = weird[rng.nextU32() % weird.length];
  else if (r === 2) (t as { offset?: number }).offset = weird[rng.nextU32() % weird.length];
  else t.numel = weird[rng.nextU32() % weird.length] % 4096;
  let pickle = statePickle(recs);
  if (rng.nextU32() % 2) pickle = mutate(pickle, rng);
  const items = [{ name: "archive/data.pkl", data: pickle, deflate: rng.nextU32() % 4 === 0 }];
  for (const k of ["0", "1", "2"]) {
    const f = new Float32Array(k === "0" ? 24 : k === "1" ? 2 : 6).map((_, i) => i);
    items.push({ name: `archive/data/${k}`, data: Buffer.from(f.buffer), deflate: rng.nextU32() % 4 === 0 });
  }
  return zip(items);
}

const pthTarget: Target = {
  name: "pth",
  namesFile: true,
  async seeds() {
    return [pth(pthRecords)];
  },
  mutate(seed, rng) {
    return rng.nextU32() % 2 ? mutatePthStructure(rng) : mutate(seed, rng);
  },
  async run(input) {
    const file = "/fuzz/input.pth";
    weightsFrom(decodePth(input, file), file);
    return { file };
  },
};

// ---------------------------------------------------------------- checkpoints

const CK_N = 20;
function ckSeed(dir: string): Buffer {
  const f = path.join(dir, "seed.safetensors");
  const times = labelTimes(2, CK_N, 3);
  const meta: CheckpointMeta = {
    format: FORMAT,
    epoch: 1,
    arch: "smallcnn",
    numClasses: [4],
    inputShape: [3, 8, 8],
    fingerprint: "fp",
    flags: { epochs: 2, nopts: 3 },
    labelTimes: times.slice(2),
    seen: CK_N,
    prng: null,
    loss: 1.5,
    lrDropNext: false,
    extra: { warm: [null], passes: 2, bestLoss: 1.5, step: 2 },
  };
  writeCheckpoint(f, {
    meta,
    params: { "w.weight": new Float32Array(8).fill(0.5) },
    momentum: { "w.weight": new Float32Array(8) },
    labels: [new Int32Array(CK_N).map((_, i) => i % 4)],
  });
  return fs.readFileSync(f);
}

const checkpointTarget: Target = {
  name: "checkpoint",
  namesFile: true,
  async seeds() {
    const d = fs.mkdtempSync(path.join(require("node:os").tmpdir(), "sln-fuzz-ck-"));
    try {
      return [ckSeed(d)];
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  },
  mutate(seed, rng) {
    return rng.nextU32() % 2 ? mutateSafetensorsHeader(seed, rng) : mutate(seed, rng);
  },
  async run(input, dir) {
    const file = path.join(dir, "epoch-0001.safetensors");
    fs.writeFileSync(file, input);
    const c = readCheckpoint(file);
    validateCheckpoint(c, { arch: "smallcnn", numClasses: [4], inputShape: [3, 8, 8], fingerprint: "fp", count: CK_N });
    return { file };
  },
};

// ---------------------------------------------------------------- images

export const FUZZ_IMAGE_PIXELS = 1_000_000;

const imageTarget: Target = {
  name: "image",
  // the decoder's message is wrapped with the file's path by the ImageFolder reader ("skipping FILE: cannot decode (...)")
  namesFile: false,
  async seeds() {
    const img = new Jimp({ width: 12, height: 9, color: 0x4080c0ff });
    for (let i = 0; i < 12 * 9 * 4; i++) img.bitmap.data[i] = (i * 31) & 255;
    const out: Buffer[] = [];
    for (const mime of ["image/png", "image/jpeg", "image/gif", "image/bmp"] as const) out.push(Buffer.from(await img.getBuffer(mime)));
    return out;
  },
  async run(input) {
    // what decode_worker.ts does: the header's pixel cap, then the decoder;
    // here a 1 MP cap, so a decoder that allocates past what the header
    // declares shows as memory over the bound (and fuzzing stays fast)
    checkImagePixels(input, FUZZ_IMAGE_PIXELS);
    const img = await Jimp.fromBuffer(input);
    if (!(img.bitmap.width >= 1 && img.bitmap.height >= 1)) throw new Error("empty bitmap");
    return { file: "/fuzz/input.img" };
  },
};

// The addon's JPEG decoder (native/addon/jpeg_binding.cpp) as the decode pool
// calls it: the pixel cap, then decodeJpegNative to a 16 px shorter side (so
// the seeds take the scaled-IDCT, resize and orientation paths). A refusal
// (not taken, or libjpeg's reason) is a clean error; an exception from the
// call itself (a bad argument the TypeScript side computed) is internal.
const jpegTarget: Target = {
  name: "jpeg",
  namesFile: false,
  async seeds() {
    const jpeg = async (w: number, h: number) => {
      const img = new Jimp({ width: w, height: h, color: 0x4080c0ff });
      for (let i = 0; i < w * h * 4; i++) img.bitmap.data[i] = (i * 31 + (i >> 7)) & 255;
      return Buffer.from(await img.getBuffer("image/jpeg", { quality: 80 }));
    };
    const big = await jpeg(70, 50);
    // EXIF orientation 6 (little-endian TIFF, IFD0 with one SHORT entry) right after SOI
    const tiff = Buffer.from([0x49, 0x49, 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    const body = Buffer.concat([Buffer.from("Exif\0\0", "latin1"), tiff]);
    const app1 = Buffer.concat([Buffer.from([0xff, 0xe1, (body.length + 2) >> 8, (body.length + 2) & 255]), body]);
    return [await jpeg(12, 9), big, Buffer.concat([big.subarray(0, 2), app1, big.subarray(2)])];
  },
  async run(input) {
    checkImagePixels(input, FUZZ_IMAGE_PIXELS);
    let r: Awaited<ReturnType<typeof decodeJpegNative>>;
    try {
      r = await decodeJpegNative(input, 16);
    } catch (e) {
      throw `internal: ${String(e)}`; // not an Error: counted as internal
    }
    if (r === null || typeof r === "string") throw new Error(r ?? "not a JPEG the addon takes");
    if (!(r.width >= 1 && r.height >= 1 && r.data.length === r.width * r.height * 3)) throw `internal: a ${r.width}x${r.height} result of ${r.data.length} bytes`;
    return { file: "/fuzz/input.jpg" };
  },
};

export const TARGETS: Record<string, Target> = {
  idx: idxTarget,
  cifar: cifarTarget,
  safetensors: safetensorsTarget,
  pth: pthTarget,
  checkpoint: checkpointTarget,
  image: imageTarget,
  jpeg: jpegTarget,
};
