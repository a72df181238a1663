// --distributed's plumbing without a multi-rank run: `info` says whether MPI and
// NCCL are usable and why not, for each way it can fail; a run without
// --distributed never loads MPI.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";
import { mpiLibrary, skipReason } from "./helpers/mpi";

const root = packageRoot();
const cli = path.join(root, ".build-ts/lib/cli.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-dist-"));

function info(env: Record<string, string>) {
  const e: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete e.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, [cli, "info", "--json"], { encoding: "utf8", env: e });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout).distributed as { mpi: { available: boolean; reason: string; library: string | null }; nccl: { available: boolean; reason: string } };
}

test("info: MPI disabled, missing or not a library is unavailable with the reason", () => {
  let d = info({ SELFLABEL_MPI_LIB: "off" });
  assert.equal(d.mpi.available, false);
  assert.match(d.mpi.reason, /disabled by SELFLABEL_MPI_LIB=off/);
  assert.equal(d.nccl.available, false);
  assert.match(d.nccl.reason, /bootstrapped over MPI, which is unavailable/);
  d = info({ SELFLABEL_MPI_LIB: path.join(tmp, "nope.so") });
  assert.equal(d.mpi.available, false);
  assert.match(d.mpi.reason, /SELFLABEL_MPI_LIB=.*nope\.so: no such file/);
  const junk = path.join(tmp, "junk.so");
  fs.writeFileSync(junk, "not a library\n");
  d = info({ SELFLABEL_MPI_LIB: junk });
  assert.equal(d.mpi.available, false);
  assert.match(d.mpi.reason, /cannot load the MPI library .*junk\.so: .*npm run build:mpi/);
});

test("info: a built MPI library is available and names the MPI version", { skip: skipReason() }, () => {
  const d = info({ SELFLABEL_MPI_LIB: mpiLibrary()! });
  assert.equal(d.mpi.available, true, d.mpi.reason);
  assert.match(d.mpi.reason, /^MPI \d\.\d, /);
});
