// worker_threads entry: decode image files with sharp or jimp (decoders.ts; the
// pool names the decoder in workerData). Messages in:
// { id, file }; out: { id, ok: true, width, height, rgba: ArrayBuffer } (RGBA,
// transferred) or { id, ok: false, error }. Never throws out of the worker.
import * as fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { decodeRgba, DecoderName } from "./decoders";
import { checkImagePixels } from "./image_limits";

export interface DecodeRequest {
  id: number;
  file: string;
}
export type DecodeReply =
  | { id: number; ok: true; width: number; height: number; rgba: ArrayBuffer }
  | { id: number; ok: false; error: string };

async function decode(req: DecodeRequest): Promise<DecodeReply> {
  try {
    const buf = await fs.promises.readFile(req.file);
    if (buf.length === 0) return { id: req.id, ok: false, error: "empty file" };
    checkImagePixels(buf); // the pixel cap, from the header, before any decoding
    const { width, height, data } = await decodeRgba(buf, ((workerData as { decoder?: DecoderName } | null)?.decoder ?? "jimp") as DecoderName);
    if (!(width >= 1 && height >= 1) || data.length < width * height * 4) {
      return { id: req.id, ok: false, error: `decoder returned a ${width}x${height} bitmap of ${data.length} bytes` };
    }
    const rgba = new Uint8Array(width * height * 4);
    rgba.set(data.subarray(0, width * height * 4));
    return { id: req.id, ok: true, width, height, rgba: rgba.buffer };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { id: req.id, ok: false, error: msg.split("\n")[0] || "decode failed" };
  }
}

if (parentPort) {
  const port = parentPort;
  port.on("message", (req: DecodeRequest) => {
    void decode(req).then((reply) => {
      if (reply.ok) port.postMessage(reply, [reply.rgba]);
      else port.postMessage(reply);
    });
  });
}
