// Data: every source on fixtures made here (jimp-encoded PNG/JPEG, IDX bytes
// gz and raw, CIFAR bytes), loader determinism, and every bad-input path (the
// augmentation and its float64 reference: augment.test.ts).
import { test, describe, before, after } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { Jimp } from "jimp";
import { native } from "../lib/binding";
import { Prng } from "../lib/prng";
import {
  BadFileError,
  DataNotFoundError,
  EmptyDatasetError,
  InMemoryDataset,
  Loader,
  TruncatedFileError,
  UnknownFormatError,
  DataUsageError,
  applyAugment,
  cacheShortSide,
  detectFormat,
  loadImageFolder,
  openDataset,
  sampleBatchParams,
  IMAGENET_MEAN,
  IMAGENET_STD,
} from "../lib/data";
import { prepare } from "../lib/commands/prepare";
import { randomBytes } from "./helpers/craft";

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-data-test-"));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function idxBytes(dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

function writeIdx(dir: string, prefix: string, n: number, gz: boolean, rng: Prng): { images: Uint8Array; labels: Uint8Array } {
  fs.mkdirSync(dir, { recursive: true });
  const images = randomBytes(n * 28 * 28, rng);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
  const w = (name: string, b: Buffer) => fs.writeFileSync(path.join(dir, name + (gz ? ".gz" : "")), gz ? zlib.gzipSync(b) : b);
  w(`${prefix}-images-idx3-ubyte`, idxBytes([n, 28, 28], images));
  w(`${prefix}-labels-idx1-ubyte`, idxBytes([n], labels));
  return { images, labels };
}

describe("IDX", () => {
  for (const gz of [true, false]) {
    test(`reads ${gz ? "gzipped" : "raw"} IDX files: pixels, labels, both splits`, async () => {
      const dir = path.join(tmp, `idx-${gz}`);
      const rng = new Prng(gz ? 1 : 2);
      const tr = writeIdx(dir, "train", 30, gz, rng);
      writeIdx(dir, "t10k", 12, gz, rng);
      assert.equal(detectFormat(dir), "idx");
      const ds = await openDataset({ data: dir });
      assert.equal(ds.format, "idx");
      assert.equal(ds.count, 30);
      assert.deepEqual([ds.channels, ds.height, ds.width, ds.layout], [1, 28, 28, "HWC"]);
      assert.deepEqual(Array.from(ds.labels!), Array.from(tr.labels));
      const src = await ds.read(new Int32Array([0, 29]));
      assert.ok(Buffer.from(src.data.subarray(src.offsets[1], src.offsets[1] + 784)).equals(Buffer.from(tr.images.subarray(29 * 784, 30 * 784))));
      assert.match(ds.fingerprint, /^idx:mnist:train:30x28x28:sha1=[0-9a-f]{16}$/);
      const te = await openDataset({ data: dir, split: "val" });
      assert.equal(te.count, 12);
      assert.equal(te.split, "test");
    });
  }

  test("truncated, corrupt and mismatched IDX files are clear errors", async () => {
    const rng = new Prng(4);
    const mk = (name: string) => {
      const d = path.join(tmp, name);
      writeIdx(d, "train", 10, false, rng);
      return d;
    };
    const d1 = mk("idx-trunc");
    const f1 = path.join(d1, "train-images-idx3-ubyte");
    fs.writeFileSync(f1, fs.readFileSync(f1).subarray(0, 16 + 784 * 9 + 100));
    await assert.rejects(openDataset({ data: d1 }), (e: Error) => e instanceof TruncatedFileError && /header says 10x28x28/.test(e.message) && /download it again/.test(e.message));

    const d2 = mk("idx-magic");
    const f2 = path.join(d2, "train-images-idx3-ubyte");
    const b2 = fs.readFileSync(f2);
    b2[2] = 0x0d; // float data
    fs.writeFileSync(f2, b2);
    await assert.rejects(openDataset({ data: d2 }), BadFileError);

    const d3 = mk("idx-labels");
    fs.writeFileSync(path.join(d3, "train-labels-idx1-ubyte"), idxBytes([9], new Uint8Array(9)));
    await assert.rejects(openDataset({ data: d3 }), /9 labels for 10 images/);

    const d4 = path.join(tmp, "idx-gztrunc");
    writeIdx(d4, "train", 10, true, rng);
    const f4 = path.join(d4, "train-images-idx3-ubyte.gz");
    const b4 = fs.readFileSync(f4);
    fs.writeFileSync(f4, b4.subarray(0, Math.floor(b4.length / 2)));
    await assert.rejects(openDataset({ data: d4 }), TruncatedFileError);

    const d5 = path.join(tmp, "idx-header");
    fs.mkdirSync(d5);
    fs.writeFileSync(path.join(d5, "train-images-idx3-ubyte"), Buffer.from([0, 0, 8, 3, 0, 0]));
    await assert.rejects(openDataset({ data: d5 }), /shorter than its 16-byte header/);
  });
});

// ---------------------------------------------------------------- CIFAR

describe("CIFAR", () => {
  test("CIFAR-10 batches: CHW pixels, labels, class names, test split", async () => {
    const dir = path.join(tmp, "cifar10", "cifar-10-batches-bin");
    fs.mkdirSync(dir, { recursive: true });
    const rng = new Prng(10);
    const recs: Uint8Array[] = [];
    for (const [name, n] of [["data_batch_1.bin", 3], ["data_batch_2.bin", 2], ["test_batch.bin", 4]] as const) {
      const b = new Uint8Array(n * 3073);
      for (let i = 0; i < n; i++) {
        b[i * 3073] = (i * 3 + name.length) % 10;
        b.set(randomBytes(3072, rng), i * 3073 + 1);
      }
      if (name !== "test_batch.bin") recs.push(b);
      fs.writeFileSync(path.join(dir, name), b);
    }
    fs.writeFileSync(path.join(dir, "batches.meta.txt"), "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
    const root = path.join(tmp, "cifar10");
    assert.equal(detectFormat(root), "cifar");
    const ds = await openDataset({ data: root });
    assert.deepEqual([ds.count, ds.channels, ds.height, ds.width, ds.layout, ds.name], [5, 3, 32, 32, "CHW", "cifar-10"]);
    assert.equal(ds.classes[9], "truck");
    const all = Buffer.concat(recs.map((r) => Buffer.from(r)));
    const src = await ds.read(new Int32Array([3]));
    assert.ok(Buffer.from(src.data.subarray(src.offsets[0], src.offsets[0] + 3072)).equals(all.subarray(3 * 3073 + 1, 4 * 3073)));
    assert.equal(ds.labels![3], all[3 * 3073]);
    const te = await openDataset({ data: root, split: "test" });
    assert.equal(te.count, 4);
  });

  test("CIFAR-100 train.bin uses the fine label; a truncated file is a clear error", async () => {
    const dir = path.join(tmp, "cifar100");
    fs.mkdirSync(dir, { recursive: true });
    const b = new Uint8Array(2 * 3074);
    b[0] = 3; b[1] = 77; b[3074] = 4; b[3075] = 99;
    fs.writeFileSync(path.join(dir, "train.bin"), b);
    const ds = await openDataset({ data: dir });
    assert.equal(ds.name, "cifar-100");
    assert.deepEqual(Array.from(ds.labels!), [77, 99]);
    fs.writeFileSync(path.join(dir, "train.bin"), b.subarray(0, 3074 + 1000));
    await assert.rejects(openDataset({ data: dir }), (e: Error) => e instanceof TruncatedFileError && /not a whole number of 3074-byte/.test(e.message));
  });
});

// ---------------------------------------------------------------- ImageFolder

async function writeImage(file: string, w: number, h: number, rng: Prng, mime: "image/png" | "image/jpeg"): Promise<Uint8Array> {
  const img = new Jimp({ width: w, height: h, color: 0x000000ff });
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    // smooth content so JPEG stays close to the source
    const x = i % w;
    const y = Math.floor(i / w);
    const v = [(x * 255) / w, (y * 255) / h, ((x + y) * 127) / (w + h) + (rng.nextU32() & 7)];
    for (let c = 0; c < 3; c++) {
      rgb[i * 3 + c] = Math.round(v[c]);
      img.bitmap.data[i * 4 + c] = rgb[i * 3 + c];
    }
    img.bitmap.data[i * 4 + 3] = 255;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, mime === "image/png" ? await img.getBuffer("image/png") : await img.getBuffer("image/jpeg", { quality: 95 }));
  return rgb;
}

describe("ImageFolder", () => {
  test("train/ and val/ class folders, PNG and JPEG, sorted indices, cache built once and reused", async () => {
    const root = path.join(tmp, "if1");
    const cacheDir = path.join(tmp, "cache1");
    const rng = new Prng(20);
    const png = await writeImage(path.join(root, "train", "b_cls", "z.png"), 20, 12, rng, "image/png");
    await writeImage(path.join(root, "train", "b_cls", "a.jpg"), 16, 16, rng, "image/jpeg");
    await writeImage(path.join(root, "train", "a_cls", "sub", "x.png"), 64, 48, rng, "image/png");
    await writeImage(path.join(root, "train", "a_cls", "y.JPEG"), 30, 40, rng, "image/jpeg");
    fs.writeFileSync(path.join(root, "train", "a_cls", "notes.txt"), "not an image");
    await writeImage(path.join(root, "val", "a_cls", "v.png"), 10, 10, rng, "image/png");
    await writeImage(path.join(root, "val", "b_cls", "w.png"), 10, 10, rng, "image/png");
    assert.equal(detectFormat(root), "imagefolder");
    const progress: number[] = [];
    const r = await loadImageFolder(root, { split: "train", shortSide: 24, cacheDir, workers: 2, onProgress: (d) => progress.push(d) });
    assert.equal(r.built, true);
    assert.deepEqual(progress, [1, 2, 3, 4]);
    const ds = r.dataset;
    assert.deepEqual(ds.classes, ["a_cls", "b_cls"]);
    assert.deepEqual(ds.paths, ["a_cls/sub/x.png", "a_cls/y.JPEG", "b_cls/a.jpg", "b_cls/z.png"]);
    assert.deepEqual(Array.from(ds.labels!), [0, 0, 1, 1]);
    // 64x48 (W x H) shrinks to shorter side 24 -> 32x24; 30x40 -> 24x32; smaller ones are kept
    assert.deepEqual(Array.from(ds.heights), [24, 32, 16, 12]);
    assert.deepEqual(Array.from(ds.widths), [32, 24, 16, 20]);
    assert.deepEqual([ds.height, ds.width, ds.channels, ds.layout], [0, 0, 3, "HWC"]);
    // the PNG is stored losslessly
    const src = await ds.read(new Int32Array([3]));
    assert.deepEqual(Array.from(src.data.subarray(src.offsets[0], src.offsets[0] + png.length)), Array.from(png));
    const again = await loadImageFolder(root, { split: "train", shortSide: 24, cacheDir, workers: 2 });
    assert.equal(again.built, false);
    assert.equal(again.dataset.fingerprint, ds.fingerprint);
    const src2 = await again.dataset.read(new Int32Array([1]));
    const src1 = await ds.read(new Int32Array([1]));
    assert.ok(Buffer.from(src2.data.subarray(src2.offsets[0], src2.offsets[0] + 24 * 32 * 3)).equals(Buffer.from(src1.data.subarray(src1.offsets[0], src1.offsets[0] + 24 * 32 * 3))));
    // the on-disk (not in memory) variant reads the same bytes
    const onDisk = await loadImageFolder(root, { split: "train", shortSide: 24, cacheDir, maxMemoryBytes: 0 });
    const src3 = await onDisk.dataset.read(new Int32Array([1, 3]));
    assert.ok(Buffer.from(src3.data.subarray(src3.offsets[1], src3.offsets[1] + png.length)).equals(Buffer.from(png)));
    await onDisk.dataset.close();
    // a touched file changes the key
    const t = new Date(Date.now() + 5000);
    fs.utimesSync(path.join(root, "train", "b_cls", "z.png"), t, t);
    const touched = await loadImageFolder(root, { split: "train", shortSide: 24, cacheDir });
    assert.equal(touched.built, true);
    assert.notEqual(touched.dataset.fingerprint, ds.fingerprint);
    const val = await openDataset({ data: root, split: "val", cacheDir, inputSize: 21 });
    assert.equal(val.count, 2);
    // and a loader runs on variable-size images
    const loader = new Loader(ds, { batchSize: 3, size: 21, level: 3, seed: 1 });
    const shapes: number[][] = [];
    for await (const b of loader.epoch(0)) shapes.push(b.shape);
    assert.deepEqual(shapes, [[3, 3, 21, 21], [1, 3, 21, 21]]);
  });

  test("undecodable images: one warning each, skipped, counted, reported again from the cache", async () => {
    const root = path.join(tmp, "if2");
    const cacheDir = path.join(tmp, "cache2");
    const rng = new Prng(21);
    await writeImage(path.join(root, "cat", "ok.png"), 8, 8, rng, "image/png");
    fs.writeFileSync(path.join(root, "cat", "bad.jpg"), Buffer.from("this is not a jpeg at all"));
    const good = await writeImage(path.join(root, "dog", "ok.png"), 8, 8, rng, "image/png");
    const bytes = fs.readFileSync(path.join(root, "dog", "ok.png"));
    fs.writeFileSync(path.join(root, "dog", "trunc.png"), bytes.subarray(0, 40));
    fs.writeFileSync(path.join(root, "dog", "empty.png"), Buffer.alloc(0));
    const warnings: string[] = [];
    const r = await loadImageFolder(root, { split: "train", cacheDir, onWarning: (m) => warnings.push(m) });
    assert.equal(r.dataset.count, 2);
    assert.equal(r.dataset.skipped, 3);
    assert.equal(warnings.filter((w) => w.startsWith("skipping")).length, 3);
    assert.ok(warnings.some((w) => /3 of 5 images .* could not be decoded and were skipped/.test(w)), warnings.join("\n"));
    assert.ok(warnings.some((w) => w.includes("bad.jpg")));
    const src = await r.dataset.read(new Int32Array([1]));
    assert.deepEqual(Array.from(src.data.subarray(src.offsets[0], src.offsets[0] + good.length)), Array.from(good));
    const w2: string[] = [];
    const again = await loadImageFolder(root, { split: "train", cacheDir, onWarning: (m) => w2.push(m) });
    assert.equal(again.built, false);
    assert.equal(again.dataset.skipped, 3);
    assert.equal(w2.length, 4);
    // nothing decodable at all is an error
    const root3 = path.join(tmp, "if3");
    fs.mkdirSync(path.join(root3, "x"), { recursive: true });
    fs.writeFileSync(path.join(root3, "x", "a.png"), "nope");
    await assert.rejects(loadImageFolder(root3, { split: "train", cacheDir, onWarning: () => undefined }), EmptyDatasetError);
  });

  test("empty class folders and missing splits are clear errors", async () => {
    const root = path.join(tmp, "if4");
    await writeImage(path.join(root, "full", "a.png"), 4, 4, new Prng(1), "image/png");
    fs.mkdirSync(path.join(root, "empty"));
    fs.writeFileSync(path.join(root, "full", "readme.txt"), "x");
    await assert.rejects(openDataset({ data: root, cacheDir: path.join(tmp, "cache4") }), (e: Error) => e instanceof EmptyDatasetError && /class folder\(s\) empty hold no images/.test(e.message) && /remove the empty folders/.test(e.message));
    fs.rmdirSync(path.join(root, "empty"));
    await assert.rejects(openDataset({ data: root, split: "test", cacheDir: path.join(tmp, "cache4") }), DataUsageError);
  });

  test("prepare builds the cache, then finds it; IDX needs none", async () => {
    const root = path.join(tmp, "if5");
    const rng = new Prng(30);
    for (const cls of ["a", "b"]) for (let i = 0; i < 3; i++) await writeImage(path.join(root, "train", cls, `${i}.jpg`), 40, 30, rng, "image/jpeg");
    await writeImage(path.join(root, "val", "a", "0.png"), 40, 30, rng, "image/png");
    await writeImage(path.join(root, "val", "b", "0.png"), 40, 30, rng, "image/png");
    const lines: string[] = [];
    const args = { data: root, dataFormat: "auto", inputSize: 28, split: "all", cacheDir: path.join(tmp, "cache5"), workers: 1 };
    const quiet = () => () => undefined;
    const dss = await prepare(args, (l) => lines.push(l), quiet);
    assert.deepEqual(dss.map((d) => [d.split, d.count]), [["train", 6], ["test", 2]]);
    assert.equal(cacheShortSide(28), 32);
    assert.deepEqual(Array.from(dss[0].heights), [30, 30, 30, 30, 30, 30]); // shorter side 30 <= 32: kept
    assert.match(lines.join("\n"), /\(built\)/);
    lines.length = 0;
    await prepare(args, (l) => lines.push(l), quiet);
    assert.match(lines.join("\n"), /already up to date/);
    const idx = path.join(tmp, "idx-prep");
    writeIdx(idx, "train", 5, true, rng);
    lines.length = 0;
    const r = await prepare({ ...args, data: idx }, (l) => lines.push(l));
    assert.equal(r.length, 1); // no t10k files: train only
    assert.match(lines.join("\n"), /no cache needed/);
    await assert.rejects(prepare({ ...args, data: path.join(tmp, "nope") }), DataNotFoundError);
  });
});

// ---------------------------------------------------------------- detection and bad input

describe("detection", () => {
  test("missing path, unknown format, bad --data-format, files in place of folders", async () => {
    await assert.rejects(openDataset({ data: path.join(tmp, "does-not-exist") }), (e: Error) => e instanceof DataNotFoundError && /check --data/.test(e.message) && (e as DataNotFoundError).exitCode === 2);
    const odd = path.join(tmp, "odd");
    fs.mkdirSync(odd);
    fs.writeFileSync(path.join(odd, "data.csv"), "1,2,3");
    await assert.rejects(openDataset({ data: odd }), (e: Error) => e instanceof UnknownFormatError && /data\.csv/.test(e.message) && /--data-format/.test(e.message));
    const empty = path.join(tmp, "emptydir");
    fs.mkdirSync(empty);
    await assert.rejects(openDataset({ data: empty }), /the directory is empty/);
    await assert.rejects(openDataset({ data: odd, format: "parquet" as "idx" }), (e: Error) => e instanceof UnknownFormatError && /'parquet'/.test(e.message));
    await assert.rejects(openDataset({ data: odd, format: "idx" }), EmptyDatasetError);
    await assert.rejects(openDataset({ data: odd, format: "imagefolder", cacheDir: path.join(tmp, "c") }), EmptyDatasetError);
    await assert.rejects(openDataset({ format: "cifar" }), DataUsageError);
    await assert.rejects(openDataset({ split: "validation" as "val" }), DataUsageError);
  });
});

// ---------------------------------------------------------------- synthetic set and loader

describe("synthetic set and loader", () => {
  let syn: InMemoryDataset;
  before(async () => {
    syn = (await openDataset({ synthetic: { seed: 5, count: 500 } })) as InMemoryDataset;
  });

  test("synthetic: seeded, balanced, 10 classes of 32x32 RGB; train and test differ", async () => {
    assert.deepEqual([syn.count, syn.channels, syn.height, syn.width, syn.classes.length], [500, 3, 32, 32, 10]);
    const counts = new Array(10).fill(0);
    for (const l of syn.labels!) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(50));
    const again = (await openDataset({ synthetic: { seed: 5, count: 500 } })) as InMemoryDataset;
    assert.ok(Buffer.from(again.data).equals(Buffer.from(syn.data)));
    const other = (await openDataset({ synthetic: { seed: 6, count: 500 } })) as InMemoryDataset;
    assert.ok(!Buffer.from(other.data).equals(Buffer.from(syn.data)));
    const test500 = (await openDataset({ split: "test", synthetic: { seed: 5, count: 500 } })) as InMemoryDataset;
    assert.ok(!Buffer.from(test500.data).equals(Buffer.from(syn.data)));
    // the same bytes whatever the thread count
    native().setThreads(1);
    const one = (await openDataset({ synthetic: { seed: 5, count: 500 } })) as InMemoryDataset;
    native().setThreads(Math.max(2, os.cpus().length));
    assert.ok(Buffer.from(one.data).equals(Buffer.from(syn.data)));
  });

  async function collect(loader: Loader, epoch: number, start = 0) {
    const out: { index: number; indices: number[]; data: Float32Array; labels: number[] }[] = [];
    for await (const b of loader.epoch(epoch, { startBatch: start })) {
      out.push({ index: b.index, indices: Array.from(b.indices), data: b.data, labels: Array.from(b.labels!) });
    }
    return out;
  }

  test("same seed, same batches (any prefetch); epochs shuffle differently; no drop_last; indices and labels carried", async () => {
    const mk = (seed: number, prefetch: number) => new Loader(syn, { batchSize: 64, size: 32, level: 3, seed, prefetch });
    const a = await collect(mk(1, 2), 0);
    const b = await collect(mk(1, 0), 0);
    assert.equal(a.length, 8);
    assert.deepEqual(a.map((x) => x.indices.length), [64, 64, 64, 64, 64, 64, 64, 52]);
    for (let i = 0; i < a.length; i++) {
      assert.deepEqual(a[i].indices, b[i].indices);
      assert.ok(Buffer.from(a[i].data.buffer).equals(Buffer.from(b[i].data.buffer)), `batch ${i} differs`);
      assert.deepEqual(a[i].labels, a[i].indices.map((k) => syn.labels![k]));
    }
    const all = a.flatMap((x) => x.indices).sort((p, q) => p - q);
    assert.deepEqual(all, Array.from({ length: 500 }, (_, i) => i));
    const e1 = await collect(mk(1, 2), 1);
    assert.notDeepEqual(e1[0].indices, a[0].indices);
    const c = await collect(mk(2, 2), 0);
    assert.notDeepEqual(c[0].indices, a[0].indices);
    // resuming mid-epoch gives exactly the remaining batches
    const resumed = await collect(mk(1, 3), 0, 5);
    assert.deepEqual(resumed.map((x) => x.index), [5, 6, 7]);
    for (let i = 0; i < 3; i++) assert.ok(Buffer.from(resumed[i].data.buffer).equals(Buffer.from(a[5 + i].data.buffer)));
  });

  test("level 0 without shuffle is deterministic and in dataset order; an unshuffled pass covers the set once", async () => {
    const l = new Loader(syn, { batchSize: 100, size: 32, level: 0, seed: 0, shuffle: false });
    const r = await collect(l, 0);
    assert.deepEqual(r.flatMap((x) => x.indices), Array.from({ length: 500 }, (_, i) => i));
    const r2 = await collect(l, 3);
    assert.ok(Buffer.from(r2[0].data.buffer).equals(Buffer.from(r[0].data.buffer)));
  });

  test("a loader's batch equals the native call on sampled parameters (no hidden steps)", async () => {
    const l = new Loader(syn, { batchSize: 16, size: 24, level: 3, seed: 9 });
    const b = await l.batch(2, 1);
    const src = await syn.read(b.indices);
    const p = sampleBatchParams(l.config, src.heights, src.widths, Prng.derive(9, 2, 2, 1));
    const direct = await applyAugment(src, p, { channels: 3, layout: "HWC", size: 24, outChannels: 3, mean: IMAGENET_MEAN, std: IMAGENET_STD });
    assert.ok(Buffer.from(direct.buffer).equals(Buffer.from(b.data.buffer)));
  });

  test("loader option errors", () => {
    assert.throws(() => new Loader(syn, { batchSize: 0, size: 32, level: 0, seed: 0 }), RangeError);
    assert.throws(() => new Loader(syn, { batchSize: 8, size: 32, level: 5 as 0, seed: 0 }), RangeError);
    assert.throws(() => new Loader(syn, { batchSize: 8, size: 32, level: 0, seed: 0, outChannels: 1 }), /cannot make 1-channel/);
    assert.throws(() => new Loader(syn, { batchSize: 8, size: 32, level: 0, seed: 0, mean: [0.5] }), /mean\/std need 3/);
  });
});
