// The CLI: info works, --help everywhere, unknown commands/flags exit 2.
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { packageRoot } from "../lib/binding";

const cli = path.join(packageRoot(), ".build-ts/lib/cli.js");
function run(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env: { ...process.env } });
}

test("info prints the version, oneDNN and CUDA status", () => {
  const r = run("info");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /selflabel-native \d+\.\d+\.\d+/);
  assert.match(r.stdout, /CPU backend: oneDNN \d+\.\d+\.\d+ .*ISA \w+, \d+ threads/);
  assert.match(r.stdout, /CUDA backend: /);
  const j = JSON.parse(run("info", "--json").stdout);
  assert.equal(typeof j.version, "string");
  assert.equal(j.cuda.available, false);
});

test("--threads and SELFLABEL_NUM_THREADS set the CPU threads", () => {
  assert.match(run("info", "--threads", "1").stdout, /, 1 threads/);
  const r = spawnSync(process.execPath, [cli, "info"], {
    encoding: "utf8",
    env: { ...process.env, SELFLABEL_NUM_THREADS: "1" },
  });
  assert.match(r.stdout, /, 1 threads/);
  const bad = run("info", "--threads", "0");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--threads must be a positive integer/);
});

test("--help works for the program and every command", () => {
  const r = run("--help");
  assert.equal(r.status, 0);
  assert.match(r.stdout, /Commands:/);
  for (const cmd of ["info", "prepare", "train", "eval", "labels", "clusters", "convert"]) {
    const h = run(cmd, "--help");
    assert.equal(h.status, 0, `${cmd} --help`);
    assert.match(h.stdout, new RegExp(`selflabel-native ${cmd}`));
  }
});

test("unknown commands and flags: exit 2, one readable line", () => {
  for (const args of [["bogus"], ["info", "--nope"], []]) {
    const r = run(...args);
    assert.equal(r.status, 2, `args ${args.join(" ")}`);
    assert.match(r.stderr, /^selflabel-native: /);
  }
});
