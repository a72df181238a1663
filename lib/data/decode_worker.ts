// worker_threads entry: decode image files with jimp for the decode cache
// (decoders.ts decodeFile; the pool names the decoder and the cache's shorter
// side in workerData; the addon's JPEG decoder and sharp decode in the pool's
// own thread, see decoders.ts).
// Out first: { ready: true } once loaded. Messages in: { id, file }; out:
// { id, ok: true, width, height, channels, resized, pixels: Uint8Array } (RGB
// or RGBA, its buffer transferred) or { id, ok: false, error }. Never throws
// out of the worker.
import { parentPort, workerData } from "node:worker_threads";
import { decodeFile, DecodeResult, DecoderName } from "./decoders";

export interface DecodeRequest {
  id: number;
  file: string;
}
export type DecodeReply = { id: number } & DecodeResult;

if (parentPort) {
  const port = parentPort;
  const wd = (workerData ?? {}) as { decoder?: DecoderName; shortSide?: number };
  // load the decoder before saying ready: the pool's time limit then times decodes only
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  if (wd.decoder !== "sharp") require("jimp");
  port.postMessage({ ready: true });
  port.on("message", (req: DecodeRequest) => {
    void decodeFile(req.file, wd.decoder === "sharp" ? "sharp" : "jimp", wd.shortSide ?? 256).then((r) => {
      if (!r.ok) return port.postMessage({ id: req.id, ...r });
      // the decoder's own buffer when the pixels fill it (no copy), else a copy
      const own = r.pixels.byteOffset === 0 && r.pixels.byteLength === r.pixels.buffer.byteLength && r.pixels.buffer instanceof ArrayBuffer;
      const pixels = own ? r.pixels : r.pixels.slice();
      try {
        port.postMessage({ id: req.id, ...r, pixels }, [pixels.buffer as ArrayBuffer]);
      } catch {
        // a buffer that cannot be transferred (allocated outside V8): copied
        const copy = pixels.slice();
        port.postMessage({ id: req.id, ...r, pixels: copy }, [copy.buffer]);
      }
    });
  });
}
