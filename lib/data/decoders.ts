// Image decoders for ImageFolder: sharp (libvips with libjpeg-turbo and libpng,
// shipped prebuilt by npm as an optional dependency: no system library) when it
// is installed, else jimp (pure JavaScript, always there; about 10-30x slower
// on JPEG). Both apply the EXIF orientation and return RGBA. SELFLABEL_DECODER=jimp
// forces jimp. The two decode JPEG with different IDCTs (pixels differ by a few
// levels); the decode cache keeps whichever built it, so a dataset's fingerprint
// does not depend on the decoder. sharp is loaded in the main thread before the
// decode workers start (libvips must not be unloaded with a worker).
import { MAX_IMAGE_PIXELS } from "./image_limits";

export type DecoderName = "sharp" | "jimp";

export interface Rgba {
  width: number;
  height: number;
  /** width x height x 4 bytes. */
  data: Uint8Array;
}

interface SharpInstance {
  rotate(): SharpInstance;
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
