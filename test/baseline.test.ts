// train's raw-pixel k-means baseline: printed once at the start when the
// classes are known, equal to kmeans() on the pixels, cached per data and k
// (the reference recipe here: the kmeans recipe computes it as its first labels).
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";
import { loadSynthetic } from "../lib/data";
import { kmeans } from "../lib/kmeans";
import { nmi } from "../lib/metrics";
import { pixelRows } from "../lib/eval/baselines";

const cli = path.join(packageRoot(), ".build-ts/lib/cli.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-baseline-"));

function train(exp: string, cache: string) {
  const args = ["train", "--exp", exp, "--synthetic-count", "600", "--batch-size", "100", "--epochs", "1", "--nopts", "2", "--eval-test", "false", "--threads", "2", "--recipe", "reference"];
  return spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env: { ...process.env, SELFLABEL_CACHE_DIR: cache } });
}

test("train prints raw-pixel k-means NMI at the start (kmeans() of uint8/255), cached for the next run", async () => {
  const cache = path.join(tmp, "cache");
  const a = train(path.join(tmp, "a"), cache);
  assert.equal(a.status, 0, a.stderr);
  const re = /^baseline: k-means \(k=10\) on the raw pixels \(32x32x3\): NMI (\d\.\d{3}), ARI -?\d\.\d{3}, accuracy \d\.\d{3}( \(cached\))?$/m;
  const m1 = re.exec(a.stdout);
  assert.ok(m1, a.stdout);
  assert.equal(m1[2], undefined);
  const ds = await loadSynthetic("train", { count: 600 });
  const { rows, d } = await pixelRows(ds);
  const km = await kmeans(rows, ds.count, d, 10, { restarts: 3, seed: 0 });
  assert.equal((await nmi(km.labels, ds.labels!)).toFixed(3), m1[1]);
  assert.equal(fs.readdirSync(path.join(cache, "baselines")).length, 1);
  const b = train(path.join(tmp, "b"), cache);
  const m2 = re.exec(b.stdout);
  assert.ok(m2, b.stdout);
  assert.deepEqual([m2[1], m2[2]], [m1[1], " (cached)"]);
  const rec = fs
    .readFileSync(path.join(tmp, "b", "log.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l))
    .find((r) => r.event === "baseline");
  assert.equal(rec.kmeansPixels.nmi.toFixed(3), m1[1]);
});
