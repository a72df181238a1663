// Data: every source on fixtures made here (jimp-encoded PNG/JPEG, IDX bytes
// gz and raw, CIFAR bytes), the native augmentation against a float64
// reference, loader determinism, and every bad-input path.
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
  augmentConfig,
  applyAugment,
  cacheShortSide,
  detectFormat,
  getImageParams,
  loadImageFolder,
  openDataset,
  randomResizedCrop,
  roundHalfEven,
  sampleBatchParams,
  sampleImageParams,
  setImageParams,
  BatchParams,
  ImageParams,
  IMAGENET_MEAN,
  IMAGENET_STD,
} from "../lib/data";
import { prepare } from "../lib/commands/prepare";
import { augmentRef, RefImage } from "./helpers/augment_ref";

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-data-test-"));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function randomBytes(n: number, rng: Prng): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.nextU32() & 255;
  return a;
}

// ---------------------------------------------------------------- PRNG

describe("prng", () => {
  test("same seed, same stream; state save/restore resumes exactly", () => {
    const a = new Prng(42);
    const b = new Prng(42);
    for (let i = 0; i < 100; i++) assert.equal(a.nextU32(), b.nextU32());
    const saved = JSON.parse(JSON.stringify(a.state()));
    const x = [a.random(), a.int(0, 1000), a.uniform(-1, 1)];
    const c = Prng.fromState(saved);
    assert.deepEqual([c.random(), c.int(0, 1000), c.uniform(-1, 1)], x);
    assert.notEqual(new Prng(43).nextU32(), new Prng(42).nextU32());
  });

  test("derived streams differ by path and are reproducible", () => {
    const v = (p: Prng) => [p.nextU32(), p.nextU32()];
    assert.deepEqual(v(Prng.derive(7, 1, 2)), v(Prng.derive(7, 1, 2)));
    assert.notDeepEqual(v(Prng.derive(7, 1, 2)), v(Prng.derive(7, 2, 1)));
    assert.notDeepEqual(v(Prng.derive(7, 1, 2)), v(Prng.derive(8, 1, 2)));
  });

  test("int is in range and roughly uniform; permutation is a permutation; bad state is refused", () => {
    const p = new Prng(1);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 7000; i++) counts[p.int(0, 7)]++;
    // 1000 expected per bucket, sd ~29; 6 sd is a failure of the generator, not chance
    for (const c of counts) assert.ok(Math.abs(c - 1000) < 180, `bucket count ${c}`);
    const perm = p.permutation(1000);
    assert.deepEqual(Array.from(perm).sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
    for (let i = 0; i < 1000; i++) {
      const r = p.random();
      assert.ok(r >= 0 && r < 1);
    }
    assert.throws(() => Prng.fromState({ algorithm: "xoshiro128**", s: [0, 0, 0, 0] }), RangeError);
    assert.throws(() => Prng.fromState({ algorithm: "mt" as "xoshiro128**", s: [1, 2, 3, 4] }), TypeError);
  });
});

// ---------------------------------------------------------------- parameter sampling

describe("augmentation parameters", () => {
  test("roundHalfEven is Python's round", () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, -2, 2, 3]);
  });

  test("RandomResizedCrop boxes lie inside the image with scale and ratio respected", () => {
    const rng = new Prng(3);
    for (let t = 0; t < 500; t++) {
      const H = 20 + rng.int(0, 300);
      const W = 20 + rng.int(0, 300);
      const [i, j, h, w] = randomResizedCrop(H, W, [0.08, 1], [3 / 4, 4 / 3], rng);
      assert.ok(i >= 0 && j >= 0 && h >= 1 && w >= 1 && i + h <= H && j + w <= W, `${[i, j, h, w]} in ${H}x${W}`);
    }
  });

  test("RandomResizedCrop falls back to the central crop after 10 failed tries", () => {
    // a 1x100 strip: no crop with ratio in [3/4, 4/3] fits, so the fallback clips the ratio
    const [i, j, h, w] = randomResizedCrop(1, 100, [0.08, 1], [3 / 4, 4 / 3], new Prng(1));
    assert.deepEqual([i, j, h, w], [0, Math.floor((100 - 1) / 2), 1, 1]);
    // scale > 1 can never fit: the whole image when its ratio is inside the range
    assert.deepEqual(randomResizedCrop(30, 30, [2, 3], [3 / 4, 4 / 3], new Prng(1)), [0, 0, 30, 30]);
  });

  test("levels scale with the input size; 28/32 px use scale (0.2, 1); grayscale data gets no colour jitter", () => {
    assert.equal(augmentConfig(0, 224, 3).resize, 256);
    assert.equal(augmentConfig(0, 28, 1).resize, 32);
    assert.equal(augmentConfig(0, 32, 3).resize, 37);
    assert.deepEqual(augmentConfig(3, 32, 3).scale, [0.2, 1]);
    assert.deepEqual(augmentConfig(3, 224, 3).scale, [0.08, 1]);
    assert.equal(augmentConfig(3, 28, 1).jitter, null);
    assert.equal(augmentConfig(3, 28, 1).grayscale, 0);
    assert.deepEqual(augmentConfig(3, 32, 3).jitter, [0.4, 0.4, 0.4, 0.4]);
    assert.equal(augmentConfig(3, 32, 3).grayscale, 0.2);
    assert.equal(augmentConfig(0, 32, 3).flip, false);
    assert.equal(augmentConfig(1, 32, 3).flip, true);
    assert.throws(() => augmentConfig(4, 32, 3), RangeError);
  });

  test("level 0 is Resize + CenterCrop mapped to one source box", () => {
    // 28x28 -> Resize(32) -> CenterCrop(28): crop starts at 2 in resized pixels = 1.75 source pixels
    const p = sampleImageParams(augmentConfig(0, 28, 1), 28, 28, new Prng(0));
    assert.deepEqual(p.box, [1.75, 1.75, 26.25, 26.25]);
    assert.equal(p.flip, false);
    // 300x400 (H x W) -> Resize(256) = 256x341 -> CenterCrop(224) at top 16, left round(58.5) = 58
    const q = sampleImageParams(augmentConfig(0, 224, 3), 300, 400, new Prng(0));
    const sy = 300 / 256;
    const sx = 400 / 341;
    assert.deepEqual(q.box, [58 * sx, 16 * sy, (58 + 224) * sx, (16 + 224) * sy]);
  });

  test("level 3 colour parameters are in torchvision's ranges, order a permutation, grayscale ~20%", () => {
    const cfg = augmentConfig(3, 224, 3);
    const rng = new Prng(5);
    let grays = 0;
    let flips = 0;
    const N = 2000;
    for (let i = 0; i < N; i++) {
      const p = sampleImageParams(cfg, 256, 320, rng);
      const [b, c, s, h] = p.factors;
      assert.ok(b >= 0.6 && b <= 1.4 && c >= 0.6 && c <= 1.4 && s >= 0.6 && s <= 1.4 && h >= -0.4 && h <= 0.4);
      assert.deepEqual([...p.order].sort(), [0, 1, 2, 3]);
      const area = ((p.box[2] - p.box[0]) * (p.box[3] - p.box[1])) / (256 * 320);
      assert.ok(area >= 0.075 && area <= 1.0001, `area fraction ${area}`);
      grays += p.gray ? 1 : 0;
      flips += p.flip ? 1 : 0;
    }
    // binomial sd: 17.9 for p=0.2, 22.4 for p=0.5; 5 sd bounds
    assert.ok(Math.abs(grays - 0.2 * N) < 90, `grayscale ${grays}/${N}`);
    assert.ok(Math.abs(flips - 0.5 * N) < 112, `flips ${flips}/${N}`);
  });
});

// ---------------------------------------------------------------- native augmentation vs float64 reference

describe("native augmentation", () => {
  // float32 arithmetic against float64: resampling sums a few float32
  // products of values <= 255 (~1e-7 in [0, 1] units), each colour step adds
  // a few ulp(1), the hue step's division by (max - min) can amplify that, and
  // normalising divides by std >= 0.224 (x4.5). Observed worst case over these
  // cases: 4e-6. 2e-5 keeps 5x headroom; any real mistake (a wrong tap, order
  // or formula) is far larger: one grey level is 0.0175 after normalising.
  const TOL = 2e-5;

  interface Case {
    channels: 1 | 3;
    layout: "HWC" | "CHW";
    outC: 1 | 3;
  }

  async function check(c: Case, seed: number) {
    const rng = new Prng(seed);
    const n = 7;
    const outH = 5 + rng.int(0, 20);
    const outW = 5 + rng.int(0, 20);
    const heights = new Int32Array(n);
    const widths = new Int32Array(n);
    const offsets = new Float64Array(n);
    let total = 3; // leading bytes so offsets are not all 0
    for (let k = 0; k < n; k++) {
      heights[k] = 1 + rng.int(0, 60);
      widths[k] = 1 + rng.int(0, 60);
      offsets[k] = total;
      total += heights[k] * widths[k] * c.channels + rng.int(0, 5);
    }
    const data = randomBytes(total, rng);
    const params: BatchParams = {
      n,
      boxes: new Float64Array(4 * n),
      flip: new Uint8Array(n),
      gray: new Uint8Array(n),
      factors: new Float32Array(4 * n),
      order: new Uint8Array(4 * n),
    };
    for (let k = 0; k < n; k++) {
      const H = heights[k];
      const W = widths[k];
      const x0 = rng.uniform(0, W * 0.6);
      const y0 = rng.uniform(0, H * 0.6);
      const ip: ImageParams = {
        box: [x0, y0, rng.uniform(x0 + 1e-3, W), rng.uniform(y0 + 1e-3, H)],
        flip: rng.random() < 0.5,
        gray: rng.random() < 0.5,
        factors: [rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5), rng.uniform(-0.5, 0.5)],
        order: Array.from(rng.permutation(4)) as ImageParams["order"],
      };
      if (k === 0) ip.box = [0, 0, W, H]; // whole image
      if (k === 1) ip.factors = [1, 1, 1, 0]; // identity jitter
      setImageParams(params, k, ip);
    }
    const mean = c.outC === 3 ? IMAGENET_MEAN : [0.5];
    const std = c.outC === 3 ? IMAGENET_STD : [0.5];
    // rectangular outputs: call the binding directly (the loader's batches are square)
    const rect = await native().augmentBatch(
      data,
      {
        n, channels: c.channels, layout: c.layout, offsets, heights, widths,
        boxes: params.boxes, flip: params.flip, gray: params.gray, factors: params.factors, order: params.order,
        outHeight: outH, outWidth: outW, outChannels: c.outC, mean, std,
      },
      new Float32Array(n * c.outC * outH * outW),
    );
    let maxErr = 0;
    for (let k = 0; k < n; k++) {
      const im: RefImage = { data, offset: offsets[k], height: heights[k], width: widths[k], channels: c.channels, layout: c.layout };
      const ref = augmentRef(im, getImageParams(params, k), outH, outW, c.outC, mean, std);
      const got = rect.subarray(k * ref.length, (k + 1) * ref.length);
      for (let j = 0; j < ref.length; j++) {
        const e = Math.abs(got[j] - ref[j]);
        if (e > maxErr) maxErr = e;
        if (!(e <= TOL)) {
          assert.fail(
            `augment ${JSON.stringify(c)} seed ${seed} image ${k} (${heights[k]}x${widths[k]} -> ${outH}x${outW}, ` +
              `params ${JSON.stringify(getImageParams(params, k))}) element ${j}: native ${got[j]} vs float64 ${ref[j]}`,
          );
        }
      }
    }
    return maxErr;
  }

  for (const c of [
    { channels: 3, layout: "HWC", outC: 3 },
    { channels: 3, layout: "CHW", outC: 3 },
    { channels: 1, layout: "HWC", outC: 1 },
    { channels: 1, layout: "HWC", outC: 3 },
  ] as Case[]) {
    test(`matches the float64 reference: ${c.channels} ch ${c.layout} -> ${c.outC} ch (odd sizes, shrink and enlarge)`, async () => {
      for (let seed = 1; seed <= 4; seed++) await check(c, seed * 101 + c.channels);
    });
  }

  test("the whole-image box at the same size is the identity (PIL property); flip reverses rows", async () => {
    const rng = new Prng(9);
    const H = 13;
    const W = 17;
    const data = randomBytes(H * W * 3, rng);
    const ds = new InMemoryDataset({
      format: "synthetic", name: "t", split: "train", root: null, channels: 3, layout: "HWC", data,
      offsets: new Float64Array([0]), heights: new Int32Array([H]), widths: new Int32Array([W]),
      labels: null, classes: [], paths: null, fingerprint: "t",
    });
    const src = await ds.read(new Int32Array([0]));
    const p: BatchParams = { n: 1, boxes: new Float64Array([0, 0, W, H]), flip: new Uint8Array([0]), gray: new Uint8Array(1), factors: new Float32Array([1, 1, 1, 0]), order: new Uint8Array([0, 1, 2, 3]) };
    const o = await native().augmentBatch(src.data, {
      n: 1, channels: 3, layout: "HWC", offsets: src.offsets, heights: src.heights, widths: src.widths,
      boxes: p.boxes, flip: p.flip, gray: p.gray, factors: p.factors, order: p.order,
      outHeight: H, outWidth: W, outChannels: 3, mean: [0, 0, 0], std: [1, 1, 1],
    }, new Float32Array(3 * H * W));
    for (let c = 0; c < 3; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      assert.ok(Math.abs(o[(c * H + y) * W + x] * 255 - data[(y * W + x) * 3 + c]) < 1e-3);
    }
    p.flip[0] = 1;
    const f = await native().augmentBatch(src.data, {
      n: 1, channels: 3, layout: "HWC", offsets: src.offsets, heights: src.heights, widths: src.widths,
      boxes: p.boxes, flip: p.flip, gray: p.gray, factors: p.factors, order: p.order,
      outHeight: H, outWidth: W, outChannels: 3, mean: [0, 0, 0], std: [1, 1, 1],
    }, new Float32Array(3 * H * W));
    for (let c = 0; c < 3; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      assert.equal(f[(c * H + y) * W + x], o[(c * H + y) * W + (W - 1 - x)]);
    }
  });

  test("bad arguments are clear errors, not crashes", async () => {
    const data = new Uint8Array(4 * 4 * 3);
    const base = {
      n: 1, channels: 3, layout: "HWC" as const, offsets: new Float64Array([0]), heights: new Int32Array([4]), widths: new Int32Array([4]),
      boxes: new Float64Array([0, 0, 4, 4]), flip: new Uint8Array(1), gray: new Uint8Array(1), factors: new Float32Array([1, 1, 1, 0]),
      order: new Uint8Array([0, 1, 2, 3]), outHeight: 2, outWidth: 2, outChannels: 3, mean: [0, 0, 0], std: [1, 1, 1],
    };
    const out = () => new Float32Array(12);
    const aug = native().augmentBatch;
    assert.throws(() => aug(data, { ...base, boxes: new Float64Array([0, 0, 5, 4]) }, out()), (e: Error & { code?: string }) => e.code === "SLN_INVALID_ARGUMENT" && /box/.test(e.message));
    assert.throws(() => aug(data, { ...base, offsets: new Float64Array([10]) }, out()), /does not fit in src/);
    assert.throws(() => aug(data, base, new Float32Array(11)), /out has 11 floats/);
    assert.throws(() => aug(data, { ...base, order: new Uint8Array([0, 0, 2, 3]) }, out()), /permutation/);
    assert.throws(() => aug(data, { ...base, std: [1, 0, 1] }, out()), /std must be > 0/);
    assert.throws(() => aug(data, { ...base, factors: new Float32Array([1, 1, 1, 0.7]) }, out()), /hue/);
    assert.throws(() => aug(data, { ...base, outChannels: 1, mean: [0], std: [1] }, new Float32Array(4)), /out_channels/);
    assert.throws(() => aug(data, { ...base, heights: new Int32Array(2) }, out()), /heights has 2 elements/);
    assert.throws(() => native().resizeU8(new Uint8Array(3), 2, 2, 3, 3, 1, 1), /src has 3 bytes/);
  });
});

// ---------------------------------------------------------------- IDX

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
