// ImageFolder decoding with sharp (optional dependency) against jimp (always
// there): PNG identical, JPEG within the rounding of two IDCTs, the same
// dataset (sizes, labels, paths, skipped files) either way, and
// SELFLABEL_DECODER=jimp honoured. Skipped where sharp is not installed. The
// addon's own JPEG decoder (the default where it is built): jpeg_native.test.ts.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { Jimp } from "jimp";
import { decodeForCache, decodeRgba, decoderName, hasNativeJpeg, jpegOrientation, loadSharp } from "../lib/data/decoders";
import { loadImageFolder } from "../lib/data";
import { picture } from "./helpers/pictures";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-decoders-"));

test("sharp vs jimp: PNG identical, JPEG within IDCT rounding", async (t) => {
  if (!loadSharp()) return t.skip("sharp is not installed (optional dependency)");
  const img = picture(97, 61, 1);
  const png = await img.getBuffer("image/png");
  const a = await decodeRgba(png, "jimp");
  const b = await decodeRgba(png, "sharp");
  assert.deepEqual([b.width, b.height], [97, 61]);
  assert.ok(Buffer.from(a.data).equals(Buffer.from(b.data)), "PNG decodes identically");
  const jpg = await img.getBuffer("image/jpeg", { quality: 90 });
  const c = await decodeRgba(jpg, "jimp");
  const e = await decodeRgba(jpg, "sharp");
  assert.deepEqual([e.width, e.height], [c.width, c.height]);
  let max = 0,
    sum = 0;
  for (let i = 0; i < c.data.length; i++) {
    const d = Math.abs(c.data[i] - e.data[i]);
    max = Math.max(max, d);
    sum += d;
  }
  // jpeg-js and libjpeg-turbo round the IDCT and the chroma upsampling differently:
  // measured max 3, mean 0.41 levels on this image; 8 / 1 leave room for other builds
  assert.ok(max <= 8, `max difference ${max}`);
  assert.ok(sum / c.data.length <= 1, `mean difference ${sum / c.data.length}`);
  await assert.rejects(decodeRgba(Buffer.from("not an image"), "sharp"));
});

test("an ImageFolder decoded with SELFLABEL_DECODER=sharp and =jimp: same dataset", async (t) => {
  if (!loadSharp()) return t.skip("sharp is not installed (optional dependency)");
  const root = path.join(tmp, "folder");
  for (const [cls, n] of [
    ["a", 3],
    ["b", 2],
  ] as const)
    for (let i = 0; i < n; i++) {
      fs.mkdirSync(path.join(root, "train", cls), { recursive: true });
      const img = picture(40 + 7 * i, 30 + 5 * i, 10 * i + cls.length);
      fs.writeFileSync(path.join(root, "train", cls, `${i}.jpg`), await img.getBuffer("image/jpeg", { quality: 92 }));
    }
  fs.writeFileSync(path.join(root, "train", "b", "broken.jpg"), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3]));
  const load = async (decoder: string | undefined, cacheDir: string) => {
    const prev = process.env.SELFLABEL_DECODER;
    if (decoder) process.env.SELFLABEL_DECODER = decoder;
    else delete process.env.SELFLABEL_DECODER;
    try {
      assert.equal(decoderName(), decoder);
      const warnings: string[] = [];
      const r = await loadImageFolder(root, { split: "train", shortSide: 32, cacheDir, workers: 2, onWarning: (w) => warnings.push(w) });
      return { ds: r.dataset, warnings };
    } finally {
      if (prev === undefined) delete process.env.SELFLABEL_DECODER;
      else process.env.SELFLABEL_DECODER = prev;
    }
  };
  const s = await load("sharp", path.join(tmp, "cache-sharp"));
  const j = await load("jimp", path.join(tmp, "cache-jimp"));
  assert.deepEqual(s.ds.paths, j.ds.paths);
  assert.deepEqual(Array.from(s.ds.labels!), Array.from(j.ds.labels!));
  assert.deepEqual(Array.from(s.ds.heights), Array.from(j.ds.heights));
  assert.deepEqual(Array.from(s.ds.widths), Array.from(j.ds.widths));
  assert.equal(s.ds.count, 5);
  assert.ok(s.warnings.some((w) => w.includes("broken.jpg")) && j.warnings.some((w) => w.includes("broken.jpg")));
  const idx = Int32Array.from({ length: 5 }, (_, i) => i);
  const a = await s.ds.read(idx);
  const b = await j.ds.read(idx);
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i] - b.data[i]);
  assert.ok(sum / a.data.length <= 1, `mean difference ${sum / a.data.length} after resizing`);
  await s.ds.close();
  await j.ds.close();
});

test("sharp shrinks a large JPEG on load: cache size and pixels as with jimp + the native resize", async (t) => {
  if (!loadSharp()) return t.skip("sharp is not installed (optional dependency)");
  const sharp = loadSharp() as unknown as (b: Buffer) => { jpeg(o: object): { withMetadata(o: object): { toBuffer(): Promise<Buffer> } } };
  const root = path.join(tmp, "large");
  // 300x200 and 200x300 (portrait) at shortSide 64: shorter side >= 2 x 64, so shrunk on load;
  // the third is stored 300x200 with EXIF orientation 6 (shown 200x300); the fourth (100x120) is resized to 64x76 by the native resize
  const specs: [string, number, number, number][] = [["a/0.jpg", 300, 200, 1], ["a/1.jpg", 200, 300, 1], ["b/0.jpg", 300, 200, 6], ["b/1.jpg", 100, 120, 1]];
  for (const [rel, w, h, orientation] of specs) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    // smooth content (a photo's scale of detail), so the two resize paths can be compared pixel by pixel
    const img = new Jimp({ width: w, height: h, color: 0x000000ff });
    const d = img.bitmap.data;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const i = 4 * (y * w + x);
        d[i] = Math.round(127 + 120 * Math.sin(x / 9) * Math.cos(y / 13));
        d[i + 1] = Math.round((255 * y) / h);
        d[i + 2] = (x + y) % 60 < 30 ? 40 : 210;
      }
    const raw = await img.getBuffer("image/jpeg", { quality: 95 });
    const buf = orientation === 1 ? raw : await sharp(raw).jpeg({ quality: 95 }).withMetadata({ orientation }).toBuffer();
    fs.writeFileSync(path.join(root, rel), buf);
  }
  // the orientation from the header: 1 without EXIF, 6 from the EXIF block; null (sharp reads it) when the markers cannot be followed
  assert.deepEqual(["a/0.jpg", "b/0.jpg"].map((f) => jpegOrientation(fs.readFileSync(path.join(root, f)))), [1, 6]);
  assert.equal(jpegOrientation(Buffer.from([0xff, 0xd8, 0x00, 0x01, 0x02])), null, "unreadable markers: ask sharp");
  const plan = await decodeForCache(fs.readFileSync(path.join(root, "a/0.jpg")), "sharp", 64);
  assert.deepEqual([plan.width, plan.height, plan.channels, plan.resized], [96, 64, 3, true]);
  const small = await decodeForCache(fs.readFileSync(path.join(root, "b/1.jpg")), "sharp", 64);
  assert.deepEqual([small.width, small.height, small.resized], [100, 120, false]);
  const load = async (decoder: string | undefined) => {
    const prev = process.env.SELFLABEL_DECODER;
    if (decoder) process.env.SELFLABEL_DECODER = decoder;
    else delete process.env.SELFLABEL_DECODER;
    try {
      return (await loadImageFolder(root, { split: "train", shortSide: 64, cacheDir: path.join(tmp, `cache-large-${decoder ?? "sharp"}`), workers: 2 })).dataset;
    } finally {
      if (prev === undefined) delete process.env.SELFLABEL_DECODER;
      else process.env.SELFLABEL_DECODER = prev;
    }
  };
  const s = await load("sharp");
  const j = await load("jimp");
  // jimp applies EXIF orientation too: both see b/0.jpg as 200 wide, 300 high
  assert.deepEqual(Array.from(s.heights), [64, 96, 96, 76]);
  assert.deepEqual(Array.from(s.widths), [96, 64, 64, 64]);
  assert.deepEqual(Array.from(j.heights), Array.from(s.heights));
  assert.deepEqual(Array.from(j.widths), Array.from(s.widths));
  const idx = Int32Array.from({ length: 4 }, (_, i) => i);
  const a = await s.read(idx);
  const b = await j.read(idx);
  for (let k = 0; k < 4; k++) {
    const n = s.heights[k] * s.widths[k] * 3;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Math.abs(a.data[a.offsets[k] + i] - b.data[b.offsets[k] + i]);
    // a DCT-domain shrink then libvips' triangle filter against a full decode then the native
    // triangle filter: measured mean 0.65-0.72 levels on these images (0.43 for the unshrunk one)
    assert.ok(sum / n <= 2, `image ${k}: mean difference ${sum / n}`);
  }
  await s.close();
  await j.close();
});

test("jpegOrientation: the EXIF orientation from the header, null where sharp must read it", () => {
  const seg = (m: number, body: Buffer) => Buffer.concat([Buffer.from([0xff, m, (body.length + 2) >> 8, (body.length + 2) & 255]), body]);
  // a TIFF block whose IFD0 holds one entry: tag, type, count, value
  const tiff = (le: boolean, tag: number, type: number, count: number, value: number) => {
    const b = Buffer.alloc(8 + 2 + 12 + 4);
    b.write(le ? "II" : "MM", 0, "latin1");
    const u16 = (v: number, o: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
    const u32 = (v: number, o: number) => (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
    u16(42, 2);
    u32(8, 4);
    u16(1, 8);
    u16(tag, 10);
    u16(type, 12);
    u32(count, 14);
    u16(value, 18);
    return b;
  };
  const exif = (t: Buffer) => seg(0xe1, Buffer.concat([Buffer.from("Exif\0\0", "latin1"), t]));
  const sof = seg(0xc0, Buffer.from([8, 0, 16, 0, 16, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]));
  const jpeg = (...parts: Buffer[]) => Buffer.concat([Buffer.from([0xff, 0xd8]), ...parts, Buffer.from([0xff, 0xda, 0, 2])]);
  assert.equal(jpegOrientation(jpeg(seg(0xe0, Buffer.from("JFIF\0\x01\x01", "latin1")), sof)), 1, "no EXIF");
  assert.equal(jpegOrientation(jpeg(exif(tiff(true, 0x0112, 3, 1, 6)), sof)), 6, "little-endian");
  assert.equal(jpegOrientation(jpeg(exif(tiff(false, 0x0112, 3, 1, 8)), sof)), 8, "big-endian");
  assert.equal(jpegOrientation(jpeg(exif(tiff(true, 0x010f, 2, 1, 0)), sof)), 1, "EXIF without an orientation tag");
  assert.equal(jpegOrientation(jpeg(sof, exif(tiff(true, 0x0112, 3, 1, 3)))), 3, "EXIF after the frame header, before the scan (libjpeg still reads it)");
  assert.equal(jpegOrientation(jpeg(seg(0xe1, Buffer.from("http://ns.adobe.com/xap/1.0/\0<x/>", "latin1")), sof)), 1, "an XMP APP1 is not EXIF");
  assert.equal(jpegOrientation(jpeg(exif(tiff(true, 0x0112, 3, 1, 6)), exif(tiff(true, 0x0112, 3, 1, 1)), sof)), null, "two EXIF blocks");
  assert.equal(jpegOrientation(jpeg(exif(tiff(true, 0x0112, 3, 1, 9)), sof)), null, "orientation out of 1-8");
  assert.equal(jpegOrientation(jpeg(exif(tiff(true, 0x0112, 4, 1, 6)), sof)), null, "orientation not a SHORT");
  assert.equal(jpegOrientation(jpeg(exif(Buffer.from("XX*\0\x08\0\0\0", "latin1")), sof)), null, "not a TIFF block");
  assert.equal(jpegOrientation(jpeg(exif(tiff(true, 0x0112, 3, 1, 6))).subarray(0, 20)), null, "truncated");
});

test("sharp with the orientation from the header: as sharp's own auto-orientation, for all 8 orientations", async (t) => {
  if (!loadSharp()) return t.skip("sharp is not installed (optional dependency)");
  const sharp = loadSharp() as unknown as (b: Buffer) => {
    jpeg(o: object): { withMetadata(o: object): { toBuffer(): Promise<Buffer> } };
    metadata(): Promise<{ orientation?: number }>;
    rotate(): { removeAlpha(): { raw(): { toBuffer(o: object): Promise<{ data: Buffer; info: { width: number; height: number } }> } } };
  };
  const raw = Buffer.from(await picture(37, 23, 5).getBuffer("image/jpeg", { quality: 90 }));
  for (let o = 1; o <= 8; o++) {
    const buf = await sharp(raw).jpeg({ quality: 90 }).withMetadata({ orientation: o }).toBuffer();
    assert.equal(jpegOrientation(buf), (await sharp(buf).metadata()).orientation ?? 1, `orientation ${o}`);
    const want = await sharp(buf).rotate().removeAlpha().raw().toBuffer({ resolveWithObject: true });
    // 37x23 at shortSide 16: above the cache size but not twice it, so decoded at full size (no shrink)
    const got = await decodeForCache(buf, "sharp", 16);
    assert.deepEqual([got.width, got.height, got.channels, got.resized], [want.info.width, want.info.height, 3, false], `orientation ${o}`);
    assert.ok(Buffer.from(got.data).equals(want.data), `orientation ${o}: pixels as sharp's rotate()`);
  }
});

test("a full disk while writing the decode cache: an error naming the cache file and the bytes, no file left", async () => {
  const root = path.join(tmp, "full");
  fs.mkdirSync(path.join(root, "a"), { recursive: true });
  // 200x200: 120000 bytes of pixels in the cache, above the preload's threshold
  const png = await picture(200, 200, 3).getBuffer("image/png");
  for (let i = 0; i < 12; i++) fs.writeFileSync(path.join(root, "a", `${i}.png`), png);
  const preload = path.join(tmp, "enospc-cache.js");
  fs.writeFileSync(
    preload,
    `const fs=require("fs");const w=fs.writeSync;fs.writeSync=function(f,d,...r){` +
      `if(typeof f==="number"&&d&&d.length>100000){const e=new Error("ENOSPC: no space left on device, write");e.code="ENOSPC";e.syscall="write";throw e}` +
      `return w.call(this,f,d,...r)};` +
      // image files read after the build has failed: a stopped build must not go on decoding its queue
      `const rf=fs.readFileSync;globalThis.lateReads=0;fs.readFileSync=function(f,...r){if(globalThis.failed&&/\.png$/.test(String(f)))globalThis.lateReads++;return rf.call(this,f,...r)};`,
  );
  const cacheDir = path.join(tmp, "cache-full");
  const script =
    `require(${JSON.stringify(path.join(__dirname, "..", "lib", "data"))}).loadImageFolder(${JSON.stringify(root)}, { split: "train", cacheDir: ${JSON.stringify(cacheDir)} })` +
    `.then(() => console.log("loaded"), (e) => { globalThis.failed = true; setTimeout(() => console.log(JSON.stringify({ code: e.code, message: e.message, lateReads: globalThis.lateReads })), 500); })`;
  for (const decoder of ["jimp", ...(loadSharp() ? ["sharp"] : []), ...(hasNativeJpeg() ? ["libjpeg"] : [])]) {
    const r = spawnSync(process.execPath, ["--require", preload, "-e", script], { encoding: "utf8", env: { ...process.env, SELFLABEL_DECODER: decoder } });
    assert.equal(r.status, 0, r.stderr);
    const e = JSON.parse(r.stdout.trim()) as { code: string; message: string; lateReads: number };
    assert.equal(e.lateReads, 0, `${decoder}: files read after the build failed`);
    assert.equal(e.code, "SLN_CACHE_UNWRITABLE", decoder);
    assert.match(e.message, /imagefolder-[0-9a-f]+\.u8\.\d+\.\d+\.tmp: cannot write 120000 bytes of the image cache \(no space left on the device \(ENOSPC\)\); free some space/, decoder);
    assert.deepEqual(fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir) : [], [], `${decoder}: nothing left in the cache directory`);
  }
});
