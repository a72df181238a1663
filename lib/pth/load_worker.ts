// worker_threads entry: read weights (.pth or safetensors) off the main
// thread. In: workerData { file }; out: one message, { ok: true, weights }
// with the tensors' buffers transferred (not copied), or { ok: false, error }.
import { parentPort, workerData } from "node:worker_threads";
import { loadWeights } from "./weights";

if (parentPort) {
  const port = parentPort;
  try {
    const w = loadWeights((workerData as { file: string }).file);
    const buffers = new Set<ArrayBuffer>();
    for (const t of Object.values(w.stateDict)) buffers.add(t.data.buffer as ArrayBuffer);
    for (const l of w.labels ?? []) buffers.add(l.buffer as ArrayBuffer);
    port.postMessage({ ok: true, weights: w }, [...buffers]);
  } catch (e) {
    const x = e as Error & { code?: string; exitCode?: number };
    port.postMessage({ ok: false, error: { name: x.name, message: x.message, code: x.code, exitCode: x.exitCode } });
  }
}
