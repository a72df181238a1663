// worker_threads entry: read weights (.pth or safetensors; only .pth with
// pthOnly) off the main thread. In: workerData { file, pthOnly }; out: one message, { ok: true, weights }
// with the tensors' buffers transferred (not copied), or { ok: false, error }.
import { parentPort, workerData } from "node:worker_threads";
import { loadWeights, loadPth } from "./weights";

if (parentPort) {
  const port = parentPort;
  try {
    const d = workerData as { file: string; pthOnly?: boolean };
    const w = d.pthOnly ? loadPth(d.file) : loadWeights(d.file);
    const buffers = new Set<ArrayBuffer>();
    for (const t of Object.values(w.stateDict)) buffers.add(t.data.buffer as ArrayBuffer);
    for (const l of w.labels ?? []) buffers.add(l.buffer as ArrayBuffer);
    port.postMessage({ ok: true, weights: w }, [...buffers]);
  } catch (e) {
    const x = e as Error & { code?: string; exitCode?: number };
    port.postMessage({ ok: false, error: { name: x.name, message: x.message, code: x.code, exitCode: x.exitCode } });
  }
}
