// Mixed-precision training (--precision bf16, Conv2dDesc::bf16): the CPU
// convolutions read x, w and dy rounded to bfloat16 and accumulate in float32.
// Each is checked against the float64 reference run on the same bfloat16-
// rounded inputs, with the float32 tests' accumulation bound: a convolution
// that skipped the rounding (float32 throughout) or rounded the wrong operand
// is off by about 2^-9 of the sum's scale, far outside that bound.
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { Rng, convCase, runOp, Params, assertWithinBound, absInputs } from "./helpers/opcheck";
import { createModel } from "../lib/model";
import { train, TrainOptions, AbortError } from "../lib/index";
import { native, packageRoot } from "../lib/binding";
import { readCheckpoint, checkpointDir, checkpointName } from "../lib/train/checkpoint";

/** Round a double to float32, then to bfloat16 (round to nearest, ties to even), as oneDNN's reorder does. */
export function bf16(v: number): number {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer);
  u[0] = ((u[0] + 0x7fff + ((u[0] >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f[0];
}
const roundAll = (a: Float64Array): Float64Array => a.map(bf16);

test("bf16 rounding helper: ties to even, exact values kept", () => {
  assert.equal(bf16(1), 1);
  assert.equal(bf16(1 + 2 ** -8), 1); // a tie: to even (1.0)
  assert.equal(bf16(1 + 3 * 2 ** -8), 1 + 2 ** -6); // a tie: to even (1 + 2^-6)
  assert.equal(bf16(1 + 2 ** -8 + 2 ** -12), 1 + 2 ** -7); // above the tie: up
  assert.equal(bf16(-3.140625), -3.140625);
});

test("conv2d with bf16 operands matches the float64 reference on bf16-rounded x, w and dy", () => {
  const rng = new Rng(21);
  const cases: Params[] = [
    // a first layer (plain 1- or 3-channel x, blocked y, no dx)
    { N: 2, C: 1, H: 9, W: 9, K: 32, R: 3, S: 3, stride: 1, pad: 1, bias: 0, src_layout: 0, dst_layout: 1, need_dx: 0 },
    { N: 2, C: 3, H: 13, W: 11, K: 16, R: 7, S: 7, stride: 2, pad: 3, bias: 0, src_layout: 0, dst_layout: 1, need_dx: 0 },
    // inside the trunk: both blocked, 3x3 with bias, 1x1 stride 2
    { N: 3, C: 32, H: 7, W: 6, K: 48, R: 3, S: 3, stride: 1, pad: 1, bias: 1, src_layout: 1, dst_layout: 1 },
    { N: 2, C: 16, H: 8, W: 8, K: 32, R: 1, S: 1, stride: 2, pad: 0, bias: 0, src_layout: 1, dst_layout: 1 },
    // plain in and out (no blocked layouts on this CPU, or AlexNet's last conv)
    { N: 2, C: 32, H: 5, W: 5, K: 17, R: 3, S: 3, stride: 1, pad: 1, bias: 1, src_layout: 0, dst_layout: 0 },
  ];
  for (const p of cases) {
    const { OH, OW, inp } = convCase(rng, p, (v) => Math.fround(v));
    const rounded = { ...inp, x: roundAll(inp.x), w: roundAll(inp.w), dy: roundAll(inp.dy) };
    const q = { ...p, bf16: 1 };
    const ref = runOp("conv2d", "ref", p, rounded);
    const bound = runOp("conv2d", "ref", p, absInputs(rounded));
    const cpu = runOp("conv2d", "cpu", q, inp);
    const tag = `conv2d ${JSON.stringify(q)}`;
    assertWithinBound(cpu.y, ref.y, bound.y, p.C * p.R * p.S + 1, `${tag} y`);
    if (p.need_dx === 0) assert.equal(cpu.dx, undefined);
    else assertWithinBound(cpu.dx, ref.dx, bound.dx, p.K * p.R * p.S, `${tag} dx`);
    assertWithinBound(cpu.dw, ref.dw, bound.dw, p.N * OH * OW, `${tag} dw`);
    if (p.bias) assertWithinBound(cpu.db, ref.db, bound.db, p.N * OH * OW, `${tag} db`);
    // and the rounding is real: the float32 reference lies outside that bound
    const ref32 = runOp("conv2d", "ref", p, inp);
    assert.throws(() => assertWithinBound(cpu.y, ref32.y, bound.y, p.C * p.R * p.S + 1, "y vs float32"));
  }
});

// ---------------------------------------------------------------- models and runs

const bf16Here = native().info().cpu.includes("avx512");
const cli = path.join(packageRoot(), ".build-ts/lib/cli.js");

/** Each convolution that one training step of `arch` runs, as oneDNN reports it (ONEDNN_VERBOSE in a child process). */
function convExecs(arch: string, precision: string, shape: string): string[] {
  const code = `
    const { createModel } = require(${JSON.stringify(path.join(packageRoot(), ".build-ts/lib/model.js"))});
    (async () => {
      const [c, h, w] = ${JSON.stringify(shape)}.split("x").map(Number);
      const m = await createModel({ arch: ${JSON.stringify(arch)}, numClasses: [5], inputShape: [c, h, w], seed: 3, precision: ${JSON.stringify(precision)} });
      const x = new Float32Array(4 * c * h * w).map((_, i) => Math.sin(i));
      await m.trainStep(x, [Int32Array.from([0, 1, 2, 3])], { lr: 0.01, momentum: 0.9, weightDecay: 0 });
      m.dispose();
    })();`;
  const r = spawnSync(process.execPath, ["-e", code], { encoding: "utf8", env: { ...process.env, ONEDNN_VERBOSE: "1" } });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split("\n").filter((l) => /exec,cpu,convolution,/.test(l));
}

test("precision bf16: every convolution of smallcnn, resnet18 (inside its residual blocks) and alexnet runs on bfloat16 operands", (t) => {
  if (!bf16Here) return t.skip("no AVX-512: oneDNN has no bfloat16 convolutions here");
  for (const [arch, shape, convs] of [
    ["smallcnn", "1x28x28", 5],
    ["resnet18", "3x16x16", 20],
    ["alexnet", "3x224x224", 5],
  ] as const) {
    const f32 = convExecs(arch, "f32", shape);
    const bf = convExecs(arch, "bf16", shape);
    // forward + backward weights per conv, backward data for all but the first
    const n = (kind: string) => bf.filter((l) => l.includes(kind)).length;
    assert.deepEqual([n("forward_training"), n("backward_weights"), n("backward_data")], [convs, convs, convs - 1], `${arch}: ${bf.length} convolution calls`);
    assert.equal(f32.length, bf.length);
    for (const l of f32) assert.match(l, /src_f32/, `${arch} f32: ${l}`);
    for (const l of bf) {
      const kind = /forward_training|backward_data|backward_weights/.exec(l)![0];
      // forward: src and weights bf16, dst f32; backward data: diff_dst and weights bf16, diff_src f32; backward weights: src and diff_dst bf16, diff_weights f32
      const want = { forward_training: /src_bf16.*wei_bf16.*dst_f32/, backward_data: /src_f32.*wei_bf16.*dst_bf16/, backward_weights: /src_bf16.*wei_f32.*dst_bf16/ }[kind]!;
      assert.match(l, want, `${arch} bf16 ${kind}: ${l}`);
    }
  }
});

test("precision bf16: a model's features within bfloat16 error of float32; one step's update as close to float32's as float32's own to a bfloat16-sized input change", async (t) => {
  if (!bf16Here) return t.skip("no AVX-512: oneDNN has no bfloat16 convolutions here");
  for (const [arch, shape] of [
    ["smallcnn", [3, 32, 32]],
    ["resnet18", [3, 16, 16]],
  ] as const) {
    const make = (precision: "f32" | "bf16") => createModel({ arch, numClasses: [10], inputShape: [...shape], seed: 5, device: "cpu", precision });
    const [a, b, c] = [await make("f32"), await make("bf16"), await make("f32")];
    assert.equal(b.precision, "bf16");
    const n = 8 * shape[0] * shape[1] * shape[2];
    const x = new Float32Array(n).map((_, i) => Math.sin(i * 0.37) + 0.3 * Math.cos(i * 0.011));
    // every input moved by bfloat16's unit roundoff (2^-9), in a fixed sign pattern
    const xMoved = x.map((v, i) => v * (1 + (Math.sin(i * 7.1) > 0 ? 1 : -1) * 2 ** -9));
    const y = Int32Array.from({ length: 8 }, (_, i) => i % 10);
    const rel = (p: Float32Array, q: Float32Array) => {
      let num = 0,
        den = 0;
      for (let i = 0; i < p.length; i++) (num += (p[i] - q[i]) ** 2), (den += q[i] ** 2);
      return Math.sqrt(num / den);
    };
    const fa = (await a.forward(x, { output: "features" })) as Float32Array;
    const fb = (await b.forward(x, { output: "features" })) as Float32Array;
    const e = rel(fb, fa);
    t.diagnostic(`${arch}: features' relative L2 difference bf16 vs f32 ${e.toExponential(2)}`);
    assert.ok(e > 1e-4 && e < 3e-2, `${arch}: relative difference ${e}`);
    // one SGD step: the update of every weight tensor. With batch norm over 8
    // images the gradient is sensitive (float32 moves its update by 10-30% for
    // a 2^-9 input change), so bfloat16's error is measured against that.
    const w0 = await a.stateDict();
    const opts = { lr: 0.05, momentum: 0.9, weightDecay: 1e-5 };
    const [la, lb] = [await a.trainStep(x, [y], opts), await b.trainStep(x, [y], opts)];
    await c.trainStep(xMoved, [y], opts);
    assert.ok(Math.abs(la.loss - lb.loss) < 2e-2 * Math.abs(la.loss), `${arch}: loss ${lb.loss} vs ${la.loss}`);
    const [wa, wb, wc] = [await a.stateDict(), await b.stateDict(), await c.stateDict()];
    let checked = 0;
    for (const k of Object.keys(wa)) {
      if (!k.endsWith("weight") || wa[k].data.length < 100) continue;
      assert.ok(wb[k].data instanceof Float32Array, "float32 master weights");
      const upd = (w: Float32Array) => w.map((v, i) => v - w0[k].data[i]);
      const ua = upd(wa[k].data);
      const eb = rel(upd(wb[k].data), ua),
        ec = rel(upd(wc[k].data), ua);
      assert.ok(eb > 0 && eb < 3 * ec, `${arch} ${k}: bf16's update is ${eb.toExponential(2)} off float32's; a 2^-9 input change moves it ${ec.toExponential(2)}`);
      checked++;
    }
    assert.ok(checked >= 5);
    a.dispose(), b.dispose(), c.dispose();
  }
  await assert.rejects(createModel({ arch: "smallcnn", numClasses: [10], inputShape: [1, 28, 28], precision: "f16" as "bf16" }), /precision must be 'f32' or 'bf16', got 'f16'/);
});

test("--precision bf16: a run logs and records it, an aborted run resumes bit for bit, another precision on resume is said, a bad value exits 2", async (t) => {
  if (!bf16Here) return t.skip("no AVX-512: oneDNN has no bfloat16 convolutions here");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-precision-"));
  const opts = (exp: string, precision: "f32" | "bf16" = "bf16"): TrainOptions => ({
    exp: path.join(tmp, exp),
    syntheticCount: 300,
    batchSize: 100,
    epochs: 2,
    nopts: 3,
    recipe: "reference",
    evalTest: false,
    threads: 2,
    device: "cpu",
    precision,
  });
  const lines: string[] = [];
  await train(opts("whole"), { log: (l) => lines.push(l) });
  assert.ok(lines.some((l) => /training step: bf16 mixed precision \(--precision bf16/.test(l)), lines.join("\n"));
  const start = JSON.parse(fs.readFileSync(path.join(tmp, "whole", "log.jsonl"), "utf8").split("\n")[0]);
  assert.equal(start.precision, "bf16");
  assert.equal(readCheckpoint(path.join(checkpointDir(path.join(tmp, "whole")), checkpointName(2))).meta.extra!.precision, "bf16");
  // aborted at batch 2 of epoch 0, then resumed: the uninterrupted run's weights exactly
  const aborted = async (exp: string) => {
    const ctl = new AbortController();
    const err = await train(opts(exp), { signal: ctl.signal, onProgress: (p) => p.type === "batch" && p.epoch === 0 && p.batch === 2 && ctl.abort() }).then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof AbortError, String(err));
  };
  await aborted("a");
  const resumed: string[] = [];
  await train(opts("a"), { log: (l) => resumed.push(l) });
  assert.ok(!resumed.some((l) => /was trained with --precision/.test(l)));
  const bytes = (exp: string) => fs.readFileSync(path.join(tmp, exp, "model.safetensors"));
  assert.ok(bytes("a").equals(bytes("whole")), "aborted + resumed in bf16 = the uninterrupted bf16 run");
  // resuming in float32 goes on, and says that the run is no longer the uninterrupted one
  await aborted("b");
  const other: string[] = [];
  await train(opts("b", "f32"), { log: (l) => other.push(l) });
  assert.ok(other.some((l) => /was trained with --precision bf16; continuing in f32/.test(l)), other.join("\n"));
  assert.ok(!bytes("b").equals(bytes("whole")));
  // the CLI: a bad value exits 2 naming the flag, and creates nothing
  const r = spawnSync(process.execPath, [cli, "train", "--exp", path.join(tmp, "bad"), "--synthetic-count", "300", "--precision", "half"], { encoding: "utf8" });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /precision.*half/);
  assert.ok(!fs.existsSync(path.join(tmp, "bad", "log.jsonl")));
  fs.rmSync(tmp, { recursive: true, force: true });
});
