// The augmentation pipeline: the seeded PRNG, the sampled augmentation
// parameters, and the native augmentation against its float64 reference
// (test/helpers/augment_ref.ts). The data sources are in data.test.ts.
import { test, describe } from "node:test";
import * as assert from "node:assert/strict";
import { native } from "../lib/binding";
import { Prng } from "../lib/prng";
import {
  InMemoryDataset,
  augmentConfig,
  getImageParams,
  randomResizedCrop,
  roundHalfEven,
  sampleImageParams,
  setImageParams,
  BatchParams,
  ImageParams,
  IMAGENET_MEAN,
  IMAGENET_STD,
} from "../lib/data";
import { augmentRef, RefImage } from "./helpers/augment_ref";
import { randomBytes } from "./helpers/craft";

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
