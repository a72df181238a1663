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

test("Loader part: R parts of a batch are the single-process batch (same images, same augmentation draws)", async () => {
  const { openDataset, Loader } = await import("../lib/data");
  const ds = await openDataset({ synthetic: { count: 203 } });
  try {
    const o = { batchSize: 50, size: 32, level: 3 as const, seed: 5 };
    const whole = new Loader(ds, o);
    for (const parts of [2, 3]) {
      const ls = Array.from({ length: parts }, (_, i) => new Loader(ds, { ...o, part: { index: i, count: parts } }));
      for (const b of [0, 4]) {  // a full batch and the short last one (3 images)
        const w = await whole.batch(1, b);
        const ps = await Promise.all(ls.map((l) => l.batch(1, b)));
        assert.deepEqual(Array.from(ps.flatMap((p) => Array.from(p.indices))), Array.from(w.indices));
        const cat = Buffer.concat(ps.map((p) => Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength)));
        assert.ok(cat.equals(Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength)), `parts=${parts} batch ${b}: pixels differ`);
      }
    }
    assert.throws(() => new Loader(ds, { ...o, part: { index: 2, count: 2 } }), /part must be/);
  } finally {
    await ds.close();
  }
});

test("Loader rows: the ranks' rows of an unshuffled pass are the single-process pass's images with the same augmentation draws (--paugs)", async () => {
  const { openDataset, Loader } = await import("../lib/data");
  const ds = await openDataset({ synthetic: { count: 203 } });
  try {
    // the label loader's shape: unshuffled, level > 0 (--paugs), seed + 1
    const o = { batchSize: 50, size: 32, level: 2 as const, seed: 6, shuffle: false };
    const whole = new Loader(ds, o);
    const all: Buffer[] = [];
    for await (const b of whole.epoch(1)) all.push(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength));
    const ref = Buffer.concat(all);
    const per = ref.length / 203;
    // rows cut across batch boundaries (the sharded Sinkhorn's blocks need not align with batches)
    for (const cuts of [[0, 77, 203], [0, 50, 120, 203], [0, 101, 102, 203]]) {
      const got: Buffer[] = [];
      const idx: number[] = [];
      for (let r = 0; r + 1 < cuts.length; r++) {
        const l = new Loader(ds, { ...o, rows: [cuts[r], cuts[r + 1]] });
        for await (const b of l.epoch(1)) {
          got.push(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength));
          idx.push(...b.indices);
        }
      }
      assert.deepEqual(idx, Array.from({ length: 203 }, (_, i) => i), `cuts ${cuts}: indices`);
      assert.ok(Buffer.concat(got).equals(ref), `cuts ${cuts}: pixels differ from the single-process pass`);
    }
    // the old way (a separate loader over the rank's rows, as a dataset of its own) draws
    // other crops: what made --paugs > 0 label passes differ between runs
    const rows = { ...ds, count: 126, heights: ds.heights.subarray(77), widths: ds.widths.subarray(77), labels: null, read: (ix: Int32Array) => ds.read(ix.map((i) => i + 77)) };
    const old: Buffer[] = [];
    for await (const b of new Loader(rows, o).epoch(1)) old.push(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength));
    assert.ok(!Buffer.concat(old).equals(ref.subarray(77 * per)), "a separately seeded loader should draw differently");
    assert.throws(() => new Loader(ds, { ...o, rows: [5, 5] }), /rows must be \[begin, end\)/);
    assert.throws(() => new Loader(ds, { ...o, shuffle: true, rows: [0, 5] }), /rows needs shuffle: false/);
  } finally {
    await ds.close();
  }
});

test("NCCL: libselflabel_nccl.so compiles and links against the wheel's NCCL and loads (no GPU here)", (t) => {
  const out = path.join(tmp, "nccl");
  const r = spawnSync("sh", [path.join(root, "scripts/build-nccl.sh")], { encoding: "utf8", env: { ...process.env, SELFLABEL_MPI_OUT: out } });
  if (r.status !== 0) {
    t.skip(`skipped: scripts/build-nccl.sh could not build here: ${r.stderr.trim().split("\n").slice(-1)[0]}`);
    return;
  }
  const lib = r.stdout.trim();
  const nm = spawnSync("nm", ["-D", "--defined-only", lib], { encoding: "utf8" });
  for (const s of ["sln_nccl_abi_version", "sln_nccl_describe", "sln_nccl_unique_id", "sln_nccl_init", "sln_nccl_allreduce", "sln_nccl_finalize"])
    assert.match(nm.stdout, new RegExp(` T ${s}$`, "m"), s);
  // the probe loads it and NCCL answers; without a GPU the device step fails with CUDA's reason
  const c = spawnSync(path.join(out, "nccl_check"), [lib], { encoding: "utf8" });
  assert.match(c.stdout, /^ok {3}describe: NCCL 2\.\d+\.\d+, /m, c.stdout + c.stderr);
  if (c.status !== 0) assert.match(c.stdout, /^FAIL cudaSetDevice failed: /m, c.stdout);
  // info loads it (NCCL's version, the device count): no GPU here, so unavailable with CUDA's reason
  const d = info({ SELFLABEL_NCCL_LIB: lib });
  assert.equal(d.nccl.available, false);
  if (skipReason()) assert.match(d.nccl.reason, /bootstrapped over MPI/);
  else if (c.status !== 0) assert.match(d.nccl.reason, /^NCCL 2\.\d+\.\d+, no usable CUDA device: .*\(one GPU per rank is needed\)$/);
});
