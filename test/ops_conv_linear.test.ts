// conv2d and linear: the CPU backend (oneDNN, float32) against the float64
// reference, forward and backward, on many shapes including odd ones; the
// reference itself against finite differences; bad descriptors give errors.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { Rng, runOp, checkFiniteDiff, Params, assertWithinBound, absInputs } from "./helpers/opcheck";
import { HarnessTensors } from "./helpers/test_addon";

// ---------------------------------------------------------------- conv2d

interface Conv {
  N: number; C: number; H: number; W: number; K: number; R: number; S: number;
  stride: number; pad: number; bias: number;
}
const OH = (c: Conv) => Math.floor((c.H + 2 * c.pad - c.R) / c.stride) + 1;
const OW = (c: Conv) => Math.floor((c.W + 2 * c.pad - c.S) / c.stride) + 1;

function convInputs(c: Conv, rng: Rng): HarnessTensors {
  const inp: HarnessTensors = {
    x: rng.tensor(c.N * c.C * c.H * c.W),
    w: rng.tensor(c.K * c.C * c.R * c.S, 1 / Math.sqrt(c.C * c.R * c.S)),
    dy: rng.tensor(c.N * c.K * OH(c) * OW(c)),
  };
  if (c.bias) inp.b = rng.tensor(c.K);
  return inp;
}

function checkConv(c: Conv, rng: Rng, extra: Params = {}): void {
  const params = { ...c, ...extra } as unknown as Params;
  const inp = convInputs(c, rng);
  const ref = runOp("conv2d", "ref", params, inp);
  const bound = runOp("conv2d", "ref", params, absInputs(inp));
  const cpu = runOp("conv2d", "cpu", params, inp);
  const tag = `conv2d ${JSON.stringify(params)}`;
  // reduction lengths: y sums C*R*S products (+ bias); dx at most K*R*S;
  // dw and db sum over N*OH*OW output positions
  assertWithinBound(cpu.y, ref.y, bound.y, c.C * c.R * c.S + 1, `${tag} y`);
  if (extra.need_dx === 0) assert.equal(cpu.dx, undefined, `${tag}: dx returned though not needed`);
  else assertWithinBound(cpu.dx, ref.dx, bound.dx, c.K * c.R * c.S, `${tag} dx`);
  assertWithinBound(cpu.dw, ref.dw, bound.dw, c.N * OH(c) * OW(c), `${tag} dw`);
  if (c.bias) assertWithinBound(cpu.db, ref.db, bound.db, c.N * OH(c) * OW(c), `${tag} db`);
  else assert.equal(cpu.db, undefined);
}

const conv = (N: number, C: number, H: number, W: number, K: number, R: number, S: number,
  stride: number, pad: number, bias: number): Conv => ({ N, C, H, W, K, R, S, stride, pad, bias });

const CONV_CASES: Conv[] = [
  conv(1, 1, 9, 9, 4, 3, 3, 1, 1, 0),      // C=1, N=1 (MNIST-like first layer)
  conv(3, 3, 7, 5, 5, 5, 5, 2, 2, 1),      // C=3, odd H/W, 5x5 stride 2 pad 2, odd N
  conv(2, 6, 6, 6, 7, 1, 1, 1, 0, 1),      // 1x1
  conv(2, 4, 9, 11, 3, 3, 3, 4, 1, 0),     // stride 4
  conv(2, 3, 35, 35, 8, 11, 11, 4, 2, 1),  // AlexNet conv1: 11x11 stride 4 pad 2
  conv(1, 5, 5, 5, 3, 3, 3, 1, 2, 1),      // pad 2 > kernel/2
  conv(2, 3, 4, 4, 2, 1, 1, 1, 1, 0),      // 1x1 with pad 1: border outputs are bias/0
  conv(2, 3, 8, 7, 5, 3, 1, 1, 1, 1),      // non-square kernel
  conv(2, 16, 6, 6, 32, 3, 3, 1, 1, 0),    // channels a multiple of the 16-wide blocks
  conv(3, 17, 5, 7, 19, 3, 3, 2, 1, 1),    // channels just past a block
  conv(4, 32, 8, 8, 64, 3, 3, 1, 1, 0),    // smallcnn-like 32->64 on a small image
  conv(1, 2, 3, 3, 1, 3, 3, 1, 0, 1),      // output 1x1, K=1
  conv(2, 3, 6, 6, 4, 3, 3, 2, 0, 0),      // stride drops the last row/column (floor)
  conv(2, 3, 13, 11, 4, 7, 7, 2, 3, 0),    // ResNet stem: 7x7 stride 2 pad 3, odd sizes
  conv(2, 8, 7, 7, 6, 1, 1, 2, 0, 0),      // ResNet downsample: 1x1 stride 2
];

test("conv2d cpu matches the float64 reference on fixed shapes", () => {
  const rng = new Rng(1);
  for (const c of CONV_CASES) checkConv(c, rng);
});

test("conv2d cpu matches the reference on random shapes", () => {
  const rng = new Rng(2);
  const pick = <T>(a: T[]): T => a[rng.int(0, a.length - 1)];
  for (let t = 0; t < 24; t++) {
    const R = pick([1, 3, 5]);
    const S = rng.next() < 0.8 ? R : pick([1, 3, 5]);
    const pad = rng.int(0, 2);
    const c = conv(pick([1, 2, 3, 5]), pick([1, 2, 3, 4, 7, 16, 20]), rng.int(Math.max(1, R - 2 * pad), 12),
      rng.int(Math.max(1, S - 2 * pad), 12), pick([1, 3, 5, 8, 17, 32]), R, S, rng.int(1, 4), pad, rng.int(0, 1));
    checkConv(c, rng);
  }
});

test("conv2d backward with dx not needed (first layer) still gives dw and db", () => {
  const rng = new Rng(3);
  checkConv(conv(3, 3, 9, 9, 8, 3, 3, 1, 1, 1), rng, { need_dx: 0 });
  checkConv(conv(2, 1, 7, 7, 32, 3, 3, 1, 1, 0), rng, { need_dx: 0 });
});

test("conv2d cpu gives identical results on a rerun with equal inputs", () => {
  // The harness builds a fresh op per call, so this checks that nothing read
  // uninitialised memory (op-owned staging buffers, scratchpad, padding lanes).
  const rng = new Rng(4);
  const c = conv(2, 16, 6, 6, 16, 3, 3, 1, 1, 1);
  const inp = convInputs(c, rng);
  const a = runOp("conv2d", "cpu", c as unknown as Params, inp);
  const b = runOp("conv2d", "cpu", c as unknown as Params, inp);
  for (const k of Object.keys(a)) assert.deepEqual(a[k], b[k], k);
});

test("conv2d reference backward matches finite differences", () => {
  const rng = new Rng(5);
  for (const c of [conv(2, 3, 5, 6, 4, 3, 3, 1, 1, 1), conv(1, 2, 7, 7, 3, 5, 3, 2, 2, 1), conv(3, 1, 6, 5, 2, 1, 1, 4, 0, 1)]) {
    checkFiniteDiff("conv2d", c as unknown as Params, convInputs(c, rng), ["x", "w", "b"], { rng });
  }
});

test("conv2d: a descriptor with an empty output is a clear error, not a crash", () => {
  const c = conv(1, 1, 2, 2, 1, 5, 5, 1, 1, 0); // 2 + 2*1 = 4 < 5
  const inp = { x: new Float64Array(4), w: new Float64Array(25) };
  for (const be of ["cpu", "ref"] as const) {
    assert.throws(() => runOp("conv2d", be, c as unknown as Params, inp), (e: any) => {
      assert.equal(e.code, "SLN_INVALID_ARGUMENT");
      assert.match(e.message, /conv2d: empty output/);
      assert.match(e.message, /H:2, W:2, K:1, R:5, S:5, stride:1, pad:1/);
      return true;
    });
  }
  assert.throws(() => runOp("conv2d", "cpu", { ...c, R: 1, S: 1, stride: 0 } as unknown as Params, inp),
    /conv2d: need stride >= 1/);
  assert.throws(() => runOp("conv2d", "cpu", { ...c, C: 0, R: 1, S: 1 } as unknown as Params, inp),
    /conv2d: every size must be >= 1/);
  assert.throws(() => runOp("conv2d", "cpu", { ...c, R: 1, S: 1 } as unknown as Params, { x: new Float64Array(3), w: inp.w }),
    /input 'x' has 3 elements, expected 4/);
});

// ---------------------------------------------------------------- linear

interface Lin { N: number; in: number; out: number; bias: number }

function linInputs(l: Lin, rng: Rng): HarnessTensors {
  const inp: HarnessTensors = {
    x: rng.tensor(l.N * l.in),
    w: rng.tensor(l.out * l.in, 1 / Math.sqrt(l.in)),
    dy: rng.tensor(l.N * l.out),
  };
  if (l.bias) inp.b = rng.tensor(l.out);
  return inp;
}

test("linear cpu matches the float64 reference", () => {
  const rng = new Rng(11);
  const cases: Lin[] = [
    { N: 1, in: 1, out: 1, bias: 1 },
    { N: 3, in: 7, out: 5, bias: 0 },
    { N: 256, in: 128, out: 10, bias: 1 }, // smallcnn head
    { N: 5, in: 130, out: 17, bias: 1 },
    { N: 33, in: 64, out: 3000, bias: 1 }, // many clusters (SeLa heads)
  ];
  for (let t = 0; t < 10; t++) cases.push({ N: rng.int(1, 40), in: rng.int(1, 150), out: rng.int(1, 40), bias: rng.int(0, 1) });
  for (const l of cases) {
    const params = l as unknown as Params;
    const inp = linInputs(l, rng);
    const ref = runOp("linear", "ref", params, inp);
    const bound = runOp("linear", "ref", params, absInputs(inp));
    const cpu = runOp("linear", "cpu", params, inp);
    const tag = `linear ${JSON.stringify(l)}`;
    // reduction lengths: y over in (+ bias), dx over out, dw and db over N
    assertWithinBound(cpu.y, ref.y, bound.y, l.in + 1, `${tag} y`);
    assertWithinBound(cpu.dx, ref.dx, bound.dx, l.out, `${tag} dx`);
    assertWithinBound(cpu.dw, ref.dw, bound.dw, l.N, `${tag} dw`);
    if (l.bias) assertWithinBound(cpu.db, ref.db, bound.db, l.N, `${tag} db`);
  }
});

test("linear reference backward matches finite differences", () => {
  const rng = new Rng(12);
  for (const l of [{ N: 3, in: 5, out: 4, bias: 1 }, { N: 1, in: 9, out: 2, bias: 1 }]) {
    checkFiniteDiff("linear", l as unknown as Params, linInputs(l, rng), ["x", "w", "b"], { rng });
  }
});

test("linear: bad sizes are a clear error", () => {
  for (const be of ["cpu", "ref"] as const) {
    assert.throws(() => runOp("linear", be, { N: 2, in: 0, out: 3, bias: 1 }, { x: new Float64Array(0), w: new Float64Array(0), b: new Float64Array(3) }),
      (e: any) => e.code === "SLN_INVALID_ARGUMENT" && /linear: every size must be >= 1.*in:0/.test(e.message));
    assert.throws(() => runOp("linear", be, { N: 2, in: 3, out: 3, bias: 1 }, { x: new Float64Array(6), w: new Float64Array(9) }),
      /missing input 'b'/);
  }
});
