// Data and flag hardening (issue 19): IDX labels outside the declared classes
// are corrupt data; images smaller than the training size are warned about or
// refused (--small-images); the pixel cap from the header for every format,
// before decoding (a 20000x20000 PNG is skipped, not decoded); numeric flags
// have upper bounds (--nopts 1e9 killed V8), and explicit zeros are refused.
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { spawnSync } from "node:child_process";
import { Jimp } from "jimp";
import { packageRoot } from "../lib/binding";
import { openDataset, BadFileError } from "../lib/data";
import { imageHeader, checkImagePixels, MAX_IMAGE_PIXELS } from "../lib/data/image_limits";
import { resolveOptions, MAX } from "../lib/train/options";
import { idx, pngHeader, pngFile, malicious } from "./helpers/craft";

const cli = path.join(packageRoot(), ".build-ts/lib/cli.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-hdata-"));
function run(args: string[]) {
  return spawnSync(process.execPath, [cli, "train", ...args], { encoding: "utf8" });
}

function idxDir(name: string, n: number, rows: number, cols: number, labels: number[]): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  const px = new Uint8Array(n * rows * cols);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) & 255;
  fs.writeFileSync(path.join(d, "train-images-idx3-ubyte"), idx([n, rows, cols], px));
  fs.writeFileSync(path.join(d, "train-labels-idx1-ubyte"), idx([n], Uint8Array.from(labels)));
  return d;
}

test("IDX: a label outside the 10 declared classes is corrupt data, naming the file and the image", async () => {
  const d = idxDir("idx-badlabel", 6, 28, 28, [0, 1, 2, 181, 4, 5]);
  await assert.rejects(
    openDataset({ data: d }),
    (e: Error) =>
      e instanceof BadFileError && /train-labels-idx1-ubyte/.test(e.message) && /label 181 of image 3 is outside the 10 classes/.test(e.message),
  );
  const ok = await openDataset({ data: idxDir("idx-ok", 6, 28, 28, [0, 1, 2, 9, 4, 5]) });
  assert.equal(ok.classes.length, 10);
  await ok.close();
  const r = run(["--exp", path.join(tmp, "exp-badlabel"), "--data", d]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /label 181 of image 3/);
});

test("IDX of 1x3 images: upscaling is warned about, and --small-images refuse stops with exit 2", () => {
  const d = idxDir("idx-1x3", 20, 1, 3, Array.from({ length: 20 }, (_, i) => i % 10));
  const flags = ["--data", d, "--arch", "smallcnn", "--input-size", "16", "--epochs", "1", "--batch-size", "10", "--ncl", "2", "--nopts", "2", "--eval-test", "false", "--threads", "1"];
  const r = run(["--exp", path.join(tmp, "exp-1x3"), ...flags]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /warning: 20 of 20 images in mnist are smaller than the 16 px training input \(smallest 1x3\): they are upscaled/);
  const r2 = run(["--exp", path.join(tmp, "exp-1x3-refuse"), ...flags, "--small-images", "refuse"]);
  assert.equal(r2.status, 2, r2.stderr);
  assert.match(r2.stderr, /^selflabel-native: 20 of 20 images in mnist are smaller than the 16 px training input \(smallest 1x3\); --small-images refuse/);
  assert.ok(!fs.existsSync(path.join(tmp, "exp-1x3-refuse")));
  // without --input-size the default for non-square data is 224 px: no longer silent either
  const r3 = run(["--exp", path.join(tmp, "exp-1x3-224"), "--data", d, "--batch-size", "10", "--ncl", "2", "--small-images", "refuse"]);
  assert.equal(r3.status, 2, r3.stderr);
  assert.match(r3.stderr, /smaller than the 224 px training input \(smallest 1x3\)/);
});

test("image headers: size of every format read before decoding; the pixel cap refuses a PNG bomb", async () => {
  const img = new Jimp({ width: 37, height: 21, color: 0x336699ff });
  for (const mime of ["image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff"] as const) {
    const b = await img.getBuffer(mime);
    const h = imageHeader(b);
    assert.ok(h, mime);
    assert.deepEqual([h!.width, h!.height], [37, 21], mime);
  }
  // WebP (VP8X header, declared 30000 x 20000)
  const webp = Buffer.alloc(30);
  webp.write("RIFF", 0);
  webp.write("WEBPVP8X", 8);
  webp.writeUIntLE(30000 - 1, 24, 3);
  webp.writeUIntLE(20000 - 1, 27, 3);
  assert.deepEqual(imageHeader(webp), { format: "webp", width: 30000, height: 20000 });
  assert.throws(() => checkImagePixels(webp), /webp header declares 30000x20000 = 600 MP, above the 100 MP limit/);
  const bomb = malicious()["png-bomb.png"];
  assert.ok(bomb.length < 2000);
  assert.throws(() => checkImagePixels(bomb), /png header declares 20000x20000 = 400 MP, above the 100 MP limit \(not decoded\)/);
  assert.throws(() => checkImagePixels(pngHeader(0, 5)), /declares a 0x5 image/);
  assert.equal(checkImagePixels(pngHeader(10000, 10000))!.width, 10000, `${MAX_IMAGE_PIXELS} pixels are allowed`);

  // through ImageFolder: the bomb is skipped with the reason, the good images load
  const root = path.join(tmp, "if-bomb");
  fs.mkdirSync(path.join(root, "train", "a"), { recursive: true });
  fs.mkdirSync(path.join(root, "train", "b"), { recursive: true });
  for (const c of ["a", "b"]) for (let i = 0; i < 2; i++) fs.writeFileSync(path.join(root, "train", c, `${i}.png`), await img.getBuffer("image/png"));
  fs.writeFileSync(path.join(root, "train", "a", "bomb.png"), bomb);
  const warnings: string[] = [];
  const rss0 = process.memoryUsage().rss;
  const ds = await openDataset({ data: root, cacheDir: path.join(tmp, "cache-bomb"), onWarning: (m: string) => warnings.push(m) });
  assert.equal(ds.count, 4);
  assert.ok(warnings.some((w) => /bomb\.png: cannot decode \(png header declares 20000x20000 = 400 MP/.test(w)), warnings.join("\n"));
  assert.ok(process.memoryUsage().rss - rss0 < 1e9, "the bomb was not decoded");
  await ds.close();
});

test("image headers: what a decoder allocates beyond width x height is checked too (GIF frame, BMP palette, TIFF pages)", async () => {
  const m = malicious();
  assert.throws(() => checkImagePixels(m["gif-frame-bomb.gif"]), /^Error: gif header: its first frame \(65535x65535 at 0,0\) does not fit its 10x10 screen \(not decoded\)/);
  assert.throws(() => checkImagePixels(m["gif-lzw-loop.gif"]), /^Error: gif header: its first frame's LZW codes refer to table entries that loop \(corrupt data\) \(not decoded\)/);
  assert.throws(() => checkImagePixels(m["bmp-palette.bmp"]), /bmp header: its palette of 16777216 colours is larger than the file \(62 bytes\)/);
  assert.throws(() => checkImagePixels(m["tiff-loop.tif"]), /cannot read the image size from the tiff header/);
  const negative = Buffer.from(m["bmp-palette.bmp"]);
  negative.writeUInt32LE(0, 46);
  assert.doesNotThrow(() => checkImagePixels(negative), "24-bit, no palette: fine");
  negative.writeInt32LE(-3, 18);
  assert.throws(() => checkImagePixels(negative), /bmp header: its width is negative \(-3\)/);
  // real files of every format pass (palettes, frames and pages of jimp's encoders)
  const img = new Jimp({ width: 37, height: 21, color: 0x336699ff });
  for (let i = 0; i < 37 * 21 * 4; i++) img.bitmap.data[i] = (i * 37) & 255;
  for (const mime of ["image/png", "image/jpeg", "image/gif", "image/bmp", "image/tiff"] as const) {
    const b = await img.getBuffer(mime);
    assert.deepEqual(checkImagePixels(b), imageHeader(b), mime);
    assert.equal(checkImagePixels(b)!.problem, undefined, mime);
  }
  // a noisy GIF whose LZW table fills up and is cleared many times passes the loop check, and decodes
  const noise = new Jimp({ width: 160, height: 120, color: 0 });
  let x = 12345;
  for (let i = 0; i < 160 * 120 * 4; i++) noise.bitmap.data[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  const gif = await noise.getBuffer("image/gif");
  assert.equal(checkImagePixels(gif)!.problem, undefined);
  assert.equal((await Jimp.fromBuffer(gif)).bitmap.width, 160);
  // a TIFF of two pages counts both: 2 x 6000 x 6000 = 72 MP passes 100 MP, 50 MP does not
  const twoPages = (w: number, h: number) => {
    const t = Buffer.alloc(8 + 2 * (2 + 2 * 12 + 4));
    t.write("II", 0);
    t.writeUInt16LE(42, 2);
    t.writeUInt32LE(8, 4);
    for (const [at, next] of [[8, 38], [38, 0]]) {
      t.writeUInt16LE(2, at);
      [256, 257].forEach((tag, i) => {
        t.writeUInt16LE(tag, at + 2 + 12 * i);
        t.writeUInt16LE(4, at + 4 + 12 * i);
        t.writeUInt32LE(1, at + 6 + 12 * i);
        t.writeUInt32LE(i ? h : w, at + 10 + 12 * i);
      });
      t.writeUInt32LE(next, at + 26);
    }
    return t;
  };
  assert.equal(checkImagePixels(twoPages(6000, 6000))!.pages, 72e6);
  assert.throws(() => checkImagePixels(twoPages(6000, 9000)), /tiff header declares pages of 108 MP in all, above the 100 MP limit/);
});

test("ImageFolder: a file still decoding after the time limit is skipped with the reason, its decoder thread replaced", async () => {
  // a real 10000x10000 PNG (100 MP, the pixel cap) whose every row is Paeth
  // filtered: jimp needs about 4.7 s of CPU for it (a decoder that runs long
  // without any header check failing, like the GIF on which omggif looped),
  // against a 1 s limit; the small ones take milliseconds. It comes first; one
  // thread, so the replacement thread decodes the rest
  const big = 10000;
  const rows = Buffer.alloc(big * (3 * big + 1));
  for (let y = 0; y < big; y++) rows[y * (3 * big + 1)] = 4; // filter type 4 (Paeth) on every row
  const slow = pngFile(big, big, zlib.deflateSync(rows, { level: 1 }));
  const root = path.join(tmp, "if-slow");
  const img = new Jimp({ width: 12, height: 10, color: 0x336699ff });
  for (const c of ["a", "b"]) {
    fs.mkdirSync(path.join(root, "train", c), { recursive: true });
    for (let i = 1; i <= 2; i++) fs.writeFileSync(path.join(root, "train", c, `${i}.png`), await img.getBuffer("image/png"));
  }
  fs.writeFileSync(path.join(root, "train", "a", "0-slow.png"), slow);
  const warnings: string[] = [];
  const saved = process.env.SELFLABEL_DECODER;
  process.env.SELFLABEL_DECODER = "jimp";
  try {
    const ds = await openDataset({ data: root, cacheDir: path.join(tmp, "cache-slow"), workers: 1, decodeTimeoutMs: 1000, onWarning: (m: string) => warnings.push(m) });
    assert.equal(ds.count, 4, warnings.join("\n"));
    assert.ok(warnings.some((w) => /skipping .*0-slow\.png: cannot decode \(still decoding after 1 s \(decoder stopped/.test(w)), warnings.join("\n"));
    await ds.close();
  } finally {
    if (saved === undefined) delete process.env.SELFLABEL_DECODER;
    else process.env.SELFLABEL_DECODER = saved;
  }
});

test("numeric flags: upper bounds and explicit zeros refused with the flag's name (exit 2)", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ nopts: 1e9 }, /--nopts must be at most 100000, got 1000000000/],
    [{ epochs: 1e9 }, /--epochs must be at most/],
    [{ batchSize: 1e7 }, /--batch-size must be at most 65536/],
    [{ hc: 5000 }, /--hc must be at most 1000/],
    [{ ncl: 1e8 }, /--ncl must be at most 1000000/],
    [{ skMaxIters: 1e9 }, /--sk-max-iters must be at most/],
    [{ inputSize: 0 }, /--input-size must be an integer from 8 to 2048, got 0/],
    [{ inputSize: 1e6 }, /--input-size must be an integer from 8 to 2048/],
    [{ workers: 0 }, /--workers must be an integer from 1 to 256, got 0/],
    [{ workers: 1e6 }, /--workers must be an integer from 1 to 256/],
    [{ logIntv: 0 }, /--log-intv must be an integer >= 1, got 0/],
    [{ logIter: 1e12 }, /--log-iter must be at most/],
    [{ syntheticCount: 1e9 }, /--synthetic-count must be an integer from 2 to 1000000/],
  ];
  for (const [o, re] of cases) assert.throws(() => resolveOptions(o as never, true), re, JSON.stringify(o));
  assert.equal(resolveOptions({ nopts: MAX.nopts, inputSize: 8, workers: 1 }, true).nopts, MAX.nopts);
  // through the CLI: was SIGTRAP (exit 133) and accepted zeros
  for (const [flag, v, re] of [
    ["--nopts", "1000000000", /--nopts must be at most 100000/],
    ["--input-size", "0", /--input-size must be an integer from 8/],
    ["--workers", "0", /--workers must be an integer from 1/],
    ["--log-intv", "0", /--log-intv must be an integer >= 1/],
  ] as const) {
    const exp = path.join(tmp, `flag${flag}`);
    const r = run(["--exp", exp, "--synthetic-count", "200", flag, v]);
    assert.equal(r.status, 2, `${flag} ${v}: ${r.status} ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.ok(!fs.existsSync(exp));
  }
});

test("a full disk while writing a checkpoint: exit 2 naming the file and the bytes, no temporary file left", () => {
  // a preload that makes large writes through a file descriptor fail with ENOSPC (the checkpoint's)
  const preload = path.join(tmp, "enospc.js");
  fs.writeFileSync(
    preload,
    `const fs=require("fs");const w=fs.writeFileSync;fs.writeFileSync=function(f,d,...r){` +
      `if(typeof f==="number"&&d&&d.length>100000){const e=new Error("ENOSPC: no space left on device, write");e.code="ENOSPC";e.syscall="write";e.errno=-28;throw e}` +
      `return w.call(this,f,d,...r)};`,
  );
  const exp = path.join(tmp, "exp-full");
  const r = spawnSync(process.execPath, ["--require", preload, cli, "train", "--exp", exp, "--synthetic-count", "200", "--batch-size", "100", "--nopts", "2", "--epochs", "1", "--eval-test", "false", "--threads", "1"], { encoding: "utf8" });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^selflabel-native: .*checkpoints\/epoch-0001\.safetensors: no space left on the device \(ENOSPC\) to write \d+ bytes; free some space/);
  assert.deepEqual(fs.readdirSync(path.join(exp, "checkpoints")), [], "no checkpoint and no temporary file");
  assert.ok(!fs.existsSync(path.join(exp, ".selflabel.lock")), "the lock is released");
});
