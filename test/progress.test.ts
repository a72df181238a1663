// The training status line: redrawn in place on a terminal (throttled), a line
// every interval elsewhere; the whole run's bar and ETA, label passes and the
// test-set evaluation shown. A fake clock: no timing in the test.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { ProgressDisplay, formatDuration } from "../lib/progress_display";
import type { TrainProgress } from "../lib/train/progress";

const batch = (batch: number, fraction: number, etaSec: number): TrainProgress => ({
  type: "batch",
  epoch: 1,
  epochs: 8,
  batch,
  batches: 100,
  loss: 1.25,
  imagesPerSec: 900,
  fraction,
  etaSec,
});

test("off a terminal: one line per interval, none at the start", () => {
  let t = 0;
  const out: string[] = [];
  const d = new ProgressDisplay({ tty: false, intervalSec: 30, write: (s) => out.push(s), now: () => t });
  d.update({ type: "start", epochs: 8, startEpoch: 0, startBatch: 0, batchesPerEpoch: 100, images: 12800, labelPasses: 10 });
  for (const [time, b] of [
    [0, 1],
    [10_000, 2],
    [31_000, 3],
    [40_000, 4],
    [62_000, 5],
  ])
    (t = time), d.update(batch(b, 0.125 + b / 800, 3725));
  assert.equal(out.length, 2, out.join(""));
  assert.equal(out[0], "[###.................]  12% ETA 1h02m | epoch 2/8 batch 3/100 [..........]   3% | 900 img/s loss 1.250\n");
  t = 95_000;
  d.update({ type: "labelPass", pass: 4, phase: "forward", done: 6400, images: 12800 });
  assert.match(out[2], /\| label pass 4 \(10 this run\): forward 6400\/12800 \[#####\.\.\.\.\.\]/);
  t = 130_000;
  d.update({ type: "eval", done: 2000, images: 10000 });
  assert.match(out[3], /\| test set 2000\/10000/);
  assert.ok(out.every((l) => !l.includes("\r")));
});

test("on a terminal: redrawn in place at most every 100 ms, always at the end of an epoch; clear() erases it", () => {
  let t = 1000;
  const out: string[] = [];
  const d = new ProgressDisplay({ tty: true, write: (s) => out.push(s), now: () => t });
  d.update(batch(1, 0.1, 100));
  t += 50;
  d.update(batch(2, 0.11, 99));
  t += 10;
  d.update(batch(100, 0.2, 80));
  assert.equal(out.length, 2);
  assert.ok(out.every((s) => s.startsWith("\r") && s.endsWith("\x1b[K")));
  assert.match(out[1], /ETA 1m20s \| epoch 2\/8 batch 100\/100/);
  d.clear();
  assert.equal(out[2], "\r\x1b[K");
  assert.equal(formatDuration(NaN), "?");
  assert.equal(formatDuration(59.4), "59s");
});

test("decoding a new ImageFolder: its own line with the rate and ETA, before the run's bar", () => {
  let t = 1000;
  const out: string[] = [];
  const d = new ProgressDisplay({ tty: true, write: (s) => out.push(s), now: () => t });
  d.update({ type: "decode", split: "train", done: 1, images: 1000 });
  assert.match(out[0], /decoding train images into the cache 1\/1000 \[\.{10}\]   0% \| \? img\/s ETA \?/);
  t = 3000;
  d.update({ type: "decode", split: "train", done: 201, images: 1000 });
  assert.match(out[1], /^\rdecoding train images into the cache 201\/1000 \[##\.{8}\]  20% \| 100 img\/s ETA 8s\x1b\[K$/);
  t = 3050;
  d.update({ type: "decode", split: "train", done: 1000, images: 1000 }); // the last one always shows
  assert.match(out[2], /1000\/1000 \[#{10}\] 100%/);
  t = 10_000;
  d.update({ type: "decode", split: "test", done: 1, images: 50 }); // a new count starts a new rate
  assert.match(out[3], /decoding test images into the cache 1\/50 .* \? img\/s/);
});
