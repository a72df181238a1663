// Image decoders for ImageFolder: sharp (libvips with libjpeg-turbo and libpng,
// shipped prebuilt by npm as an optional dependency: no system library) when it
// is installed, else jimp (pure JavaScript, always there; about 10-30x slower
// on JPEG). Both apply the EXIF orientation and return RGBA. SELFLABEL_DECODER=jimp
// forces jimp. The two decode JPEG with different IDCTs (pixels differ by a few
// levels); the decode cache keeps whichever built it, so a dataset's fingerprint
// does not depend on the decoder. sharp is loaded in the main thread before the
// decode workers start (libvips must not be unloaded with a worker).
//
// For the decode cache (decodeForCache): a JPEG whose shorter side is at least
// twice the cache's is shrunk while it is decoded (libjpeg's scaled IDCT,
// sharp's fastShrinkOnLoad: a 1024x768 photo decodes at 512x384) and resized to
// the cache size by libvips (triangle kernel, like the native resize), which is
// where sharp gets most of its speed on photos; every other image is decoded at
// full size and resized by the native resize, as with jimp.
import { MAX_IMAGE_PIXELS, imageHeader } from "./image_limits";

export type DecoderName = "sharp" | "jimp";

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
type SharpModule = ((input: Buffer, options?: Record<string, unknown>) => SharpInstance) & { concurrency?(n: number): number };

let sharpModule: SharpModule | null | undefined;

/** The sharp module, or null when it is not installed or does not load here. */
export function loadSharp(): SharpModule | null {
  if (sharpModule === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      sharpModule = require("sharp") as SharpModule;
      // one libvips thread per decode: the decode pool runs several decodes at once
      sharpModule.concurrency?.(1);
    } catch {
      sharpModule = null;
    }
  }
  return sharpModule;
}

/** The decoder ImageFolder uses in this process. */
export function decoderName(): DecoderName {
  if (process.env.SELFLABEL_DECODER === "jimp") return "jimp";
  return loadSharp() ? "sharp" : "jimp";
}

/** Decode an image file's bytes to RGBA with the named decoder (throws on a bad file). */
export async function decodeRgba(buf: Buffer, name: DecoderName): Promise<Rgba> {
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
  if (name !== "sharp") {
    const r = await decodeRgba(buf, name);
    return { ...r, channels: 4, resized: false };
  }
  const sharp = loadSharp();
  if (!sharp) throw new Error("sharp is not installed");
  const img = sharp(buf, { failOn: "error", limitInputPixels: MAX_IMAGE_PIXELS });
  // the header says whether to shrink (a rotation keeps the shorter side); only an
  // EXIF JPEG needs sharp's metadata (about 1 ms), for the orientation
  const hdr = imageHeader(buf);
  const shrink = hdr !== null && hdr.format === "jpeg" && Math.min(hdr.width, hdr.height) >= 2 * shortSide;
  let [th, tw] = [0, 0];
  if (shrink) {
    let h = hdr!.height,
      w = hdr!.width;
    if (jpegMayHaveExif(buf)) {
      const meta = await img.metadata();
      [h, w] = [meta.height ?? h, meta.width ?? w];
      if ((meta.orientation ?? 1) >= 5) [h, w] = [w, h]; // EXIF orientations 5-8 swap the sides
    }
    [th, tw] = cacheSize(h, w, shortSide);
  }
  let p = img.rotate();
  if (shrink) p = p.resize({ width: tw, height: th, fit: "fill", kernel: "linear", fastShrinkOnLoad: true });
  const { data, info } = await p.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`sharp returned ${info.channels} channels`);
  if (shrink && (info.width !== tw || info.height !== th)) throw new Error(`sharp resized to ${info.width}x${info.height}, expected ${tw}x${th}`);
  return { width: info.width, height: info.height, channels: 3, data: new Uint8Array(data.buffer, data.byteOffset, data.length), resized: shrink };
}

/**
 * Does a JPEG carry an APP1 "Exif" segment before its first frame (where an
 * orientation would be)? True also when the markers cannot be walked, so the
 * caller asks sharp.
 */
export function jpegMayHaveExif(b: Uint8Array): boolean {
  let p = 2;
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return true;
    const m = b[p + 1];
    if (m === 0xff) {
      p++;
      continue;
    }
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      p += 2;
      continue;
    }
    if ((m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) || m === 0xda) return false; // a frame or scan: no EXIF before it
    const len = (b[p + 2] << 8) | b[p + 3];
    if (len < 2) return true;
    if (m === 0xe1 && len >= 8 && p + 10 <= b.length && String.fromCharCode(b[p + 4], b[p + 5], b[p + 6], b[p + 7]) === "Exif") return true;
    p += 2 + len;
  }
  return true;
}
