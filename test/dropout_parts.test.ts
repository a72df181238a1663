// Data-parallel dropout (issue 17): trainStep's rowOffset starts a batch's
// dropout masks at its position in a larger batch, so the ranks' parts of a
// global batch drop exactly what one process drops. Checked in one process
// (the gradient of a first SGD step from the same start, without weight decay,
// is (w0 - w1) / lr): AlexNet (two Dropout(0.5) in its classifier) on 4 copies
// of one image (identical images: batch norm statistics of either half are the
// whole batch's, so only the masks can differ); the steps on images 0-1
// (rowOffset 0) and 2-3 (rowOffset 2) average to the step on all 4.
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { createModel } from "../lib/model";
import { native } from "../lib/binding";
import { Prng } from "../lib/prng";

const spec = { arch: "alexnet", archSpec: "small" as const, numClasses: [10], inputShape: [3, 224, 224] as [number, number, number], seed: 5 };
const watched = (k: string) => /^(classifier|top_layer)/.test(k);
const per = 3 * 224 * 224;

/** The watched tensors after one step on images [a, b) of the batch with this rowOffset (and before it). */
async function step(images: Float32Array, labels: Int32Array, a: number, b: number, rowOffset: number | undefined) {
  const m = await createModel(spec);
  try {
    const before = await m.stateDict();
    await m.trainStep(images.subarray(a * per, b * per), [labels.subarray(a, b)], { lr: 0.01, momentum: 0.9, weightDecay: 0, ...(rowOffset === undefined ? {} : { rowOffset }) });
    const after = await m.stateDict();
    const w0: Record<string, Float32Array> = {},
      w1: Record<string, Float32Array> = {};
    for (const k of Object.keys(after))
      if (watched(k)) {
        w0[k] = before[k].data;
        w1[k] = after[k].data;
      }
    return { w0, w1 };
  } finally {
    m.dispose();
  }
}

test("dropout: the halves of a batch with rowOffset average to the whole batch's step (AlexNet); without it they do not", async (t) => {
  native().setThreads(2);
  const p = new Prng(21);
  const one = Float32Array.from({ length: per }, () => p.random() * 2 - 1);
  const images = new Float32Array(4 * per);
  for (let i = 0; i < 4; i++) images.set(one, i * per);
  const labels = Int32Array.from([3, 1, 4, 1]);
  const whole = await step(images, labels, 0, 4, undefined);
  const first = await step(images, labels, 0, 2, 0);
  const second = await step(images, labels, 2, 4, 2);
  const secondAt0 = await step(images, labels, 2, 4, undefined); // each part drawing the masks of positions 0.. (before the fix)
  // worst over tensors of max |avg(half steps) - whole step| / max |whole step|
  const worst = (s: typeof second) => {
    let w = { ratio: 0, tensor: "" };
    for (const k of Object.keys(whole.w1)) {
      let d = 0,
        u = 0;
      for (let i = 0; i < whole.w1[k].length; i++) {
        const full = whole.w0[k][i] - whole.w1[k][i];
        const halves = (first.w0[k][i] - first.w1[k][i] + (s.w0[k][i] - s.w1[k][i])) / 2;
        d = Math.max(d, Math.abs(halves - full));
        u = Math.max(u, Math.abs(full));
      }
      if (d / u > w.ratio) w = { ratio: d / u, tensor: k };
    }
    return w;
  };
  const fixed = worst(second),
    old = worst(secondAt0);
  t.diagnostic(`rowOffset 2: ${JSON.stringify(fixed)}; no offset: ${JSON.stringify(old)}`);
  // float32 reassociation (sums over 2 + 2 images vs 4) and the rounding of w1 = w0 - lr g
  assert.ok(fixed.ratio < 1e-3, `halves with rowOffset vs the whole batch: ${JSON.stringify(fixed)}`);
  assert.ok(old.ratio > 0.05, `halves without rowOffset should differ: ${JSON.stringify(old)}`);
  await assert.rejects(
    createModel(spec).then(async (m) => {
      try {
        await m.trainStep(images.subarray(0, 2 * per), [labels.subarray(0, 2)], { lr: 0.01, rowOffset: -1 });
      } finally {
        m.dispose();
      }
    }),
    /rowOffset must be an integer >= 0/,
  );
});
