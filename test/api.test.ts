// The public API as a program uses it: the export surface (train, types,
// every error class with a stable code; internals only under
// "selflabel-native/internals"), train() progress events counted, an abort
// between batches that writes a checkpoint and rejects with AbortError, and a
// resume from it that ends bit for bit where an uninterrupted run ends; a
// finished run says so instead of repeating its last label pass; Symbol.dispose.
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as api from "../lib/index";
import * as internals from "../lib/internals";
import { train, TrainProgress, TrainOptions, AbortError, createModel } from "../lib/index";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-api-"));
// 600 synthetic images, batches of 100: 6 batches an epoch, 3 label passes over 2 epochs
const base = (exp: string): TrainOptions => ({
  exp: path.join(tmp, exp),
  syntheticCount: 600,
  batchSize: 100,
  epochs: 2,
  nopts: 3,
  recipe: "reference", // counts the reference schedule's label passes
  evalTest: false,
  threads: 2,
  device: "cpu",
});

test("public surface: train and the error classes; internals only in selflabel-native/internals", () => {
  assert.equal(typeof api.train, "function");
  for (const name of ["native", "memoryBandwidth", "roundHalfEven", "sinkhornTwoPassReference", "harnessRun", "packageRoot", "Prng"])
    assert.ok(!(name in api), `${name} is internal`);
  assert.equal(typeof internals.native, "function");
  assert.equal(typeof internals.sinkhornTwoPassReference, "function");
  assert.ok(Object.keys(api).length < 60, `${Object.keys(api).length} exports`);
  const errors: [Error, string][] = [
    [new api.UsageError("x"), "SLN_USAGE"],
    [new api.InputError("x"), "SLN_INPUT"],
    [new api.AbortError("x", null), "ABORT_ERR"],
    [new api.AddonLoadError("x", null), "SLN_ADDON_LOAD"],
    [new api.CheckpointError("x"), "SLN_CHECKPOINT"],
    [new api.SafetensorsError("f", "x"), "SLN_BAD_SAFETENSORS"],
    [new api.PthError("x"), "SLN_BAD_PTH"],
    [new api.DeviceUnavailableError("x"), "SLN_NO_DEVICE"],
    [new api.DataNotFoundError("p"), "SLN_DATA_NOT_FOUND"],
    [new api.DataUsageError("x"), "SLN_DATA_USAGE"],
    // train() throws these too: another run holds the experiment; a write or read the system refused (the errno's code)
    [new api.ExperimentLockedError("x"), "SLN_EXP_LOCKED"],
    [new api.WriteError("f", 1, Object.assign(new Error("x"), { code: "ENOSPC" })), "ENOSPC"],
    [new api.SafetensorsIoError("f", Object.assign(new Error("x"), { code: "ENOENT" })), "ENOENT"],
  ];
  for (const [e, code] of errors) {
    assert.ok(e instanceof Error);
    assert.equal((e as { code?: string }).code, code, e.name);
  }
  assert.equal(new api.AbortError("x", null).name, "AbortError");
});

test("train(): progress events counted; a rerun of a finished run says so and trains nothing", async () => {
  const events: TrainProgress[] = [];
  const lines: string[] = [];
  const r = await train(base("whole"), { onProgress: (p) => events.push(p), log: (l) => lines.push(l) });
  const count = (t: string) => events.filter((e) => e.type === t).length;
  assert.equal(count("start"), 1);
  assert.equal(count("batch"), 12);
  assert.equal(count("epoch"), 2);
  const passEnds = events.filter((e) => e.type === "labelPass" && e.phase === "end");
  assert.equal(passEnds.length, 3);
  assert.equal(r.labelPasses, 3);
  const starts = events.filter((e) => e.type === "labelPass" && e.phase === "forward" && e.done === 0);
  assert.equal(starts.length, 3);
  const solving = events.filter((e) => e.type === "labelPass" && e.phase === "solve");
  assert.equal(solving.length, 3, "forward reaches all 600 images once per pass");
  const batches = events.filter((e): e is Extract<TrainProgress, { type: "batch" }> => e.type === "batch");
  for (let i = 1; i < batches.length; i++) assert.ok(batches[i].fraction >= batches[i - 1].fraction, "the whole run's fraction never goes back");
  assert.ok(batches.every((b) => Number.isFinite(b.etaSec) && b.etaSec >= 0));
  // after the last batch only label passes are left, each costing what the first one took
  const lastBatch = events.lastIndexOf(batches[batches.length - 1]);
  const passesAfter = events.slice(lastBatch).filter((e) => e.type === "labelPass" && e.phase === "end").length;
  assert.ok(passesAfter >= 1, "the final label pass runs after the last batch");
  const first = passEnds[0] as Extract<TrainProgress, { type: "labelPass" }>;
  assert.equal(batches[batches.length - 1].etaSec, passesAfter * first.seconds!);
  assert.ok(batches[batches.length - 1].fraction < 1);
  // log.jsonl: versions at start, a record per epoch and label pass
  const log = fs.readFileSync(path.join(tmp, "whole", "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const start = log.find((x) => x.event === "start");
  assert.match(start.versions.package, /^\d+\.\d+\.\d+/);
  assert.equal(start.versions.node, process.version);
  assert.match(start.versions.cpu, /^oneDNN \d/);
  assert.equal(log.filter((x) => x.event === "epoch").length, 2);
  assert.equal(log.filter((x) => x.event === "labels").length, 3);

  const again: string[] = [];
  const r2 = await train(base("whole"), { log: (l) => again.push(l) });
  assert.equal(r2.alreadyFinished, true);
  assert.equal(r2.labelPasses, 3);
  assert.equal(r2.finalLoss, r.finalLoss);
  assert.ok(again.some((l) => /whole is finished: 2 epochs, 3 label passes/.test(l)), again.join("\n"));
  const log2 = fs.readFileSync(path.join(tmp, "whole", "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(log2.length, log.length, "nothing was trained or recorded");
});

test("abort mid-epoch: checkpoint + AbortError; resuming ends bit for bit as the uninterrupted run", async () => {
  const ctl = new AbortController();
  const err = await train(base("aborted"), {
    signal: ctl.signal,
    onProgress: (p) => {
      if (p.type === "batch" && p.epoch === 0 && p.batch === 2) ctl.abort();
    },
  }).then(
    () => null,
    (e) => e,
  );
  assert.ok(err instanceof AbortError, String(err));
  assert.equal(err.code, "ABORT_ERR");
  assert.equal(err.checkpoint, path.join(tmp, "aborted", "checkpoints", "partial.safetensors"));
  assert.ok(fs.existsSync(err.checkpoint));
  // resumed: starts at batch 2 of epoch 0, then runs to the end
  const events: TrainProgress[] = [];
  const r = await train(base("aborted"), { onProgress: (p) => events.push(p) });
  const start = events.find((e) => e.type === "start")!;
  assert.deepEqual([start.type === "start" && start.startEpoch, start.type === "start" && start.startBatch], [0, 2]);
  assert.equal(events.filter((e) => e.type === "batch").length, 10);
  assert.ok(!fs.existsSync(err.checkpoint), "the partial checkpoint is gone once an epoch checkpoint supersedes it");
  // the uninterrupted run of the same options (made by the previous test, or here)
  const whole = path.join(tmp, "whole");
  if (!fs.existsSync(path.join(whole, "model.safetensors"))) await train(base("whole"));
  const done = fs.readFileSync(path.join(whole, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).find((x) => x.event === "done");
  assert.equal(r.finalLoss, done.finalLoss);
  assert.ok(fs.readFileSync(path.join(tmp, "aborted", "model.safetensors")).equals(fs.readFileSync(path.join(whole, "model.safetensors"))), "same weights");
  assert.equal(fs.readFileSync(path.join(tmp, "aborted", "labels.csv"), "utf8"), fs.readFileSync(path.join(whole, "labels.csv"), "utf8"));
});

test("an aborted signal before the start rejects at once and creates nothing", async () => {
  const ctl = new AbortController();
  ctl.abort();
  await assert.rejects(train(base("never"), { signal: ctl.signal }), (e: unknown) => e instanceof AbortError && e.checkpoint === null);
  assert.ok(!fs.existsSync(path.join(tmp, "never")));
});

test("models free their native memory at the end of a `using` block", async () => {
  let seen: api.Model | undefined;
  {
    using m = await createModel({ arch: "smallcnn", numClasses: [10], inputShape: [1, 28, 28] });
    seen = m;
    assert.equal(m.disposed, false);
  }
  assert.equal(seen!.disposed, true);
});

test("train() on a new ImageFolder reports the decoding (train, then test split); a second run finds the cache and reports none", async () => {
  const { Jimp } = await import("jimp");
  const root = path.join(tmp, "folder");
  for (const [split, n] of [["train", 12], ["val", 3]] as const)
    for (const cls of ["a", "b"])
      for (let i = 0; i < n; i++) {
        const img = new Jimp({ width: 32, height: 32, color: cls === "a" ? 0x2040a0ff : 0xc08020ff });
        for (let p = 0; p < 32 * 32; p++) img.bitmap.data[4 * p] = (p * (i + 3)) & 255;
        fs.mkdirSync(path.join(root, split, cls), { recursive: true });
        fs.writeFileSync(path.join(root, split, cls, `${i}.png`), await img.getBuffer("image/png"));
      }
  const prev = process.env.SELFLABEL_CACHE_DIR;
  process.env.SELFLABEL_CACHE_DIR = path.join(tmp, "folder-cache");
  try {
    const opts = (exp: string): TrainOptions => ({ exp: path.join(tmp, exp), data: root, batchSize: 8, epochs: 1, nopts: 1, ncl: 2, threads: 2, device: "cpu" });
    const events: TrainProgress[] = [];
    await train(opts("folder1"), { onProgress: (p) => events.push(p) });
    const decode = events.filter((e) => e.type === "decode");
    const train24 = decode.filter((e) => e.split === "train");
    assert.deepEqual(train24.map((e) => e.done), Array.from({ length: 24 }, (_, i) => i + 1));
    assert.ok(train24.every((e) => e.images === 24));
    assert.deepEqual(decode.filter((e) => e.split === "test").map((e) => [e.done, e.images]).slice(-1), [[6, 6]]);
    assert.ok(events.indexOf(train24[23]) < events.findIndex((e) => e.type === "start"), "decoded before the run starts");
    const again: TrainProgress[] = [];
    await train(opts("folder2"), { onProgress: (p) => again.push(p) });
    assert.equal(again.filter((e) => e.type === "decode").length, 0);
    assert.ok(again.some((e) => e.type === "eval"));
  } finally {
    if (prev === undefined) delete process.env.SELFLABEL_CACHE_DIR;
    else process.env.SELFLABEL_CACHE_DIR = prev;
  }
});
