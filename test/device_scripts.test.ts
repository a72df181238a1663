// scripts/device-check.sh (the one script for a lent GPU machine) and
// scripts/device-prepare.sh: valid bash, and the check's --dry-run walks every
// stage here without a GPU, reports "no CUDA device" and prints its table.
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";

const root = packageRoot();

test("device scripts parse (bash -n)", () => {
  for (const s of ["scripts/device-check.sh", "scripts/device-prepare.sh", "scripts/device-check-nccl.sh"]) {
    const r = spawnSync("bash", ["-n", path.join(root, s)], { encoding: "utf8" });
    assert.equal(r.status, 0, `${s}: ${r.stderr}`);
  }
});

test("device-check.sh --dry-run reaches 'no CUDA device' cleanly and prints its table with skips", () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "sln-devcheck-"));
  const env: NodeJS.ProcessEnv = { ...process.env, OUT: out, SELFLABEL_CUDA_LIB: path.join(out, "no-such-lib.so") };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync("bash", [path.join(root, "scripts/device-check.sh"), "--dry-run"], { encoding: "utf8", env, timeout: 300_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const table = fs.readFileSync(path.join(out, "table.txt"), "utf8");
  assert.match(table, /node \/ addon\s+ok/);
  assert.match(table, /CUDA probe\s+skip\s+no CUDA device/);
  assert.match(table, /test:gpu .*skip\s+pass 0, fail 0, skipped \d+/);
  assert.match(table, /train step vs PyTorch\s+skip\s+no CUDA device/);
  assert.match(table, /Sinkhorn N=1281167 K=3000\s+skip\s+no CUDA device/);
  assert.ok(r.stdout.trimEnd().endsWith(table.trimEnd()), "the table is printed last");
  for (const f of ["test-gpu.log", "bench-trainstep.log", "bench-sinkhorn.log", "environment.log", "info.json"]) {
    assert.ok(fs.existsSync(path.join(out, f)), `${f} under $OUT`);
  }
  fs.rmSync(out, { recursive: true, force: true });
  const bad = spawnSync("bash", [path.join(root, "scripts/device-check.sh"), "--nope"], { encoding: "utf8" });
  assert.equal(bad.status, 2);
});
