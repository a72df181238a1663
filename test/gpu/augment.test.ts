// The GPU augmentation (sln_cuda_augment) against the CPU's on the same source
// images and the same sampled parameters, levels 0-3, 1 and 3 channels, HWC.
// Both follow the same float formulas (PIL bilinear weights, torchvision's
// jitter); the GPU may contract into FMAs and evaluate expf/fmodf differently,
// so each output value may differ by a few float32 roundings of the [0, 1]
// intermediate, amplified by 1/std (<= 4.5): 2e-5 absolute.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { native } from "../../lib/binding";
import { augmentConfig, sampleBatchParams, IMAGENET_MEAN, IMAGENET_STD, GRAY_MEAN, GRAY_STD } from "../../lib/data/augment";
import { Prng } from "../../lib/prng";
import { cudaOrSkip } from "./_device";

test("cudaAugmentBatch equals augmentBatch within 2e-5 (levels 0-3, gray and RGB)", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  const rng = new Prng(5);
  for (const [channels, level, size] of [
    [3, 0, 32],
    [3, 1, 32],
    [3, 2, 24],
    [3, 3, 32],
    [1, 3, 28],
    [3, 3, 224],
  ] as [1 | 3, 0 | 1 | 2 | 3, number][]) {
    const n = size > 100 ? 4 : 16;
    const heights = Int32Array.from({ length: n }, (_, i) => size + 3 * i + (size > 100 ? 32 : 0));
    const widths = Int32Array.from({ length: n }, (_, i) => size + 5 * ((i * 7) % 4));
    const offsets = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      offsets[i] = total;
      total += heights[i] * widths[i] * channels;
    }
    const src = new Uint8Array(total).map(() => Math.floor(rng.random() * 256));
    const cfg = augmentConfig(level, size, channels);
    const p = sampleBatchParams(cfg, heights, widths, rng);
    const mean = channels === 3 ? IMAGENET_MEAN : GRAY_MEAN, std = channels === 3 ? IMAGENET_STD : GRAY_STD;
    const desc = {
      n, channels, layout: "HWC" as const, offsets, heights, widths,
      boxes: p.boxes, flip: p.flip, gray: p.gray, factors: p.factors, order: p.order,
      outHeight: size, outWidth: size, outChannels: channels, mean, std,
    };
    const cpu = await native().augmentBatch(src, desc, new Float32Array(n * channels * size * size));
    const gpu = await native().cudaAugmentBatch(src, desc, new Float32Array(n * channels * size * size));
    let worst = 0, wi = 0;
    for (let i = 0; i < cpu.length; i++) {
      const d = Math.abs(cpu[i] - gpu[i]);
      if (!(d <= worst)) (worst = d), (wi = i);
    }
    t.diagnostic(`channels ${channels} level ${level} size ${size}: max |cuda-cpu| ${worst.toExponential(2)}`);
    assert.ok(worst <= 2e-5, `augment channels=${channels} level=${level} size=${size}: value ${wi} cuda ${gpu[wi]} vs cpu ${cpu[wi]}`);
  }
});
