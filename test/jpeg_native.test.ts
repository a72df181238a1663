// The addon's JPEG decoder (native/addon/jpeg_binding.cpp, libjpeg-turbo)
// against jimp (always there) and sharp (optional dependency): odd sizes,
// grayscale, progressive, 4:4:4, all 8 EXIF orientations, shrink-on-load
// sizes, within the tolerances of test/decoders.test.ts; files it must not
// take (truncated, corrupt, CMYK, not a JPEG, over the pixel cap) are left to
// the other decoders, so an ImageFolder holds the same images either way.
// Also the cache's read back into allocPages memory (pages_binding.cpp).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { Jimp } from "jimp";
import { native, packageRoot } from "../lib/binding";
import { loadImageFolder } from "../lib/data";
import { readCache } from "../lib/data/imagefolder";
import { PixelBuffers, decodeFileNative, decodeForCache, decodeJpegNative, decoderName, hasNativeJpeg, loadSharp } from "../lib/data/decoders";
import { picture } from "./helpers/pictures";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-jpeg-"));

type SharpOut = { toBuffer(): Promise<Buffer> };
interface SharpChain {
  jpeg(o: object): SharpChain & SharpOut;
  withMetadata(o: object): SharpChain & SharpOut;
  grayscale(): SharpChain;
  toColourspace(c: string): SharpChain;
}
const sharp = loadSharp() as unknown as ((b: Buffer) => SharpChain) | null;

async function jpeg(w: number, h: number, seed: number, smooth = false): Promise<Buffer> {
  return Buffer.from(await picture(w, h, seed, smooth).getBuffer("image/jpeg", { quality: 90 }));
}

/** Mean and max absolute difference; sizes must agree. */
function diff(a: { width: number; height: number; data: Uint8Array }, b: { width: number; height: number; data: Uint8Array }, what: string): { mean: number; max: number } {
  assert.deepEqual([a.width, a.height], [b.width, b.height], `${what}: size`);
  const n = a.width * a.height * 3;
  let sum = 0,
    max = 0;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(a.data[i] - b.data[i]);
    sum += d;
    if (d > max) max = d;
  }
  return { mean: sum / n, max };
}

/** The jimp path of the cache: full decode, then the native resize to the cache size (imagefolder.ts). */
async function viaJimp(buf: Buffer, shortSide: number): Promise<{ width: number; height: number; data: Uint8Array }> {
  const r = await decodeForCache(buf, "jimp", shortSide);
  const short = Math.min(r.width, r.height);
  let [h, w] = [r.height, r.width];
  if (short > shortSide) [h, w] = r.width <= r.height ? [Math.floor((shortSide * r.height) / r.width), shortSide] : [shortSide, Math.floor((shortSide * r.width) / r.height)];
  const data = await native().resizeU8(r.data, r.height, r.width, 4, 3, h, w);
  return { width: w, height: h, data };
}

async function viaLibjpeg(buf: Buffer, shortSide: number): Promise<{ width: number; height: number; data: Uint8Array }> {
  const r = await decodeJpegNative(buf, shortSide);
  assert.ok(r !== null && typeof r === "object", `the addon's decoder did not take it: ${r}`);
  return r;
}

test("the addon has its JPEG decoder exactly where the build finds libjpeg (scripts/has-libjpeg.js)", (t) => {
  // the build's question, asked again here (SELFLABEL_NO_LIBJPEG=1 builds and tests without it)
  const found = execFileSync(process.execPath, [path.join(packageRoot(), "scripts/has-libjpeg.js")], { encoding: "utf8" });
  assert.equal(typeof native().jpegDecode, found === "1" ? "function" : "undefined", `has-libjpeg.js says ${found}: rebuild the addon`);
  if (found !== "1") return t.skip("no libjpeg headers here (libjpeg-dev): the addon is built without its JPEG decoder");
  assert.match(native().jpegLibrary ?? "", /^libjpeg/);
  assert.equal(hasNativeJpeg(), true);
  const prev = process.env.SELFLABEL_DECODER;
  try {
    delete process.env.SELFLABEL_DECODER;
    assert.equal(decoderName(), "libjpeg", "the default decoder");
    process.env.SELFLABEL_DECODER = "jimp";
    assert.equal(decoderName(), "jimp");
    process.env.SELFLABEL_DECODER = "sharp";
    assert.equal(decoderName(), loadSharp() ? "sharp" : "jimp");
  } finally {
    if (prev === undefined) delete process.env.SELFLABEL_DECODER;
    else process.env.SELFLABEL_DECODER = prev;
  }
});

test("libjpeg against jimp and sharp: odd sizes at full size, within IDCT rounding", async (t) => {
  if (!hasNativeJpeg()) return t.skip("the addon was built without libjpeg");
  for (const [w, h, seed] of [[97, 61, 1], [1, 1, 2], [17, 33, 3], [250, 9, 4], [64, 64, 5]]) {
    const buf = await jpeg(w, h, seed);
    const a = await viaLibjpeg(buf, 256);
    const j = diff(a, await viaJimp(buf, 256), `${w}x${h} vs jimp`);
    // the tolerance of decoders.test.ts (jpeg-js and libjpeg-turbo round differently: max 3, mean 0.41 measured there)
    assert.ok(j.max <= 8 && j.mean <= 1, `${w}x${h} vs jimp: max ${j.max}, mean ${j.mean}`);
    if (sharp) {
      const s = diff(a, await decodeForCache(buf, "sharp", 256), `${w}x${h} vs sharp`);
      assert.ok(s.max <= 8 && s.mean <= 1, `${w}x${h} vs sharp: max ${s.max}, mean ${s.mean}`);
    }
  }
});

test("libjpeg: grayscale, progressive and 4:2:0 JPEGs as sharp and jimp decode them", async (t) => {
  if (!hasNativeJpeg()) return t.skip("the addon was built without libjpeg");
  if (!sharp) return t.skip("sharp (optional dependency) writes these JPEGs");
  const raw = Buffer.from(await picture(83, 57, 7, false).getBuffer("image/png"));
  // 4:2:0 (sharp's default): jpeg-js upsamples the chroma otherwise than libjpeg (mean 7 levels
  // on this noise, for sharp as for the addon), so jimp is compared on 4:4:4 files only
  const chroma = await sharp(raw).jpeg({ quality: 90 }).toBuffer();
  const c = diff(await viaLibjpeg(chroma, 256), await decodeForCache(chroma, "sharp", 256), "4:2:0 vs sharp");
  assert.ok(c.max <= 8 && c.mean <= 1, `4:2:0 vs sharp: max ${c.max}, mean ${c.mean}`);
  const kinds: [string, Buffer][] = [
    ["grayscale", await sharp(raw).grayscale().toColourspace("b-w").jpeg({ quality: 90 }).toBuffer()],
    ["progressive", await sharp(raw).jpeg({ quality: 90, progressive: true, chromaSubsampling: "4:4:4" }).toBuffer()],
    ["progressive grayscale", await sharp(raw).grayscale().toColourspace("b-w").jpeg({ quality: 85, progressive: true }).toBuffer()],
  ];
  for (const [kind, buf] of kinds) {
    const a = await viaLibjpeg(buf, 256);
    if (kind.includes("grayscale")) {
      let same = true;
      for (let i = 0; i < a.data.length; i += 3) same &&= a.data[i] === a.data[i + 1] && a.data[i] === a.data[i + 2];
      assert.ok(same, `${kind}: R = G = B`);
    }
    for (const [other, b] of [["jimp", await viaJimp(buf, 256)], ["sharp", await decodeForCache(buf, "sharp", 256)]] as const) {
      const d = diff(a, b, `${kind} vs ${other}`);
      assert.ok(d.max <= 8 && d.mean <= 1, `${kind} vs ${other}: max ${d.max}, mean ${d.mean}`);
    }
  }
});

test("libjpeg: the 8 EXIF orientations as sharp's rotate() and jimp's, at full size and shrunk", async (t) => {
  if (!hasNativeJpeg()) return t.skip("the addon was built without libjpeg");
  if (!sharp) return t.skip("sharp (optional dependency) writes the EXIF orientation");
  const noisy = await jpeg(37, 23, 5);
  const smooth = await jpeg(300, 200, 6, true);
  for (let o = 1; o <= 8; o++) {
    const buf = await sharp(noisy).jpeg({ quality: 90, chromaSubsampling: "4:4:4" }).withMetadata({ orientation: o }).toBuffer();
    const a = await viaLibjpeg(buf, 16); // 37x23 at 16: resized, not shrunk on load
    assert.deepEqual([a.width, a.height], o >= 5 ? [16, 25] : [25, 16], `orientation ${o}`);
    for (const [other, b] of [["jimp", await viaJimp(buf, 16)], ["sharp", await decodeForCache(buf, "sharp", 16)]] as const) {
      const b2 = other === "sharp" ? { ...b, data: await native().resizeU8(b.data, b.height, b.width, 3, 3, a.height, a.width), width: a.width, height: a.height } : b;
      const d = diff(a, b2, `orientation ${o} vs ${other}`);
      // resized noise: the two orders of resize and rotation round differently; a wrong orientation is tens of levels off
      assert.ok(d.mean <= 2, `orientation ${o} vs ${other}: mean ${d.mean}`);
    }
    // shrunk on load (300x200 at 64: 1/2 scale, then the resize), smooth content as decoders.test.ts's shrink test
    const big = await sharp(smooth).jpeg({ quality: 95, chromaSubsampling: "4:4:4" }).withMetadata({ orientation: o }).toBuffer();
    const s = await viaLibjpeg(big, 64);
    assert.deepEqual([s.width, s.height], o >= 5 ? [64, 96] : [96, 64], `orientation ${o}, shrunk`);
    const d = diff(s, await viaJimp(big, 64), `orientation ${o} shrunk vs jimp`);
    assert.ok(d.mean <= 2, `orientation ${o}, shrunk, vs jimp: mean ${d.mean}`);
  }
});

test("libjpeg shrinks on load (1/2, 1/4, 1/8) to exactly the cache size of the full decode, the image's own box", async (t) => {
  if (!hasNativeJpeg()) return t.skip("the addon was built without libjpeg");
  // odd sizes (a scaled decode of 767 rows at 1/2 is 384 rows for 383.5 of image), each scale, portrait
  for (const [w, h, short] of [[300, 200, 64], [1023, 767, 128], [801, 1203, 100], [640, 480, 60], [129, 257, 64], [2000, 1500, 100], [1024, 768, 256]]) {
    const buf = await jpeg(w, h, w, true);
    const a = await viaLibjpeg(buf, short);
    const d = diff(a, await viaJimp(buf, short), `${w}x${h} at ${short}`);
    // decoders.test.ts's bound for a DCT-domain shrink + triangle filter against a full decode +
    // triangle filter; measured 0.40-1.90 here (sharp: 0.34-9.9, 9.9 for 1023x767)
    assert.ok(d.mean <= 2, `${w}x${h} at ${short}: mean ${d.mean}`);
  }
});

test("libjpeg leaves truncated, corrupt, CMYK and non-JPEG files to the other decoders; the pixel cap comes first", async (t) => {
  if (!hasNativeJpeg()) return t.skip("the addon was built without libjpeg");
  const good = await jpeg(120, 90, 9);
  const truncated = good.subarray(0, Math.floor(good.length * 0.6));
  assert.match(String(await decodeJpegNative(truncated, 256)), /premature end of the JPEG data/);
  const corrupt = Buffer.from(good);
  corrupt[corrupt.indexOf(Buffer.from([0xff, 0xc0])) + 4] = 12; // the frame's sample precision
  assert.match(String(await decodeJpegNative(corrupt, 256)), /^libjpeg: Unsupported JPEG data precision 12/, "a corrupt header: refused with the reason");
  assert.equal(await decodeJpegNative(Buffer.from("not an image"), 256), null);
  assert.equal(await decodeJpegNative(Buffer.from(await picture(8, 8, 1, false).getBuffer("image/png")), 256), null, "a PNG is not the addon's");
  if (sharp) {
    const cmyk = await sharp(good).toColourspace("cmyk").jpeg({ quality: 90 }).toBuffer();
    assert.match(String(await decodeJpegNative(cmyk, 256)), /CMYK/);
    const viaDefault = await decodeForCache(cmyk, "libjpeg", 256);
    const viaSharp = await decodeForCache(cmyk, "sharp", 256);
    assert.ok(Buffer.from(viaDefault.data).equals(Buffer.from(viaSharp.data)), "CMYK: decoded by sharp");
  }
  // over the pixel cap from the header (a 20000x20000 frame): refused before any decoding, as decodeFile does
  const sof = Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, 0x4e, 0x20, 0x4e, 0x20, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 0xff, 0xd9]);
  const capFile = path.join(tmp, "huge.jpg");
  fs.writeFileSync(capFile, sof);
  const r = await decodeFileNative(capFile, 256);
  assert.ok(r !== null && !r.ok && /20000x20000 = 400 MP, above the 100 MP limit/.test(r.error), JSON.stringify(r));
  fs.writeFileSync(path.join(tmp, "empty.jpg"), "");
  assert.deepEqual(await decodeFileNative(path.join(tmp, "empty.jpg"), 256), { ok: false, error: "empty file" });
  // arguments are checked before the job starts
  assert.throws(() => native().jpegDecode!(good, 256, 1, 90, 120, 90, 120, new Uint8Array(10)), /out has 10 bytes, the image needs 32400/);
  assert.throws(() => native().jpegDecode!(good, 256, 9, 90, 120, 90, 120, new Uint8Array(32400)), RangeError);
  assert.throws(() => native().jpegDecode!(good, 256, 1, 90, 120, 91, 120, new Uint8Array(40000)), RangeError);
});

test("PixelBuffers: a decode reuses a given-back buffer, and the pixels are the fresh decode's", async (t) => {
  if (!hasNativeJpeg()) return t.skip("the addon was built without libjpeg");
  const bufs = new PixelBuffers();
  const a = await jpeg(50, 40, 11);
  const b = await jpeg(44, 40, 12);
  const ra = await decodeJpegNative(a, 256, bufs);
  assert.ok(ra && typeof ra === "object");
  const first = ra.data.buffer;
  bufs.give(ra.data);
  const rb = await decodeJpegNative(b, 256, bufs);
  assert.ok(rb && typeof rb === "object");
  assert.equal(rb.data.buffer, first, "the buffer is reused");
  assert.equal(rb.data.length, 44 * 40 * 3);
  const fresh = await decodeJpegNative(b, 256);
  assert.ok(fresh && typeof fresh === "object" && Buffer.from(fresh.data).equals(Buffer.from(rb.data)));
  bufs.give(new Uint8Array(10)); // not one of its own: ignored
  bufs.give(rb.data);
  assert.equal(bufs.take(10).buffer, first, "a given-back buffer, not the foreign one");
});

test("an ImageFolder with libjpeg (default) and with SELFLABEL_DECODER=jimp / sharp: the same images, skipped files and sizes", async (t) => {
  if (!hasNativeJpeg()) return t.skip("the addon was built without libjpeg");
  const root = path.join(tmp, "folder");
  const files: [string, Buffer][] = [
    ["a/0.jpg", await jpeg(40, 30, 1)],
    ["a/1.jpg", await jpeg(300, 200, 2, true)],
    ["a/2.png", Buffer.from(await picture(33, 35, 3, false).getBuffer("image/png"))],
    ["b/0.jpg", await jpeg(47, 52, 4)],
    ["b/broken.jpg", Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3])],
    ["b/text.jpg", Buffer.from("this is not a jpeg at all")],
  ];
  if (sharp) files.push(["b/1.jpg", await sharp(await jpeg(60, 45, 5)).jpeg({ quality: 90, chromaSubsampling: "4:4:4" }).withMetadata({ orientation: 6 }).toBuffer()]);
  for (const [rel, buf] of files) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), buf);
  }
  const load = async (decoder: string | undefined) => {
    const prev = process.env.SELFLABEL_DECODER;
    if (decoder) process.env.SELFLABEL_DECODER = decoder;
    else delete process.env.SELFLABEL_DECODER;
    try {
      const warnings: string[] = [];
      const r = await loadImageFolder(root, { split: "train", shortSide: 32, cacheDir: path.join(tmp, `cache-${decoder ?? "libjpeg"}`), workers: 2, onWarning: (w) => warnings.push(w) });
      return { ds: r.dataset, warnings };
    } finally {
      if (prev === undefined) delete process.env.SELFLABEL_DECODER;
      else process.env.SELFLABEL_DECODER = prev;
    }
  };
  const n = await load(undefined);
  for (const other of ["jimp", ...(sharp ? ["sharp"] : [])]) {
    const o = await load(other);
    assert.deepEqual(n.ds.paths, o.ds.paths, other);
    assert.deepEqual(Array.from(n.ds.heights), Array.from(o.ds.heights), other);
    assert.deepEqual(Array.from(n.ds.widths), Array.from(o.ds.widths), other);
    for (const bad of ["broken.jpg", "text.jpg"]) assert.ok(n.warnings.some((w) => w.includes(bad)) && o.warnings.some((w) => w.includes(bad)), `${other}: ${bad} skipped`);
    const idx = Int32Array.from({ length: n.ds.count }, (_, i) => i);
    const a = await n.ds.read(idx);
    const b = await o.ds.read(idx);
    for (let k = 0; k < n.ds.count; k++) {
      const len = n.ds.heights[k] * n.ds.widths[k] * 3;
      let sum = 0;
      for (let i = 0; i < len; i++) sum += Math.abs(a.data[a.offsets[k] + i] - b.data[b.offsets[k] + i]);
      assert.ok(sum / len <= 2, `${other}, ${n.ds.paths![k]}: mean difference ${sum / len}`);
    }
    await o.ds.close();
  }
  assert.equal(n.ds.count, files.length - 2);
  await n.ds.close();
});

test("libjpeg without sharp: the files it leaves go to jimp threads, the JPEGs stay with the addon", async (t) => {
  if (!hasNativeJpeg()) return t.skip("the addon was built without libjpeg");
  const root = path.join(tmp, "nosharp");
  fs.mkdirSync(path.join(root, "a"), { recursive: true });
  fs.writeFileSync(path.join(root, "a", "0.jpg"), await jpeg(40, 30, 1));
  fs.writeFileSync(path.join(root, "a", "1.png"), Buffer.from(await picture(20, 25, 2, false).getBuffer("image/png")));
  fs.writeFileSync(path.join(root, "a", "2.jpg"), (await jpeg(50, 40, 3)).subarray(0, 300)); // truncated: left to jimp, which decides
  fs.writeFileSync(path.join(root, "a", "3.jpg"), "not a jpeg");
  // sharp cannot be loaded in the child; jimp's threads are counted
  const preload = path.join(tmp, "no-sharp.js");
  fs.writeFileSync(
    preload,
    `const M=require("module");const l=M._load;M._load=function(r,...a){if(r==="sharp")throw new Error("no sharp here");return l.call(this,r,...a)};` +
      `const wt=require("worker_threads");const W=wt.Worker;globalThis.threads=0;wt.Worker=class extends W{constructor(...a){super(...a);globalThis.threads++}};`,
  );
  const script =
    `const d=require(${JSON.stringify(path.join(__dirname, "..", "lib", "data", "decoders"))});` +
    `require(${JSON.stringify(path.join(__dirname, "..", "lib", "data"))}).loadImageFolder(${JSON.stringify(root)}, { split: "train", shortSide: 32, cacheDir: ${JSON.stringify(path.join(tmp, "cache-nosharp"))}, workers: 2, onWarning: () => {} })` +
    `.then((r) => console.log(JSON.stringify({ decoder: d.decoderName(), fallback: d.fallbackDecoder(), paths: r.dataset.paths, h: Array.from(r.dataset.heights), w: Array.from(r.dataset.widths), threads: globalThis.threads })), (e) => { console.error(e); process.exit(1); })`;
  const r = spawnSync(process.execPath, ["--require", preload, "-e", script], { encoding: "utf8", env: { ...process.env, SELFLABEL_DECODER: "" } });
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout.trim().split("\n").pop()!) as { decoder: string; fallback: string; paths: string[]; h: number[]; w: number[]; threads: number };
  assert.equal(o.decoder, "libjpeg");
  assert.equal(o.fallback, "jimp");
  assert.ok(o.paths.includes("a/0.jpg") && o.paths.includes("a/1.png") && !o.paths.includes("a/3.jpg"), o.paths.join(" "));
  assert.equal(o.threads, 2, "jimp's threads started for the files the addon left");
  assert.deepEqual([o.h[0], o.w[0], o.h[1], o.w[1]], [30, 40, 25, 20]);
});

test("allocPages (the decode cache read back): zeroed memory of the size asked; bad sizes throw", async () => {
  const a = new Uint8Array(native().allocPages(5_000_000));
  assert.equal(a.length, 5_000_000);
  assert.ok(a.every((v) => v === 0));
  a.fill(7);
  assert.equal(a[4_999_999], 7);
  const b = new Uint8Array(native().allocPages(1));
  assert.equal(b.length, 1);
  for (const bad of [0, -1, 1.5, NaN]) assert.throws(() => native().allocPages(bad), RangeError, String(bad));
  assert.throws(() => (native().allocPages as unknown as (x: unknown) => ArrayBuffer)("10"), TypeError);
  // readCache: the file's bytes, or a clear error when it is shorter than its metadata says
  const file = path.join(tmp, "cache.u8");
  const bytes = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) & 255);
  fs.writeFileSync(file, bytes);
  assert.ok(Buffer.from(await readCache(file, bytes.length)).equals(Buffer.from(bytes)));
  await assert.rejects(readCache(file, bytes.length + 10), /cache\.u8: the image cache ends at byte 300000 of 300010; delete it to rebuild/);
});
