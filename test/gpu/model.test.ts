// One training step of the same model on the CUDA backend and on the CPU, from
// the same initial weights (init happens on the host, then one upload): loss,
// eval logits and the parameter update must agree within float32 reduction
// error. Tolerances: the largest reduction in a step is a conv's dw or a batch
// norm over N*H*W = 16*32*32 = 16384 values; the float32 error of such a sum is
// at worst ~L*u = 1e-3 relative, typically sqrt(L)*u ~ 1e-5. We allow 2e-3 of
// the tensor's largest update (plus 1e-7 absolute for tensors that barely move),
// which still catches a wrong gradient (off by the whole update) or a missed
// upload (no update at all).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { createModel, Model, StateDict } from "../../lib/model";
import { Rng } from "../helpers/opcheck";
import { cudaOrSkip } from "./_device";
import { native } from "../../lib/binding";
import { augmentConfig, augmentInput, sampleBatchParams, IMAGENET_MEAN, IMAGENET_STD } from "../../lib/data/augment";
import { randomSourceInput } from "../helpers/sources";
import { Prng } from "../../lib/prng";
import { sinkhornCuda } from "../../lib/sinkhorn";

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

async function compareStep(t: import("node:test").TestContext, opts: Parameters<typeof createModel>[0], N: number): Promise<void> {
  const [C, H, W] = opts.inputShape;
  const rng = new Rng(21);
  const x = Float32Array.from(rng.tensor(N * C * H * W));
  const labels = opts.numClasses.map((k) => Int32Array.from({ length: N }, () => rng.int(0, k - 1)));
  const gpu: Model = await createModel({ ...opts, device: "cuda" });
  const cpu: Model = await createModel({ ...opts, device: "cpu" });
  assert.equal(gpu.device, "cuda");
  const p0: StateDict = await cpu.stateDict();
  const g0 = await gpu.stateDict();
  for (const k of Object.keys(p0)) assert.deepEqual(g0[k].data, p0[k].data, `${k}: initial weights differ (init is on the host)`);
  const step = { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };
  const rg = await gpu.trainStep(x, labels, step);
  const rc = await cpu.trainStep(x, labels, step);
  t.diagnostic(`${opts.arch}: loss cuda ${rg.loss}, cpu ${rc.loss}`);
  assert.ok(Math.abs(rg.loss - rc.loss) <= 1e-5 * Math.abs(rc.loss) + 1e-6, `loss cuda ${rg.loss} vs cpu ${rc.loss}`);
  const pg = await gpu.stateDict(), pc = await cpu.stateDict();
  for (const k of Object.keys(pc)) {
    const a = pg[k].data, b = pc[k].data, z = p0[k].data;
    const upd = new Float32Array(b.length).map((_, i) => b[i] - z[i]);
    const tol = 2e-3 * maxAbs(upd) + 1e-7;
    for (let i = 0; i < b.length; i++) {
      if (!(Math.abs(a[i] - b[i]) <= tol)) assert.fail(`${opts.arch} ${k}[${i}] after one step: cuda ${a[i]}, cpu ${b[i]} (was ${z[i]}, tol ${tol})`);
    }
  }
  const mg = await gpu.optimizerState(), mc = await cpu.optimizerState();
  assert.deepEqual(Object.keys(mg).sort(), Object.keys(mc).sort(), "momentum buffers exist for the same tensors");
  // eval logits after the step
  const lg = await gpu.forward(x, { mode: "eval", output: "logits" });
  const lc = await cpu.forward(x, { mode: "eval", output: "logits" });
  lg.forEach((a, h) => {
    const s = maxAbs(lc[h]);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - lc[h][i]) <= 1e-3 * s + 1e-6, `${opts.arch} head ${h} logit ${i}: ${a[i]} vs ${lc[h][i]}`);
  });
  // a state dict loaded into the GPU model comes back unchanged (upload/download)
  await gpu.loadStateDict(pc);
  const back = await gpu.stateDict();
  for (const k of Object.keys(pc)) assert.deepEqual(back[k].data, pc[k].data, `${k} after loadStateDict`);
  gpu.dispose();
  cpu.dispose();
}

test("smallcnn (3x32x32, batch 16, two heads): one step on cuda equals the CPU's within float32 error", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  await compareStep(t, { arch: "smallcnn", numClasses: [10, 7], inputShape: [3, 32, 32], seed: 4 }, 16);
});

// (8 px keeps it quick on the loader tests' fake device, whose convolutions are
// naive float64 loops; layer4's batch norm still sees 8 values per channel)
test("resnet18 small-input (3x8x8, batch 8): residual joins on cuda equal the CPU's", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  await compareStep(t, { arch: "resnet18", numClasses: [5], inputShape: [3, 8, 8], seed: 2 }, 8);
});

test("a non-finite input is refused on cuda as on the CPU, and the model stays usable", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  const m = await createModel({ arch: "smallcnn", numClasses: [3], inputShape: [1, 8, 8], device: "cuda" });
  const x = new Float32Array(4 * 64).fill(0.5);
  x[70] = NaN;
  await assert.rejects(m.trainStep(x, [new Int32Array(4)], { lr: 0.1 }), { code: "SLN_NONFINITE_INPUT" });
  x[70] = 0;
  const r = await m.trainStep(x, [Int32Array.from([0, 1, 2, 0])], { lr: 0.1 });
  assert.ok(Number.isFinite(r.loss));
  m.dispose();
});

test("mixed precision (precision bf16) is CPU-only: refused on cuda with a clear error", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  await assert.rejects(createModel({ arch: "smallcnn", numClasses: [3], inputShape: [1, 8, 8], device: "cuda", precision: "bf16" }), /precision 'bf16' .* is CPU-only/);
});

// Training with GPU augmentation: trainStep(AugmentInput) runs sln_cuda_augment
// into the model's input buffer on the device. Against the same cuda model fed
// the CPU's augmentBatch floats of the same sources and parameters: the inputs
// differ by at most 2e-5 (test/gpu/augment.test.ts), far below what moves the
// loss beyond 1e-4 relative; parameters after two steps within the tolerance
// of compareStep (2e-3 of the largest update: cuDNN may pick non-deterministic
// algorithms, so two models on one device need not agree bit for bit).
test("smallcnn (3x32x32, batch 8, level 3): two steps with GPU augmentation equal CPU augmentation within float32 error", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  const opts = { arch: "smallcnn", numClasses: [6], inputShape: [3, 32, 32] as [number, number, number], seed: 9, device: "cuda" as const };
  const a = await createModel(opts);
  const b = await createModel(opts);
  const p0 = await a.stateDict();
  const step = { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };
  const rng = new Prng(17);
  const n = 8;
  for (let k = 0; k < 2; k++) {
    const heights = Int32Array.from({ length: n }, (_, i) => 32 + 3 * i);
    const widths = Int32Array.from({ length: n }, (_, i) => 30 + 5 * ((i * 7) % 4));
    const input = randomSourceInput(rng, heights, widths, 32);
    const labels = [Int32Array.from({ length: n }, (_, i) => (i + k) % 6)];
    const floats = await native().augmentBatch(input.src, input.desc, new Float32Array(n * 3 * 32 * 32));
    const ra = await a.trainStep(floats, labels, step);
    const rb = await b.trainStep(input, labels, step);
    t.diagnostic(`step ${k}: loss with CPU augmentation ${ra.loss}, GPU augmentation ${rb.loss}`);
    assert.ok(Math.abs(ra.loss - rb.loss) <= 1e-4 * Math.abs(ra.loss) + 1e-6, `step ${k}: loss ${rb.loss} (GPU augmentation) vs ${ra.loss}`);
  }
  const pa = await a.stateDict(), pb = await b.stateDict();
  for (const key of Object.keys(pa)) {
    const x = pa[key].data, y = pb[key].data, z = p0[key].data;
    const tol = 2e-3 * maxAbs(new Float32Array(x.length).map((_, i) => x[i] - z[i])) + 1e-7;
    for (let i = 0; i < x.length; i++) if (!(Math.abs(x[i] - y[i]) <= tol)) assert.fail(`${key}[${i}]: GPU augmentation ${y[i]}, CPU ${x[i]} (was ${z[i]}, tol ${tol})`);
  }
  // a descriptor that does not fit the model is refused before anything runs
  const bad = augmentInput(
    { data: new Uint8Array(40 * 40 * 3), offsets: new Float64Array(1), heights: Int32Array.of(40), widths: Int32Array.of(40) },
    sampleBatchParams(augmentConfig(0, 24, 3), Int32Array.of(40), Int32Array.of(40), rng),
    { channels: 3, layout: "HWC", size: 24, outChannels: 3, mean: IMAGENET_MEAN, std: IMAGENET_STD },
  );
  await assert.rejects(b.trainStep(bad, [new Int32Array(1)], step), /makes 3x24x24 images .* the model takes 3x32x32/);
  const pc = await b.stateDict();
  for (const key of Object.keys(pb)) assert.deepEqual(pc[key].data, pb[key].data, `${key} changed by a refused step`);
  a.dispose();
  b.dispose();
});

test("label state on cuda: collect + relabel solve the device-resident logits as sinkhornCuda solves the downloaded ones; trainStep by indices", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  const heads = [4, 6];
  const N = 48;
  const shape: [number, number, number] = [3, 16, 16];
  const per = shape[0] * shape[1] * shape[2];
  const rng = new Rng(5);
  const x = Float32Array.from(rng.tensor(N * per));
  const m = await createModel({ arch: "smallcnn", numClasses: heads, inputShape: shape, seed: 4, device: "cuda" });
  const start = heads.map((k) => Int32Array.from({ length: N }, (_, i) => i % k));
  await m.setLabels(start);
  // a step by indices equals a step by the gathered labels on a twin model
  const twin = await createModel({ arch: "smallcnn", numClasses: heads, inputShape: shape, seed: 4, device: "cuda" });
  const ix = Int32Array.from({ length: 16 }, (_, i) => (i * 7) % N);
  const xb = new Float32Array(16 * per);
  ix.forEach((j, i) => xb.set(x.subarray(j * per, (j + 1) * per), i * per));
  const ra = await m.trainStep(xb, ix, { lr: 0.05 });
  const rb = await twin.trainStep(xb, start.map((l) => Int32Array.from(ix, (j) => l[j])), { lr: 0.05 });
  // (cuDNN may choose non-deterministic algorithms: two models agree within float32 error)
  assert.ok(Math.abs(ra.loss - rb.loss) <= 1e-5 * Math.abs(rb.loss), `loss by indices ${ra.loss}, by labels ${rb.loss}`);
  twin.dispose();
  // explicit path: the logits downloaded (batches of 24, as collect's below, so
  // the same cached ops compute them), solved from the host
  const logits = heads.map((k) => new Float32Array(N * k));
  for (const a of [0, 24]) {
    const lg = await m.forward(x.subarray(a * per, (a + 24) * per), { output: "logits" });
    heads.forEach((k, h) => logits[h].set(lg[h], a * k));
  }
  const want = [];
  for (let h = 0; h < heads.length; h++) want.push(await sinkhornCuda(logits[h], N, heads[h], { lambda: 10, maxIters: 300 }));
  // native path: two contiguous batches, the second first
  for (const [a, b] of [
    [24, 48],
    [0, 24],
  ]) await m.collect(x.subarray(a * per, b * per), Int32Array.from({ length: b - a }, (_, i) => a + i));
  const got = await m.relabel({ lambda: 10, maxIters: 300 });
  for (let h = 0; h < heads.length; h++) {
    assert.deepEqual(got[h].labels, want[h].labels, `head ${h}`);
    assert.equal(got[h].iterations, want[h].iterations);
    assert.equal(got[h].cost, want[h].cost);
  }
  assert.deepEqual(await m.labels(), got.map((r) => r.labels));
  // argmax natively on the device's logits (the first batch of 24)
  const am = await m.forward(x.subarray(0, 24 * per), { output: "argmax" });
  heads.forEach((k, h) => {
    for (let i = 0; i < 24; i++) {
      let best = 0;
      for (let c = 1; c < k; c++) if (logits[h][i * k + c] > logits[h][i * k + best]) best = c;
      assert.equal(am[h][i], best, `head ${h} image ${i}`);
    }
  });
  m.dispose();
});
