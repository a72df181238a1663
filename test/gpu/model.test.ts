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
