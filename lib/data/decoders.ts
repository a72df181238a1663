// Image decoders for ImageFolder, fastest first:
// - libjpeg: the addon's own JPEG decoder (native/addon/jpeg_binding.cpp,
//   libjpeg-turbo linked in where the build found it; the prebuilt addon
//   carries its libjpeg.so.62): a JPEG is decoded straight to the cache's size
//   and orientation, into a reused buffer (PixelBuffers), in one libuv job. A
//   file it does not take (not a JPEG, CMYK, an EXIF block the header reader
//   cannot follow, corrupt or truncated) goes to sharp, else jimp, which decide.
// - sharp (libvips with libjpeg-turbo and libpng, shipped prebuilt by npm as an
//   optional dependency: no system library) when it is installed;
// - jimp (pure JavaScript, always there; about 10-30x slower on JPEG).
// All apply the EXIF orientation. SELFLABEL_DECODER=jimp or =sharp forces one
// (sharp falls back to jimp where it is not installed). The decoders use
// different IDCTs (pixels differ by a few levels); the decode cache keeps
// whichever built it, so a dataset's fingerprint does not depend on the decoder.
//
// Where they run (decodeFileNative, decodeFile, the ImageFolder decode pool):
// jimp on worker_threads (its decode is JavaScript); the addon's decoder and
// sharp in the calling thread,
// whose libvips work runs on libuv's threads anyway (one libvips thread per
// image, sharp.concurrency(1); its operation cache off): a decode thread per
// core only added its start (about 0.2 s of CPU each, sharp's import) and a
// message and a copy per image. sharp is loaded in the main thread (libvips
// must not be unloaded with a worker).
//
// For the decode cache (decodeForCache): a JPEG whose shorter side is at least
// twice the cache's is shrunk while it is decoded (libjpeg's scaled IDCT,
// sharp's fastShrinkOnLoad: a 1024x768 photo decodes at 512x384) and resized to
// the cache size by libvips (triangle kernel, like the native resize), which is
// where sharp gets most of its speed on photos; every other image is decoded at
// full size and resized by the native resize, as with jimp. Sizes and the EXIF
// orientation of a JPEG come from its header (image_limits.ts, jpegOrientation
// below): sharp's metadata() (about 1 ms) is asked only when the header cannot
// be read, and a JPEG without an orientation to apply skips the rotation.
import * as fs from "node:fs";
import { native } from "../binding";
import { MAX_IMAGE_PIXELS, checkImagePixels, imageHeader } from "./image_limits";

export type DecoderName = "libjpeg" | "sharp" | "jimp";

export interface Rgba {
  width: number;
  height: number;
  /** width x height x 4 bytes. */
  data: Uint8Array;
}

interface SharpInstance {
  metadata(): Promise<{ format?: string; width?: number; height?: number; orientation?: number }>;
  rotate(): SharpInstance;
  removeAlpha(): SharpInstance;
  resize(o: { width: number; height: number; fit: "fill"; kernel: "linear"; fastShrinkOnLoad: boolean }): SharpInstance;
  ensureAlpha(): SharpInstance;
  raw(): SharpInstance;
  toBuffer(o: { resolveWithObject: true }): Promise<{ data: Buffer; info: { width: number; height: number; channels: number } }>;
}
type SharpModule = ((input: Buffer, options?: Record<string, unknown>) => SharpInstance) & {
  concurrency?(n: number): number;
  cache?(enabled: boolean): unknown;
};

let sharpModule: SharpModule | null | undefined;

/** The sharp module, or null when it is not installed or does not load here. */
export function loadSharp(): SharpModule | null {
  if (sharpModule === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      sharpModule = require("sharp") as SharpModule;
      // one libvips thread per decode: the decode pool runs several decodes at once
      sharpModule.concurrency?.(1);
      // no operation cache: every image is decoded once, and the cache only kept
      // the last 100 inputs and outputs alive
      sharpModule.cache?.(false);
    } catch {
      sharpModule = null;
    }
  }
  return sharpModule;
}

/** Whether the addon has its JPEG decoder (built where libjpeg was found). */
export function hasNativeJpeg(): boolean {
  try {
    return typeof native().jpegDecode === "function";
  } catch {
    return false;
  }
}

/** The decoder ImageFolder uses in this process (libjpeg: for JPEGs; other files go to fallbackDecoder()). */
export function decoderName(): DecoderName {
  const forced = process.env.SELFLABEL_DECODER;
  if (forced === "jimp") return "jimp";
  if (forced !== "sharp" && hasNativeJpeg()) return "libjpeg";
  return loadSharp() ? "sharp" : "jimp";
}

/** The decoder of the files the addon's JPEG decoder does not take. */
export function fallbackDecoder(): "sharp" | "jimp" {
  return process.env.SELFLABEL_DECODER !== "jimp" && loadSharp() ? "sharp" : "jimp";
}

/** Decode an image file's bytes to RGBA with the named decoder (throws on a bad file). */
export async function decodeRgba(buf: Buffer, name: "sharp" | "jimp"): Promise<Rgba> {
  if (name === "sharp") {
    const sharp = loadSharp();
    if (!sharp) throw new Error("sharp is not installed");
    const { data, info } = await sharp(buf, { failOn: "error", limitInputPixels: MAX_IMAGE_PIXELS }).rotate().ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 4) throw new Error(`sharp returned ${info.channels} channels`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  }
  // loaded on first use: a decode thread with sharp never pays for jimp's import
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { Jimp } = require("jimp") as typeof import("jimp");
  const img = await Jimp.fromBuffer(buf);
  const { width, height, data } = img.bitmap;
  return { width, height, data };
}

/** torchvision Resize(size) for an int size: the shorter side becomes size, the longer int(size * long / short). */
export function resizedSize(h: number, w: number, size: number): [number, number] {
  if (w <= h) return [Math.floor((size * h) / w), size];
  return [size, Math.floor((size * w) / h)];
}

/** The size an image of h x w is cached at: shorter side at most shortSide. */
export function cacheSize(h: number, w: number, shortSide: number): [number, number] {
  return Math.min(h, w) > shortSide ? resizedSize(h, w, shortSide) : [h, w];
}

export interface DecodedImage {
  width: number;
  height: number;
  /** 4 (RGBA, jimp) or 3 (RGB, sharp); the caller drops alpha. */
  channels: 3 | 4;
  data: Uint8Array;
  /** true when the decoder already resized the image to cacheSize(). */
  resized: boolean;
}

/**
 * Decode an image file's bytes for the decode cache (shorter side at most
 * shortSide): with sharp, a large JPEG is shrunk on load and resized by
 * libvips (see the top of this file); otherwise the full-size image.
 */
export async function decodeForCache(buf: Buffer, name: DecoderName, shortSide: number): Promise<DecodedImage> {
  if (name === "libjpeg") {
    const r = await decodeJpegNative(buf, shortSide);
    if (typeof r === "object" && r !== null) return r;
    name = fallbackDecoder();
  }
  if (name !== "sharp") {
    const r = await decodeRgba(buf, name);
    return { ...r, channels: 4, resized: false };
  }
  const sharp = loadSharp();
  if (!sharp) throw new Error("sharp is not installed");
  const img = sharp(buf, { failOn: "error", limitInputPixels: MAX_IMAGE_PIXELS, sequentialRead: true });
  const hdr = imageHeader(buf);
  const jpeg = hdr !== null && hdr.format === "jpeg";
  // 1-8, or null: not a JPEG, or a header this reader does not follow (libvips decides)
  const orientation = jpeg ? jpegOrientation(buf) : null;
  // the header says whether to shrink (a rotation keeps the shorter side)
  const shrink = jpeg && Math.min(hdr!.width, hdr!.height) >= 2 * shortSide;
  let [th, tw] = [0, 0];
  if (shrink) {
    let h = hdr!.height,
      w = hdr!.width,
      o = orientation;
    if (o === null) {
      const meta = await img.metadata();
      [h, w, o] = [meta.height ?? h, meta.width ?? w, meta.orientation ?? 1];
    }
    if (o >= 5) [h, w] = [w, h]; // EXIF orientations 5-8 swap the sides
    [th, tw] = cacheSize(h, w, shortSide);
  }
  let p = orientation === 1 ? img : img.rotate();
  if (shrink) p = p.resize({ width: tw, height: th, fit: "fill", kernel: "linear", fastShrinkOnLoad: true });
  // RGB out (sharp's raw output is sRGB, a grey JPEG too; removeAlpha for a PNG with alpha)
  const { data, info } = await p.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`sharp returned ${info.channels} channels`);
  if (shrink && (info.width !== tw || info.height !== th)) throw new Error(`sharp resized to ${info.width}x${info.height}, expected ${tw}x${th}`);
  return { width: info.width, height: info.height, channels: 3, data: new Uint8Array(data.buffer, data.byteOffset, data.length), resized: shrink };
}

/**
 * Reused pixel buffers for the addon's JPEG decoder: a decode takes one, the
 * cache gives it back once written, so no image touches fresh memory (on the
 * VM of docs/benchmarks.md, first-touch memory cost about as much as the
 * decode itself).
 */
export class PixelBuffers {
  private free: Uint8Array[] = [];
  private mine = new WeakSet<ArrayBufferLike>();
  constructor(private readonly keep = 32) {}

  /** A buffer of at least n bytes (its first n are the image's). */
  take(n: number): Uint8Array {
    for (let i = this.free.length - 1; i >= 0; i--) {
      if (this.free[i].length >= n) return this.free.splice(i, 1)[0];
    }
    const b = new Uint8Array(n);
    this.mine.add(b.buffer);
    return b;
  }

  /** Give back a buffer from take() (or a view of one); other arrays are ignored. */
  give(b: Uint8Array): void {
    if (!this.mine.has(b.buffer) || this.free.length >= this.keep) return;
    this.free.push(new Uint8Array(b.buffer));
  }
}

/**
 * Decode a JPEG for the cache with the addon's decoder (jpeg_binding.cpp): to
 * cacheSize() of its shown size, RGB, oriented. null when the addon has no
 * decoder, the file is not a JPEG or its EXIF block cannot be read here;
 * a string (why) when libjpeg did not decode it. Either way another decoder
 * decides about the file.
 */
export async function decodeJpegNative(buf: Uint8Array, shortSide: number, buffers?: PixelBuffers): Promise<DecodedImage | string | null> {
  const decode = native().jpegDecode;
  if (!decode) return null;
  const hdr = imageHeader(buf);
  if (hdr === null || hdr.format !== "jpeg") return null;
  const o = jpegOrientation(buf);
  if (o === null) return null;
  const [h, w] = o >= 5 ? [hdr.width, hdr.height] : [hdr.height, hdr.width];
  const [th, tw] = cacheSize(h, w, shortSide);
  const n = th * tw * 3;
  const out = buffers ? buffers.take(n) : new Uint8Array(n);
  const why = await decode(buf, shortSide, o, hdr.height, hdr.width, th, tw, out);
  if (why !== null) {
    buffers?.give(out);
    return why;
  }
  return { width: tw, height: th, channels: 3, data: out.length === n ? out : out.subarray(0, n), resized: true };
}

/**
 * The EXIF orientation (1-8) a JPEG's decoder applies: 1 when no APP1 "Exif"
 * segment comes before the first scan or it has no orientation tag; null when
 * the markers or the EXIF block cannot be followed, or there is more than one
 * EXIF block (then sharp reads it).
 */
export function jpegOrientation(b: Uint8Array): number | null {
  let p = 2;
  let found: number | null = null;
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return null;
    const m = b[p + 1];
    if (m === 0xff) {
      p++;
      continue;
    }
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      p += 2;
      continue;
    }
    if (m === 0xda || m === 0xd9) return found ?? 1; // the first scan: libjpeg reads no markers past it
    const len = (b[p + 2] << 8) | b[p + 3];
    if (len < 2 || p + 2 + len > b.length) return null;
    if (m === 0xe1 && len >= 8 && b[p + 4] === 0x45 && b[p + 5] === 0x78 && b[p + 6] === 0x69 && b[p + 7] === 0x66 && b[p + 8] === 0 && b[p + 9] === 0) {
      if (found !== null) return null;
      found = exifOrientation(b.subarray(p + 10, p + 2 + len));
      if (found === null) return null;
    }
    p += 2 + len;
  }
  return null;
}

/** Orientation tag (0x0112) of a TIFF-structured EXIF block's IFD0: 1 when absent, null when unreadable or out of 1-8. */
function exifOrientation(t: Uint8Array): number | null {
  if (t.length < 8) return null;
  const le = t[0] === 0x49 && t[1] === 0x49;
  if (!le && !(t[0] === 0x4d && t[1] === 0x4d)) return null;
  const u16 = (o: number) => (le ? t[o] | (t[o + 1] << 8) : (t[o] << 8) | t[o + 1]);
  const u32 = (o: number) => (le ? (t[o] | (t[o + 1] << 8) | (t[o + 2] << 16)) + t[o + 3] * 2 ** 24 : t[o] * 2 ** 24 + ((t[o + 1] << 16) | (t[o + 2] << 8) | t[o + 3]));
  if (u16(2) !== 42) return null;
  const ifd = u32(4);
  if (ifd < 8 || ifd + 2 > t.length) return null;
  const n = u16(ifd);
  if (ifd + 2 + 12 * n > t.length) return null;
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + 12 * i;
    if (u16(e) !== 0x0112) continue;
    if (u16(e + 2) !== 3 || u32(e + 4) !== 1) return null;
    const v = u16(e + 8);
    return v >= 1 && v <= 8 ? v : null;
  }
  return 1;
}

export type DecodeResult =
  | { ok: true; width: number; height: number; channels: 3 | 4; resized: boolean; pixels: Uint8Array }
  | { ok: false; error: string };

/**
 * Read and decode one file with the addon's JPEG decoder (decodeJpegNative),
 * after the header's pixel cap: null when it leaves the file to another
 * decoder (decodeFile); an empty file or one over the cap is { ok: false }
 * as there. Never throws.
 */
export async function decodeFileNative(file: string, shortSide: number, buffers?: PixelBuffers): Promise<DecodeResult | null> {
  try {
    const buf = fs.readFileSync(file);
    if (buf.length === 0) return { ok: false, error: "empty file" };
    checkImagePixels(buf);
    const r = await decodeJpegNative(buf, shortSide, buffers);
    if (r === null || typeof r === "string") return null;
    return { ok: true, width: r.width, height: r.height, channels: 3, resized: true, pixels: r.data };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { ok: false, error: msg.split("\n")[0] || "decode failed" };
  }
}

/**
 * Read and decode one image file for the decode cache: the header's pixel
 * cap first (image_limits.ts), then decodeForCache. A file that cannot be
 * read or decoded is { ok: false, error } (one line); never throws.
 */
export async function decodeFile(file: string, name: "sharp" | "jimp", shortSide: number): Promise<DecodeResult> {
  try {
    // synchronously: 20-100 us for a photo; an asynchronous read cost about 1 ms more per image
    const buf = fs.readFileSync(file);
    if (buf.length === 0) return { ok: false, error: "empty file" };
    checkImagePixels(buf); // the pixel cap, from the header, before any decoding
    const { width, height, channels, data, resized } = await decodeForCache(buf, name, shortSide);
    const bytes = width * height * channels;
    if (!(width >= 1 && height >= 1) || data.length < bytes) {
      return { ok: false, error: `decoder returned a ${width}x${height}x${channels} bitmap of ${data.length} bytes` };
    }
    return { ok: true, width, height, channels, resized, pixels: data.length === bytes ? data : data.subarray(0, bytes) };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { ok: false, error: msg.split("\n")[0] || "decode failed" };
  }
}
