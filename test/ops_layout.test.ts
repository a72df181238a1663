// The blocked activation layout (nChw16c, sln/ops.h Layout::blocked16) that
// the CPU trunk keeps between its convolutions, batch norms, ReLUs and pools:
// each op in that layout against the float64 reference (the harness reorders
// at its edges, so the reference and its tolerances are the NCHW tests'), and
// whole models built blocked against the same models built NCHW
// (SELFLABEL_LAYOUT, read when a model is built): outputs, probe taps and
// training steps.
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { Rng, convCase, runOp, assertClose, Params, assertWithinBound, absInputs, bnInputs, assertBatchnormClose } from "./helpers/opcheck";
import { createModel, Model, ModelOptions } from "../lib/model";
import type { HarnessTensors } from "./helpers/test_addon";
import { native } from "../lib/binding";

const blockedHere = native().info().cpu.includes("avx512");

// ---------------------------------------------------------------- ops

test("conv2d in blocked layouts (x and/or y nChw16c) matches the float64 reference", () => {
  const rng = new Rng(11);
  const cases: Params[] = [
    // first layers: plain x, blocked y
    { N: 2, C: 1, H: 9, W: 9, K: 32, R: 3, S: 3, stride: 1, pad: 1, bias: 0, src_layout: 0, dst_layout: 1 },
    { N: 2, C: 3, H: 13, W: 11, K: 16, R: 7, S: 7, stride: 2, pad: 3, bias: 0, src_layout: 0, dst_layout: 1, need_dx: 0 },
    // inside the trunk: both blocked, 3x3, 1x1 stride 2 (downsample), with bias
    { N: 3, C: 32, H: 7, W: 6, K: 48, R: 3, S: 3, stride: 1, pad: 1, bias: 1, src_layout: 1, dst_layout: 1 },
    { N: 2, C: 16, H: 8, W: 8, K: 32, R: 1, S: 1, stride: 2, pad: 0, bias: 0, src_layout: 1, dst_layout: 1 },
    // a trunk's last conv before a layer that needs NCHW: blocked x, plain y
    { N: 2, C: 32, H: 5, W: 5, K: 17, R: 3, S: 3, stride: 1, pad: 1, bias: 1, src_layout: 1, dst_layout: 0 },
  ];
  for (const p of cases) {
    const { OH, OW, inp } = convCase(rng, p);
    const ref = runOp("conv2d", "ref", p, inp);
    const bound = runOp("conv2d", "ref", p, absInputs(inp));
    const cpu = runOp("conv2d", "cpu", p, inp);
    const tag = `conv2d ${JSON.stringify(p)}`;
    assertWithinBound(cpu.y, ref.y, bound.y, p.C * p.R * p.S + 1, `${tag} y`);
    if (p.need_dx === 0) assert.equal(cpu.dx, undefined);
    else assertWithinBound(cpu.dx, ref.dx, bound.dx, p.K * p.R * p.S, `${tag} dx`);
    assertWithinBound(cpu.dw, ref.dw, bound.dw, p.N * OH * OW, `${tag} dw`);
  }
});

test("batchnorm2d in nChw16c: training and eval match the float64 reference, also over 25000 values per channel", () => {
  const rng = new Rng(12);
  // the NCHW test's tolerances (ops_misc.test.ts); the last shape is the
  // resnet stem's at batch 2 (M = 2 x 112 x 112), where float32 sums drift
  for (const p of [
    { N: 2, C: 16, H: 5, W: 7 },
    { N: 3, C: 32, H: 4, W: 4 },
    { N: 7, C: 16, H: 1, W: 1 },
    { N: 2, C: 16, H: 112, W: 112 },
  ]) {
    const inp = bnInputs(rng, p, true);
    for (const training of [1, 0]) {
      const q = { ...p, layout: 1, training };
      const { dy: _dy, ...noDy } = inp;
      const i2 = training ? inp : noDy;
      const ref = runOp("batchnorm2d", "ref", q, i2);
      const cpu = runOp("batchnorm2d", "cpu", q, i2);
      // the NCHW tolerances: the sums are double here, so they hold at M = 25088 too
      assertBatchnormClose(cpu, ref, training === 1, `batchnorm2d ${JSON.stringify(q)}`);
    }
  }
});

/** Run f with SELFLABEL_BN_KERNEL set (read when a blocked batch-norm op is created). */
function withBnKernel<T>(kernel: string | undefined, f: () => T): T {
  const saved = process.env.SELFLABEL_BN_KERNEL;
  if (kernel === undefined) delete process.env.SELFLABEL_BN_KERNEL;
  else process.env.SELFLABEL_BN_KERNEL = kernel;
  try {
    return f();
  } finally {
    if (saved === undefined) delete process.env.SELFLABEL_BN_KERNEL;
    else process.env.SELFLABEL_BN_KERNEL = saved;
  }
}

test("batchnorm2d + fused ReLU in nChw16c (AVX-512 and portable kernels) match the float64 reference", () => {
  const rng = new Rng(14);
  for (const kernel of [undefined, "portable"]) {
    for (const p of [
      { N: 2, C: 16, H: 5, W: 7 },
      { N: 3, C: 48, H: 3, W: 3 }, // an odd number of vectors per row
      { N: 7, C: 16, H: 1, W: 1 },
      { N: 2, C: 32, H: 28, W: 28 },
    ]) {
      const inp = bnInputs(rng, p, true);
      // a large common offset: the one-pass variance must not cancel (mean 100, spread ~2)
      const shifted: HarnessTensors = { ...inp, x: inp.x.map((v) => Math.fround(v + 100)) };
      for (const [what, i1] of [["", inp], ["x+100 ", shifted]] as [string, HarnessTensors][]) {
        for (const relu of [1, 0]) {
          for (const training of [1, 0]) {
            const q = { ...p, layout: 1, training, relu };
            const { dy: _dy, ...noDy } = i1;
            const i2: HarnessTensors = training ? i1 : noDy;
            const ref = runOp("batchnorm2d", "ref", q, i2);
            const cpu = withBnKernel(kernel, () => runOp("batchnorm2d", "cpu", q, i2));
            assertBatchnormClose(cpu, ref, training === 1, `batchnorm2d ${what}${kernel ?? "default"} kernel ${JSON.stringify(q)}`);
          }
        }
      }
    }
  }
});

test("a fused ReLU is refused where no kernel has it (NCHW batch norm)", () => {
  const p = { N: 2, C: 3, H: 2, W: 2, relu: 1 };
  assert.throws(() => runOp("batchnorm2d", "cpu", p, bnInputs(new Rng(1), p, false)), /fused ReLU runs on the nChw16c layout only/);
});

test("max and average pooling in nChw16c match the float64 reference", () => {
  const rng = new Rng(13);
  const cases: Params[] = [
    { N: 2, C: 16, H: 8, W: 7, kernel: 3, stride: 2, pad: 1 },
    { N: 1, C: 32, H: 6, W: 6, kernel: 2, stride: 2, pad: 0 },
    { N: 2, C: 16, H: 5, W: 4, kernel: 5, kernel_h: 5, kernel_w: 4, stride: 1, pad: 0 }, // global average
  ];
  for (const p of cases) {
    const KH = p.kernel_h ?? p.kernel,
      KW = p.kernel_w ?? p.kernel;
    const OH = Math.floor((p.H + 2 * p.pad - KH) / p.stride) + 1,
      OW = Math.floor((p.W + 2 * p.pad - KW) / p.stride) + 1;
    const nx = p.N * p.C * p.H * p.W;
    // distinct values (no max ties), float32-exact
    const x = new Float64Array(nx).map((_, i) => (i - nx / 2) / 64);
    for (let i = nx - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [x[i], x[j]] = [x[j], x[i]];
    }
    const inp = { x, dy: rng.tensor(p.N * p.C * OH * OW).map((v) => Math.fround(v)) };
    for (const op of ["maxpool2d", "avgpool2d"]) {
      const q = { ...p, layout: 1 };
      const ref = runOp(op, "ref", q, inp),
        cpu = runOp(op, "cpu", q, inp);
      assertClose(cpu.y, ref.y, op === "maxpool2d" ? { atol: 1e-300, rtol: 0 } : { atol: 1e-6, rtol: 1e-6 }, `${op} y ${JSON.stringify(q)}`);
      assertClose(cpu.dx, ref.dx, { atol: 3e-6, rtol: 0 }, `${op} dx ${JSON.stringify(q)}`);
    }
  }
});

test("a blocked activation needs channels divisible by 16: a clear error", () => {
  const x = new Float64Array(2 * 17 * 9);
  assert.throws(
    () => runOp("maxpool2d", "cpu", { N: 2, C: 17, H: 3, W: 3, kernel: 2, stride: 1, layout: 1 }, { x }),
    /blocked16 activation needs channels divisible by 16, got 17/,
  );
});

// ---------------------------------------------------------------- models

async function withLayout(layout: "plain" | "blocked", o: ModelOptions): Promise<Model> {
  const saved = process.env.SELFLABEL_LAYOUT;
  process.env.SELFLABEL_LAYOUT = layout;
  try {
    return await createModel(o);
  } finally {
    if (saved === undefined) delete process.env.SELFLABEL_LAYOUT;
    else process.env.SELFLABEL_LAYOUT = saved;
  }
}

function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0,
    s = 0;
  for (let i = 0; i < a.length; i++) (d = Math.max(d, Math.abs(a[i] - b[i]))), (s = Math.max(s, Math.abs(b[i])));
  return d / s;
}

test("models built blocked give the NCHW models' logits, features, probe taps and training step", { skip: !blockedHere && "no AVX-512 here" }, async () => {
  const cases: ModelOptions[] = [
    { arch: "smallcnn", numClasses: [10], inputShape: [1, 28, 28], seed: 4 },
    { arch: "resnet18", numClasses: [10, 5], inputShape: [3, 32, 32], seed: 4 },
    // alexnet small: its features end in a blocked max pool, reordered before the classifier's dropout
    { arch: "alexnet", archSpec: "small", numClasses: [10], inputShape: [3, 224, 224], seed: 4 },
  ];
  for (const o of cases) {
    const N = o.arch === "alexnet" ? 4 : 8;
    const rng = new Rng(5);
    const x = Float32Array.from(rng.tensor(N * o.inputShape[0] * o.inputShape[1] * o.inputShape[2]));
    const plain = await withLayout("plain", o),
      blocked = await withLayout("blocked", o);
    const tag = `${o.arch} ${o.inputShape.join("x")}`;
    // eval forward: float32 rounding in other orders only (observed < 1e-6 of the scale)
    const lp = await plain.forward(x),
      lb = await blocked.forward(x);
    for (let h = 0; h < lp.length; h++) assert.ok(relErr(lb[h], lp[h]) < 1e-5, `${tag} logits ${h}: ${relErr(lb[h], lp[h])}`);
    const fp = await plain.forward(x, { output: "features", mode: "train" }),
      fb = await blocked.forward(x, { output: "features", mode: "train" });
    assert.ok(relErr(fb, fp) < 1e-5, `${tag} train-mode features: ${relErr(fb, fp)}`);
    // every trunk layer's output through forwardTaps: the blocked ones are
    // reordered to NCHW for the caller
    const layers = plain.trunkLayers();
    const taps = layers.map((_, i) => ({ layer: i, pool: "none" as const }));
    const tp = await plain.forwardTaps(x, taps),
      tb = await blocked.forwardTaps(x, taps);
    for (let i = 0; i < tp.length; i++) assert.ok(relErr(tb[i], tp[i]) < 1e-5, `${tag} tap ${i} (${layers[i].name}): ${relErr(tb[i], tp[i])}`);
    // one training step (lr 0.1, no momentum): the parameters stay together to
    // float32 rounding of the updates
    const y = Int32Array.from({ length: N }, (_, i) => i % 5);
    const heads = o.numClasses.map(() => y);
    const rp = await plain.trainStep(x, heads, { lr: 0.1, momentum: 0, weightDecay: 0 });
    const rb = await blocked.trainStep(x, heads, { lr: 0.1, momentum: 0, weightDecay: 0 });
    assert.ok(Math.abs(rp.loss - rb.loss) <= 1e-5 * Math.abs(rp.loss), `${tag} loss ${rp.loss} vs ${rb.loss}`);
    const sp = await plain.stateDict(),
      sb = await blocked.stateDict();
    for (const k of Object.keys(sp)) {
      const a = sp[k].data as Float32Array,
        b = sb[k].data as Float32Array;
      let d = 0,
        s = 0;
      for (let i = 0; i < a.length; i++) (d = Math.max(d, Math.abs(a[i] - b[i]))), (s = Math.max(s, Math.abs(a[i])));
      assert.ok(d <= 1e-4 * s + 1e-7, `${tag} ${k} after one step: ${d} of ${s}`);
    }
  }
});
