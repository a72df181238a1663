// Resume checks what it loads: a corrupt newest checkpoint is moved aside
// (renamed, never overwritten) and the previous valid one is used; labels of
// the wrong count or range, an epoch/step out of range or a label schedule
// that its flags do not give count as corrupt; with no valid checkpoint left
// the run stops (exit 2). --no-resume deletes nothing before --init is read.
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";
import { readCheckpoint, writeCheckpoint, listCheckpointFiles, checkpointName, checkpointDir, Checkpoint } from "../lib/train/checkpoint";
import { chooseResume, ResumeExpect } from "../lib/train/resume";

const cli = path.join(packageRoot(), ".build-ts/lib/cli.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-resume-"));
const SMALL = ["--synthetic-count", "300", "--batch-size", "100", "--nopts", "4", "--eval-test", "false", "--threads", "2", "--recipe", "reference"]; // the cases below edit the reference schedule (4 passes)
function run(args: string[]) {
  return spawnSync(process.execPath, [cli, "train", ...args], { encoding: "utf8" });
}

// one real run of 2 epochs; every case below works on a copy of its checkpoints
const base = path.join(tmp, "base");
let expect: ResumeExpect;
function copyExp(name: string): string {
  const d = path.join(tmp, name);
  fs.cpSync(base, d, { recursive: true });
  return d;
}
function rewrite(file: string, edit: (c: Checkpoint) => void): void {
  const c = readCheckpoint(file);
  edit(c);
  writeCheckpoint(file, c);
}
const ck = (exp: string, e: number) => path.join(checkpointDir(exp), checkpointName(e));

test("setup: a 2-epoch run", () => {
  const r = run(["--exp", base, "--epochs", "2", ...SMALL]);
  assert.equal(r.status, 0, r.stderr);
  const c = readCheckpoint(ck(base, 2));
  expect = { arch: c.meta.arch, numClasses: c.meta.numClasses, inputShape: c.meta.inputShape, fingerprint: c.meta.fingerprint, count: 300 };
  assert.equal(chooseResume(base, expect, () => {})!.meta.epoch, 2, "the valid newest checkpoint is chosen");
});

test("self-contradicting newest checkpoints are moved aside and the previous one is used", () => {
  const cases: [string, (c: Checkpoint) => void, RegExp][] = [
    ["10 labels for 300 images", (c) => (c.labels[0] = c.labels[0].slice(0, 10)), /10 labels in head 0 for 300 images/],
    ["a label out of range", (c) => (c.labels[0][7] = 10), /label 10 of image 7 in head 0 is outside \[0, 10\)/],
    ["a negative label", (c) => (c.labels[0][0] = -1), /label -1 of image 0/],
    ["epoch -3", (c) => (c.meta.epoch = -3), /epoch -3 is not a completed epoch count/],
    ["epoch beyond the run", (c) => ((c.meta.epoch = 5), (c.meta.seen = 1500)), /epoch 5 is beyond the run's 2 epochs/],
    ["images seen", (c) => (c.meta.seen = 123), /123 images trained, expected 2 epochs x 300 images/],
    ["step", (c) => (c.meta.extra!.step = -1), /step -1 out of range/],
    ["schedule", (c) => (c.meta.labelTimes = [5]), /label schedule \[5\] is not the tail/],
    ["passes", (c) => (c.meta.extra!.passes = 0), /0 label passes made \+ \d+ left != 4/],
    ["a missing head", (c) => (c.labels = []), /expected 1 label arrays/],
    ["warm start", (c) => (c.meta.extra!.warm = [[NaN]]), /warm-start scaling of head 0/],
  ];
  for (const [what, edit, re] of cases) {
    const exp = copyExp(`bad-${what.replace(/\W/g, "")}`);
    const newest = ck(exp, 2);
    rewrite(newest, edit);
    const bytes = fs.readFileSync(newest);
    const warnings: string[] = [];
    const c = chooseResume(exp, expect, (m) => warnings.push(m));
    assert.equal(c?.meta.epoch, 1, what);
    assert.equal(warnings.length, 1, what);
    assert.match(warnings[0], re, what);
    assert.match(warnings[0], /epoch-0002\.safetensors: .*moved aside to .*epoch-0002\.safetensors\.corrupt/, what);
    assert.ok(fs.readFileSync(newest + ".corrupt").equals(bytes), `${what}: the corrupt file is kept as it was`);
    assert.deepEqual(listCheckpointFiles(exp).map((f) => path.basename(f)), ["epoch-0001.safetensors"]);
  }
});

test("a garbage newest checkpoint: the run resumes from the previous one and never overwrites it", () => {
  const exp = copyExp("garbage");
  const garbage = Buffer.from("this is not a checkpoint at all");
  fs.writeFileSync(ck(exp, 2), garbage);
  const r = run(["--exp", exp, "--epochs", "3", ...SMALL]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /warning: .*epoch-0002\.safetensors: not a valid safetensors file .*moved aside to .*\.corrupt/);
  assert.match(r.stdout, /resuming from .*epoch-0001\.safetensors \(epoch 1 of 3\)/);
  assert.ok(fs.readFileSync(ck(exp, 2) + ".corrupt").equals(garbage), "kept aside, unchanged");
  assert.equal(readCheckpoint(ck(exp, 3)).meta.epoch, 3);
});

test("no valid checkpoint left: exit 2 naming the files kept aside; nothing deleted", () => {
  const exp = copyExp("all-bad");
  fs.writeFileSync(ck(exp, 1), "junk1");
  rewrite(ck(exp, 2), (c) => (c.labels[0] = new Int32Array(3)));
  const r = run(["--exp", exp, "--epochs", "3", ...SMALL]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^selflabel-native: no valid checkpoint left in .*checkpoints \(corrupt ones kept as .*epoch-000[12]\.safetensors\.corrupt, .*epoch-000[12]\.safetensors\.corrupt\); use --no-resume/);
  assert.ok(fs.existsSync(ck(exp, 1) + ".corrupt") && fs.existsSync(ck(exp, 2) + ".corrupt"));
  assert.ok(!fs.existsSync(path.join(exp, "model.safetensors.new")));
});

test("--no-resume --init BAD fails (exit 2) before deleting the old checkpoints", () => {
  const exp = copyExp("noresume");
  const before = listCheckpointFiles(exp).map((f) => fs.readFileSync(f));
  const bad = path.join(tmp, "bad.pth");
  fs.writeFileSync(bad, "PK\x03\x04 not really a zip");
  const r = run(["--exp", exp, "--epochs", "1", ...SMALL, "--no-resume", "--init", bad]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /bad\.pth/);
  const after = listCheckpointFiles(exp).map((f) => fs.readFileSync(f));
  assert.equal(after.length, 2, "the old checkpoints are still there");
  after.forEach((b, i) => assert.ok(b.equals(before[i])));
  // a good --init with --no-resume does replace them
  const ok = run(["--exp", exp, "--epochs", "1", ...SMALL, "--no-resume", "--init", path.join(base, "model.safetensors")]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /--no-resume: removed the old checkpoints/);
  assert.deepEqual(listCheckpointFiles(exp).map((f) => readCheckpoint(f).meta.epoch), [1]);
});
