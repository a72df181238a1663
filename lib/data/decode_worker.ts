// worker_threads entry: decode image files with sharp or jimp for the decode
// cache (decoders.ts; the pool names the decoder and the cache's shorter side
// in workerData). Out first: { ready: true } once loaded. Messages in: { id, file }; out: { id, ok: true, width,
// height, channels, resized, pixels: ArrayBuffer } (RGB or RGBA, transferred)
// or { id, ok: false, error }. The file is read synchronously (this thread does
// nothing else; an async read cost about 1 ms more per image, a third of
// sharp's decode of a 320x256 JPEG). Never throws out of the worker.
import * as fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { decodeForCache, DecoderName } from "./decoders";
import { checkImagePixels } from "./image_limits";

export interface DecodeRequest {
  id: number;
  file: string;
}
export type DecodeReply =
  | { id: number; ok: true; width: number; height: number; channels: 3 | 4; resized: boolean; pixels: ArrayBuffer }
  | { id: number; ok: false; error: string };

async function decode(req: DecodeRequest): Promise<DecodeReply> {
  try {
    const buf = fs.readFileSync(req.file);
    if (buf.length === 0) return { id: req.id, ok: false, error: "empty file" };
    checkImagePixels(buf); // the pixel cap, from the header, before any decoding
    const wd = (workerData ?? {}) as { decoder?: DecoderName; shortSide?: number };
    const { width, height, channels, data, resized } = await decodeForCache(buf, wd.decoder ?? "jimp", wd.shortSide ?? 256);
    const bytes = width * height * channels;
    if (!(width >= 1 && height >= 1) || data.length < bytes) {
      return { id: req.id, ok: false, error: `decoder returned a ${width}x${height}x${channels} bitmap of ${data.length} bytes` };
    }
    const pixels = new Uint8Array(bytes);
    pixels.set(data.subarray(0, bytes));
    return { id: req.id, ok: true, width, height, channels, resized, pixels: pixels.buffer };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { id: req.id, ok: false, error: msg.split("\n")[0] || "decode failed" };
  }
}

if (parentPort) {
  const port = parentPort;
  // load the decoder before saying ready: the pool's time limit then times decodes only
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  if (((workerData ?? {}) as { decoder?: DecoderName }).decoder !== "sharp") require("jimp");
  port.postMessage({ ready: true });
  port.on("message", (req: DecodeRequest) => {
    void decode(req).then((reply) => {
      if (reply.ok) port.postMessage(reply, [reply.pixels]);
      else port.postMessage(reply);
    });
  });
}
