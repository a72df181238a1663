// The crafted malicious files of issue 19 (test/helpers/craft.ts): every
// one refused with an error that names the file, quickly and within a memory
// bound; the bounded .pth reader still reads good files; safetensors offsets,
// shapes and metadata checked; write failures name the file and the bytes;
// convert reads through the worker and refuses each crafted file in one line.
import { test, mock } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";
import { readPth, loadPth, loadWeights, loadWeightsAsync, PthError } from "../lib/pth";
import { load, save, SafetensorsError, WriteError } from "../lib/safetensors";
import { malicious, pth, zip, statePickle } from "./helpers/craft";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-harden-"));
const files = malicious();
function write(name: string, b: Buffer): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, b);
  return f;
}

const PTH_EXPECT: Record<string, RegExp> = {
  "pth-zero-stride.pth": /has 1073741824 elements, more than its storage's 1 \(overlapping strides/,
  "pth-zero-stride-2d.pth": /has 4000000000 elements, more than its storage's 1/,
  "pth-negative-stride.pth": /stride \[-1\] \(strides must be non-negative integers\)/,
  "pth-offset-past.pth": /reaches past its storage of 4 elements/,
  "pth-long4.pth": /a 300000-byte integer \(LONG\)/,
  "pth-appends.pth": /no state_dict found .*got object|a list of 3000000 items|got object/,
  "pth-deflate-bomb.pth": /refused as a decompression bomb/,
  "pth-deflate-lies.pth": /inflates to more than the declared 16 bytes/,
  "pth-crc.pth": /CRC-32 [0-9a-f]{8} does not match the recorded [0-9a-f]{8} \(corrupt file\)/,
  "pth-copies.pth": /strided copies of this file exceed the 4096 elements of its storages/,
};

test("malicious .pth files: each refused with a PthError naming the file", () => {
  for (const [name, re] of Object.entries(PTH_EXPECT)) {
    const f = write(name, files[name]);
    assert.throws(
      () => loadPth(f),
      (e: Error) => {
        assert.ok(e instanceof PthError, `${name}: ${e.name}: ${e.message}`);
        assert.ok(e.message.startsWith(f + ":"), `${name}: ${e.message}`);
        assert.match(e.message, re, name);
        return true;
      },
      name,
    );
  }
});

test("peak memory of the .pth bombs stays within a small bound (child process, maxRSS)", () => {
  // The bound stated in lib/pth/torch.ts: beyond the file itself, at most the
  // output's bytes x 4 + 32 x the pickle's bytes + 64 MiB. None of these files
  // produces output and the pickle is part of the file, so the growth over a
  // process that has read the file must stay under 64 MiB + 40x the file
  // (the zero-stride and bomb files grew by 4+ GB before; each is < 20 KB).
  const js = path.join(packageRoot(), ".build-ts/lib/pth/index.js");
  for (const name of ["pth-zero-stride.pth", "pth-zero-stride-2d.pth", "pth-deflate-bomb.pth", "pth-copies.pth", "pth-appends.pth"]) {
    const f = path.join(tmp, name);
    const script =
      `const fs=require("fs");const b=fs.readFileSync(${JSON.stringify(f)});const base=process.resourceUsage().maxRSS;` +
      `let err="";try{require(${JSON.stringify(js)}).loadPth(${JSON.stringify(f)})}catch(e){err=e.name}` +
      `process.stdout.write(JSON.stringify({err,grow:(process.resourceUsage().maxRSS-base)*1024,size:b.length}))`;
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 60000 });
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    const o = JSON.parse(r.stdout);
    assert.equal(o.err, "PthError", name);
    const bound = 64 * 2 ** 20 + 40 * o.size;
    assert.ok(o.grow < bound, `${name}: grew ${(o.grow / 2 ** 20).toFixed(1)} MiB, bound ${(bound / 2 ** 20).toFixed(1)} MiB`);
  }
});

test("good files still load: strided copies, views, float64, deflate within the ratio, the worker", async () => {
  const f = write(
    "good.pth",
    pth([
      { key: "a", storage: "0", numel: 6, size: [2, 3], stride: [3, 1] },
      { key: "t", storage: "0", numel: 6, size: [3, 2], stride: [1, 3] }, // a transpose: copied
      { key: "b", storage: "1", numel: 4, offset: 1, size: [3], stride: [1] },
      { key: "e", storage: "2", numel: 0, size: [0, 5], stride: [5, 1] },
    ]),
  );
  const w = loadPth(f);
  assert.deepEqual([...w.stateDict.a.data], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual([...w.stateDict.t.data], [0, 3, 1, 4, 2, 5]);
  assert.deepEqual([...w.stateDict.b.data], [1, 2, 3]);
  assert.deepEqual(w.stateDict.e.shape, [0, 5]);
  const viaWorker = await loadWeightsAsync(f);
  assert.deepEqual(Object.keys(viaWorker.stateDict), Object.keys(w.stateDict));
  assert.deepEqual([...viaWorker.stateDict.t.data], [0, 3, 1, 4, 2, 5]);
  await assert.rejects(loadWeightsAsync(path.join(tmp, "pth-crc.pth")), (e: Error) => e instanceof PthError && /pth-crc\.pth: .*CRC-32/.test(e.message));
  // deflated records within the ratio load (real weights barely compress)
  const vals = new Float32Array(4096).map((_, i) => Math.sin(i));
  const d = write(
    "deflated.pth",
    zip([
      { name: "archive/data.pkl", data: statePickle([{ key: "w", storage: "0", numel: 4096, size: [4096], stride: [1] }]), deflate: true },
      { name: "archive/data/0", data: Buffer.from(vals.buffer), deflate: true },
    ]),
  );
  assert.deepEqual(loadPth(d).stateDict.w.data, vals);
  assert.ok(readPth(d) !== null);
});

test("convert reads the .pth in a worker thread; every crafted .pth: exit 2, one line naming the file, no output", async () => {
  const good = write("convert-good.pth", pth([{ key: "a", storage: "0", numel: 6, size: [3, 2], stride: [1, 3] }]));
  const { handler } = await import("../lib/commands/convert");
  const workers: unknown[] = [];
  const onWorker = (w: unknown) => workers.push(w);
  process.on("worker", onWorker);
  const log = mock.method(console, "log", () => {});
  try {
    const out = path.join(tmp, "convert-good.safetensors");
    await handler({ input: good, output: out, force: false, _: [], $0: "" });
    assert.equal(workers.length, 1, "the .pth was read in a worker thread");
    assert.deepEqual([...load(out).tensors.a.data], [0, 3, 1, 4, 2, 5]);
    assert.match(String(log.mock.calls[0].arguments[0]), /convert-good\.safetensors: 1 tensors, 6 values/);
  } finally {
    process.removeListener("worker", onWorker);
    log.mock.restore();
  }
  const cli = path.join(packageRoot(), ".build-ts/lib/cli.js");
  for (const [name, re] of Object.entries(PTH_EXPECT)) {
    const f = write(name, files[name]);
    const out = path.join(tmp, `${name}.safetensors`);
    const r = spawnSync(process.execPath, [cli, "convert", f, out], { encoding: "utf8", timeout: 60000 });
    assert.equal(r.status, 2, `${name}: ${r.stderr}`);
    assert.ok(r.stderr.startsWith(`selflabel-native: ${f}: `), `${name}: ${r.stderr}`);
    assert.match(r.stderr, re, name);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.ok(!fs.existsSync(out), `${name}: nothing written`);
  }
});

test("a pickle that nests lists a million deep or repeats a 200 KB LONG is refused fast, without recursion", () => {
  const deep = Buffer.concat([Buffer.from([0x80, 2]), Buffer.alloc(1_000_000, 0x5d), Buffer.from([0x2e])]);
  const f = write("deep.pth", pth([], {}, deep));
  assert.throws(() => loadPth(f), /STOP with 1000000 values on the stack/);
  const nest = Buffer.alloc(1_000_001, 0x85); // EMPTY_LIST, then TUPLE1 a million times: [[[...]]]
  nest[0] = 0x5d;
  const g = write("nest.pth", pth([], {}, Buffer.concat([Buffer.from([0x80, 2]), nest, Buffer.from([0x2e])])));
  assert.throws(() => loadPth(g), (e: Error) => e instanceof PthError && /no state_dict found .*got object/.test(e.message));
});

const ST_EXPECT: Record<string, RegExp> = {
  "st-negative-offset.safetensors": /a: data offsets \[-16,0\] outside/,
  "st-overlap.safetensors": /a and b overlap in the data section/,
  "st-null-offsets.safetensors": /a: data offsets null outside/,
  "st-null-offset.safetensors": /a: data offsets \[null,16\] outside/,
  "st-huge-dims.safetensors": /a: bad shape \[0,1e\+300\]/,
  "st-float-offsets.safetensors": /a: data offsets \[0\.5,16\.5\]/,
  "st-metadata-array.safetensors": /__metadata__ is not a map of strings/,
  "st-metadata-number.safetensors": /__metadata__ is not a map of strings/,
  "st-metadata-null.safetensors": /__metadata__ is not a map of strings/,
  "st-entry-null.safetensors": /a: entry is not an object/,
};

test("malicious safetensors files: each refused with a SafetensorsError naming the file", () => {
  for (const [name, re] of Object.entries(ST_EXPECT)) {
    const f = write(name, files[name]);
    for (const fn of [load, loadWeights]) {
      assert.throws(
        () => fn(f),
        (e: Error) => {
          assert.ok(e instanceof SafetensorsError, `${name}: ${e.name}: ${e.message}`);
          assert.ok(e.message.startsWith(f + ": not a valid safetensors file"), e.message);
          assert.match(e.message, re, name);
          return true;
        },
      );
    }
  }
});

/** Make fs.writeFileSync fail as on a full disk (ENOSPC) until the returned mock is restored. */
function fullDisk() {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return mock.method(require("node:fs") as typeof fs, "writeFileSync", () => {
    const e = new Error("ENOSPC: no space left on device, write") as NodeJS.ErrnoException;
    e.code = "ENOSPC";
    e.syscall = "write";
    throw e;
  });
}

test("write failures name the file and the bytes (ENOSPC), exit code 2", () => {
  const f = path.join(tmp, "full.safetensors");
  const m = fullDisk();
  try {
    assert.throws(
      () => save(f, { x: { shape: [4], data: new Float32Array(4) } }),
      (e: Error) => {
        assert.ok(e instanceof WriteError);
        assert.equal((e as WriteError).exitCode, 2);
        assert.match(e.message, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: no space left on the device \\(ENOSPC\\) to write \\d+ bytes`));
        return true;
      },
    );
  } finally {
    m.mock.restore();
  }
  assert.ok(!fs.readdirSync(tmp).some((n) => n.includes("full.safetensors")), "no temporary file left behind");
  assert.throws(() => load(path.join(tmp, "missing.safetensors")), /missing\.safetensors: cannot read \(ENOENT\)/);
});

test("clusters: a full disk names the file and the bytes (WriteError, exit code 2)", async () => {
  const { loadSynthetic } = await import("../lib/data");
  const { writeClusterPages } = await import("../lib/eval/clusters");
  const ds = await loadSynthetic("train", { count: 20 });
  const out = path.join(tmp, "clusters-full");
  const m = fullDisk();
  try {
    await assert.rejects(
      writeClusterPages(ds, new Int32Array(20).map((_, i) => i % 2), 2, out),
      (e: Error) => {
        assert.ok(e instanceof WriteError, `${e.name}: ${e.message}`);
        assert.equal((e as WriteError).exitCode, 2);
        assert.match(e.message, /clusters-full\/cluster-000\d\.png: no space left on the device \(ENOSPC\) to write \d+ bytes/);
        return true;
      },
    );
  } finally {
    m.mock.restore();
    await ds.close();
  }
});
