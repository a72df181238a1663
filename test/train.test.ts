// The train command: a short run on the synthetic set, its outputs, exact
// resume after SIGKILL (between epochs and in the middle of a checkpoint
// write), and every bad-input path (exit 2, one line, nothing written).
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";
import { labelTimes, dueCount, learningRate, isBeforeLrDrop } from "../lib/train/schedule";
import { load } from "../lib/safetensors";
import { readCheckpoint, listCheckpointFiles } from "../lib/train/checkpoint";
import { resolveOptions } from "../lib/train/train";

const cli = path.join(packageRoot(), ".build-ts/lib/cli.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-train-"));
// a small, fast configuration: 600 synthetic images, batches of 100, the
// reference recipe (its schedule: a pass at 0, --nopts quadratic times)
const SMALL_FLAGS: Record<string, string> = {
  "--recipe": "reference",
  "--synthetic-count": "600",
  "--batch-size": "100",
  "--nopts": "4",
  "--eval-test": "false",
  "--threads": "2",
};
function small(over: Record<string, string> = {}): string[] {
  return Object.entries({ ...SMALL_FLAGS, ...over }).flat();
}
const SMALL = small();

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [cli, "train", ...args], { encoding: "utf8", env: { ...process.env, ...env } });
}

test("label schedule: quadratic, first at 0, last at the end (not dropped)", () => {
  const t = labelTimes(4, 1000, 5);
  assert.deepEqual(t, [0, 250, 1000, 2250, 4000]);
  assert.deepEqual(labelTimes(3, 10, 1), [0]);
  assert.equal(dueCount(t, 0), 1);
  assert.equal(dueCount(t, 999), 2);
  assert.equal(dueCount(t, 4000), 5);
  assert.throws(() => labelTimes(1, 10, 0), RangeError);
  assert.equal(learningRate(0.05, 0, 150), 0.05);
  assert.ok(Math.abs(learningRate(0.05, 150, 150) - 0.005) < 1e-15);
  assert.ok(isBeforeLrDrop(149, 150, 400));
  assert.ok(!isBeforeLrDrop(399, 400, 400));
});

test("defaults: small images get batch 128; others the reference's; --ncl lists resolve per head", () => {
  const s = resolveOptions({}, true);
  assert.equal(s.batchSize, 128);
  assert.equal(s.cropScale, 0, "the level's own crop scale");
  assert.deepEqual(s.ncl, [10]);
  const r = resolveOptions({}, false);
  assert.equal(r.batchSize, 256);
  assert.equal(r.cropScale, 0, "large images keep the level's own crop scale");
  assert.deepEqual(r.ncl, [3000]);
  assert.deepEqual(resolveOptions({ ncl: 20, hc: 3 }, true).ncl, [20, 20, 20]);
  const l = resolveOptions({ ncl: [10, 50] }, true);
  assert.deepEqual([l.hc, l.ncl], [2, [10, 50]]);
  assert.throws(() => resolveOptions({ cropScale: 1.5 }, true), /--crop-scale must be in \[0, 1\]/);
});

test("a short run writes checkpoints, log.jsonl, model.safetensors and labels.csv", () => {
  const exp = path.join(tmp, "short");
  const r = run(["--exp", exp, "--epochs", "2", ...SMALL]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /label pass 1 \(after 0 images\)/);
  assert.match(r.stdout, /label pass 4 \(after 1200 images\)/, "the last scheduled solve runs after the final batch");
  assert.match(r.stdout, /self-labels vs true classes: head 0: NMI \d\.\d+/);
  const csv = fs.readFileSync(path.join(exp, "labels.csv"), "utf8").trim().split("\n");
  assert.equal(csv[0], "index,path,label_head0");
  assert.equal(csv.length, 601);
  const counts = new Array(10).fill(0);
  for (const row of csv.slice(1)) counts[Number(row.split(",")[2])]++;
  assert.equal(counts.reduce((a, b) => a + b), 600);
  const events = fs.readFileSync(path.join(exp, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).event);
  assert.equal(events.filter((e) => e === "labels").length, 4);
  assert.equal(events.filter((e) => e === "epoch").length, 2);
  assert.equal(events[events.length - 1], "done");
  const m = load(path.join(exp, "model.safetensors"));
  assert.deepEqual(m.tensors["features.0.weight"].shape, [32, 3, 3, 3]);
  const ck = listCheckpointFiles(exp).map(readCheckpoint);
  assert.deepEqual(ck.map((c) => c.meta.epoch).sort(), [1, 2]);
  assert.equal(ck[0].labels[0].length, 600);
  assert.ok(Object.keys(ck[0].momentum).length > 0);
});

test("--init starts from given weights (our model.safetensors here; .pth is covered by the zoo tests)", () => {
  const src = path.join(tmp, "short", "model.safetensors");
  const exp = path.join(tmp, "init");
  const r = run(["--exp", exp, "--epochs", "1", ...SMALL, "--init", src]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /initial weights from .*model\.safetensors/);
  const bad = run(["--exp", path.join(tmp, "init-bad"), "--epochs", "1", ...SMALL, "--init", path.join(tmp, "nope.pth")]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--init .*nope\.pth: no such file/);
  assert.ok(!fs.existsSync(path.join(tmp, "init-bad")));
});

test("--ncl 10,30: one head per listed size, head 0 reported first; --subset trains on part of the data", () => {
  const exp = path.join(tmp, "ncl-list");
  const r = run(["--exp", exp, "--epochs", "1", ...small({ "--nopts": "2" }), "--ncl", "10,30", "--subset", "400"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /2 heads of 10\/30\) on synthetic \(subset 400\): 400 images/);
  assert.match(r.stdout, /self-labels vs true classes: head 0: NMI [\d.]+, ARI [-\d.]+, accuracy [\d.]+; head 1: /);
  const csv = fs.readFileSync(path.join(exp, "labels.csv"), "utf8").trim().split("\n");
  assert.equal(csv[0], "index,path,label_head0,label_head1");
  assert.equal(csv.length, 401);
  const maxOf = (h: number) => Math.max(...csv.slice(1).map((row) => Number(row.split(",")[2 + h])));
  assert.ok(maxOf(0) <= 9 && maxOf(1) > 9 && maxOf(1) <= 29, `${maxOf(0)} ${maxOf(1)}`);
  const m = load(path.join(exp, "model.safetensors"));
  assert.deepEqual(m.tensors["top_layer0.weight"].shape[0], 10);
  assert.deepEqual(m.tensors["top_layer1.weight"].shape[0], 30);
});

function outputs(exp: string) {
  return {
    model: fs.readFileSync(path.join(exp, "model.safetensors")),
    labels: fs.readFileSync(path.join(exp, "labels.csv"), "utf8"),
  };
}

test("killed between epochs or in a checkpoint write, resume ends bit for bit as an uninterrupted run", () => {
  const args = ["--epochs", "3", ...small({ "--nopts": "6" })];
  const a = path.join(tmp, "uninterrupted");
  assert.equal(run(["--exp", a, ...args]).status, 0);
  const ref = outputs(a);

  const b = path.join(tmp, "killed-between");
  const k1 = run(["--exp", b, ...args], { SELFLABEL_TEST_KILL_AFTER_CHECKPOINT: "1" });
  assert.equal(k1.signal, "SIGKILL");
  assert.ok(!fs.existsSync(path.join(b, "model.safetensors")));
  const r1 = run(["--exp", b, ...args]);
  assert.equal(r1.status, 0, r1.stderr);
  assert.match(r1.stdout, /resuming from .*epoch-0001/);
  assert.ok(outputs(b).model.equals(ref.model), "parameters differ after resume");
  assert.equal(outputs(b).labels, ref.labels);

  const c = path.join(tmp, "killed-during");
  const k2 = run(["--exp", c, ...args], { SELFLABEL_TEST_KILL_DURING_CHECKPOINT: "2" });
  assert.equal(k2.signal, "SIGKILL");
  const leftovers = fs.readdirSync(path.join(c, "checkpoints"));
  assert.ok(leftovers.some((f) => f.startsWith(".") && f.includes("tmp")), "the torn temporary file is there");
  const r2 = run(["--exp", c, ...args]);
  assert.equal(r2.status, 0, r2.stderr);
  assert.match(r2.stdout, /resuming from .*epoch-0001/, "the torn write is never picked");
  assert.ok(outputs(c).model.equals(ref.model), "parameters differ after resume");
  assert.equal(outputs(c).labels, ref.labels);
});

test("spectral recipe: killed between epochs, resume ends bit for bit as an uninterrupted run (the spectral pass half way runs after the resume)", () => {
  const args = ["--epochs", "2", ...small({ "--recipe": "spectral", "--nopts": "2" })];
  const a = path.join(tmp, "spectral-uninterrupted");
  const r0 = run(["--exp", a, ...args]);
  assert.equal(r0.status, 0, r0.stderr);
  assert.match(r0.stdout, /label pass 1 \(after 600 images\): spectral clustering/);
  const ref = outputs(a);
  const b = path.join(tmp, "spectral-killed");
  const k1 = run(["--exp", b, ...args], { SELFLABEL_TEST_KILL_AFTER_CHECKPOINT: "1" });
  assert.equal(k1.signal, "SIGKILL");
  const r1 = run(["--exp", b, ...args]);
  assert.equal(r1.status, 0, r1.stderr);
  assert.match(r1.stdout, /resuming from .*epoch-0001/);
  assert.ok(outputs(b).model.equals(ref.model), "parameters differ after resume");
  assert.equal(outputs(b).labels, ref.labels);
});

test("resume refuses a checkpoint made for another dataset or architecture", () => {
  const exp = path.join(tmp, "other");
  assert.equal(run(["--exp", exp, "--epochs", "1", ...SMALL]).status, 0);
  const r = run(["--exp", exp, "--epochs", "2", ...small({ "--synthetic-count": "700" })]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^selflabel-native: .* was made for another run: dataset/);
  const r2 = run(["--exp", exp, "--epochs", "2", ...SMALL, "--ncl", "12"]);
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, /heads \[10\] \(now \[12\]\)/);
});

test("bad input: exit 2, one readable line, nothing written", () => {
  const file = path.join(tmp, "a-file");
  fs.writeFileSync(file, "x");
  const cases: [Record<string, string>, RegExp][] = [
    [{ "--arch": "nonet" }, /unknown --arch 'nonet'/],
    [{ "--ncl": "1" }, /--ncl must be an integer >= 2/],
    [{ "--ncl": "10,1" }, /--ncl must be an integer >= 2, got 1/],
    [{ "--ncl": "10,x" }, /--ncl must be an integer >= 2, got NaN/],
    [{ "--ncl": "10,20", "--hc": "3" }, /--ncl lists 2 heads but --hc is 3/],
    [{ "--data": path.join(tmp, "missing") }, /does not exist/],
    [{ "--batch-size": "5000" }, /--batch-size 5000 is larger than the dataset \(600 images\)/],
    [{ "--epochs": "0" }, /--epochs must be/],
    [{ "--augs": "7" }, /augmentation level 0-3/],
    [{ "--device": "cuda" }, /no CUDA backend/],
    [{ "--batch-size": "abc" }, /--batch-size must be an integer/],
  ];
  for (const [over, re] of cases) {
    const extra = Object.entries(over).flat();
    const exp = path.join(tmp, "bad-" + extra.join("_").replace(/[^\w]/g, ""));
    const r = run(["--exp", exp, ...small(over)]);
    assert.equal(r.status, 2, `${extra.join(" ")}: status ${r.status}, stderr ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split("\n").length <= 2, true, r.stderr);
    assert.ok(!fs.existsSync(exp), `${extra.join(" ")}: ${exp} was created`);
  }
  const r = run(["--exp", path.join(file, "sub"), ...SMALL]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /is not a directory/);
});
