// loadWeights / loadPth in a worker thread: parsing a large .pth (zip CRCs,
// inflation, the pickle, strided copies) never blocks the event loop. The
// tensors come back by transfer; errors keep their message, code and exit code.
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { PthError } from "./error";
import type { PthWeights } from "./weights";

/** loadWeights (a .pth or safetensors weights file) in a worker thread. */
export function loadWeightsAsync(file: string): Promise<PthWeights> {
  return readInWorker(file, false);
}

/** loadPth (a .pth only, as `convert` reads) in a worker thread. */
export function loadPthAsync(file: string): Promise<PthWeights> {
  return readInWorker(file, true);
}

function readInWorker(file: string, pthOnly: boolean): Promise<PthWeights> {
  return new Promise((resolve, reject) => {
    const w = new Worker(path.join(__dirname, "load_worker.js"), { workerData: { file, pthOnly } });
    let settled = false;
    w.once("message", (m: { ok: true; weights: PthWeights } | { ok: false; error: { name: string; message: string; code?: string; exitCode?: number } }) => {
      settled = true;
      if (m.ok) return resolve(m.weights);
      const e = m.error.exitCode === 2 ? new PthError(m.error.message, m.error.code ?? "SLN_BAD_PTH") : new Error(m.error.message);
      e.name = m.error.name;
      reject(e);
    });
    w.once("error", (e) => {
      if (!settled) (settled = true), reject(new Error(`${file}: the weights reader failed (${e.message})`));
    });
    w.once("exit", (code) => {
      if (!settled) (settled = true), reject(new Error(`${file}: the weights reader exited with code ${code} before answering`));
    });
  });
}
