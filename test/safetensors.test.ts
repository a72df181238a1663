import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { encode, decode, save, load } from "../lib/safetensors";

test("safetensors round trip of every dtype with metadata", () => {
  const t = {
    a: { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6.5]) },
    b: { shape: [3], data: Int32Array.from([-1, 0, 7]) },
    c: { shape: [], data: Float64Array.from([Math.PI]) },
    d: { shape: [2], data: BigInt64Array.from([1n, -2n]) },
    e: { shape: [0], data: new Uint8Array(0) },
  };
  const buf = encode(t, { hello: "world" });
  assert.equal((8 + Number(buf.readBigUInt64LE(0))) % 8, 0, "data is 8-byte aligned");
  const r = decode(buf);
  assert.deepEqual(r.metadata, { hello: "world" });
  for (const k of Object.keys(t)) {
    assert.deepEqual(r.tensors[k].shape, (t as any)[k].shape);
    assert.deepEqual(r.tensors[k].data, (t as any)[k].data);
  }
});

test("the header layout is what the safetensors spec says (readable by the python library)", () => {
  const buf = encode({ w: { shape: [2], data: Float32Array.from([1, 2]) } }, { k: "v" });
  const n = Number(buf.readBigUInt64LE(0));
  const h = JSON.parse(buf.subarray(8, 8 + n).toString());
  assert.deepEqual(h.w, { dtype: "F32", shape: [2], data_offsets: [0, 8] });
  assert.deepEqual(h.__metadata__, { k: "v" });
  assert.deepEqual([...buf.subarray(8 + n)], [0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]);
});

test("truncated or corrupt files are refused with the reason", () => {
  const buf = encode({ w: { shape: [4], data: new Float32Array(4) } });
  assert.throws(() => decode(buf.subarray(0, 5), "x"), /shorter than the 8-byte header/);
  assert.throws(() => decode(buf.subarray(0, buf.length - 1), "x"), /outside the .*truncated/);
  const bad = Buffer.from(buf);
  bad.writeBigUInt64LE(10n ** 12n, 0);
  assert.throws(() => decode(bad, "x"), /exceeds the file/);
  const notjson = Buffer.from(buf);
  notjson[8] = 0x7b + 1;
  assert.throws(() => decode(notjson, "x"), /not JSON/);
  assert.throws(() => encode({ w: { shape: [3], data: new Float32Array(4) } }), RangeError);
});

test("save is atomic and leaves no temporary files", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sln-st-"));
  const f = path.join(dir, "m.safetensors");
  save(f, { w: { shape: [1], data: Float32Array.from([1]) } });
  save(f, { w: { shape: [1], data: Float32Array.from([2]) } });
  assert.deepEqual(fs.readdirSync(dir), ["m.safetensors"]);
  assert.equal(load(f).tensors.w.data[0], 2);
  assert.throws(() => save(path.join(dir, "nope", "m.safetensors"), {}), /ENOENT/);
  fs.rmSync(dir, { recursive: true });
});
