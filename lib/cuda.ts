// The CUDA backend: finding libselflabel_cuda.so, probing it safely, loading it.
//
// Where the library is looked for (first hit wins):
//   1. SELFLABEL_CUDA_LIB: an explicit path (or "off" to disable CUDA altogether);
//      when set, nothing else is tried.
//   2. <package>/build-cmake/Release/libselflabel_cuda.so   (`npm run build:cuda`)
//   3. <package>/build/Release/libselflabel_cuda.so         (beside a node-gyp addon)
//   4. <package>/prebuilds/linux-x64/libselflabel_cuda.so   (shipped with prebuilds)
//
// Probing. An incomplete cuDNN install can abort() the process on its first
// call (docs: GPU.md), so the library is first loaded and probed in a CHILD
// process (process.execPath running cuda_probe.js), which prints the probe's
// JSON. Only when that child exits cleanly with ok:true is the library
// dlopen()ed into this process (native().cudaLoad). The result is cached for
// the life of the process. A crash of the child (signal, exit code) becomes a
// readable reason; this process is never at risk.
import * as fs from "node:fs";
import * as path from "node:path";
import { execFile } from "node:child_process";
import { native, packageRoot } from "./binding";

export const CUDA_LIBRARY_NAME = "libselflabel_cuda.so";

/** The JSON of sln_cuda_probe (native/include/sln/cuda_api.h). */
export interface CudaProbe {
  ok: boolean;
  error?: string;
  device?: string;
  index?: number;
  cc?: string;
  memoryBytes?: number;
  freeBytes?: number;
  driver?: number;
  runtime?: number;
  cudnn?: number;
  cublas?: number;
  devices?: number;
}

export type CudaState =
  | "ok" // probed in a child, fine; loaded into this process by loadCuda()
  | "disabled" // SELFLABEL_CUDA_LIB=off
  | "not-built" // no library file found
  | "load-failed" // dlopen / ABI / missing symbol (the loader's message)
  | "probe-crashed" // the child process died (abort, signal, timeout)
  | "no-device"; // the library loaded but reports no usable device

export interface CudaStatus {
  available: boolean;
  state: CudaState;
  /** The library file used (or the explicit path asked for); null when none was found. */
  library: string | null;
  /** One line: why CUDA is unavailable (with what to do), or a short description when available. */
  reason: string;
  probe?: CudaProbe;
}

/** The files looked at, in order (see the header comment). */
export function cudaLibraryCandidates(): string[] {
  const explicit = process.env.SELFLABEL_CUDA_LIB;
  if (explicit !== undefined && explicit !== "") return explicit === "off" ? [] : [path.resolve(explicit)];
  const root = packageRoot();
  return [
    path.join(root, "build-cmake", "Release", CUDA_LIBRARY_NAME),
    path.join(root, "build", "Release", CUDA_LIBRARY_NAME),
    path.join(root, "prebuilds", `${process.platform}-${process.arch}`, CUDA_LIBRARY_NAME),
  ];
}

// `npm run build:cuda` runs scripts/build-cuda.sh, which the package ships: in an
// installed copy it is run from the package directory (it uses cmake-js from
// node_modules, else from PATH, and says so when there is none).
const BUILD_HINT =
  "build it with `npm run build:cuda` in the package directory (node_modules/selflabel-native; needs nvcc, cuDNN, cuBLAS, cmake and cmake-js) " +
  "or set SELFLABEL_CUDA_LIB to its path";
const LOAD_HINT =
  "check LD_LIBRARY_PATH (the CUDA runtime, cuDNN and cuBLAS lib folders, e.g. site-packages/nvidia/*/lib), " +
  "rebuild with `npm run build:cuda` (CUDNN_ROOT / CUBLAS_ROOT point it at cuDNN / cuBLAS), or set SELFLABEL_CUDA_LIB";

/** Version numbers as text: driver/runtime 13000 -> 13.0; cuDNN 92400 -> 9.24.0; cuBLAS 130101 -> 13.1.1. */
export function formatCudaVersion(kind: "driver" | "runtime" | "cudnn" | "cublas", v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v) || v <= 0) return "?";
  if (kind === "driver" || kind === "runtime") return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
  return `${Math.floor(v / 10000)}.${Math.floor((v % 10000) / 100)}.${v % 100}`;
}

/** One-line description of a working device. */
export function describeProbe(p: CudaProbe): string {
  const gib = p.memoryBytes ? (p.memoryBytes / 2 ** 30).toFixed(1) + " GiB" : "? GiB";
  return (
    `${p.device ?? "?"} (device ${p.index ?? 0} of ${p.devices ?? "?"}, compute capability ${p.cc ?? "?"}, ${gib}), ` +
    `driver ${formatCudaVersion("driver", p.driver)}, runtime ${formatCudaVersion("runtime", p.runtime)}, ` +
    `cuDNN ${formatCudaVersion("cudnn", p.cudnn)}, cuBLAS ${formatCudaVersion("cublas", p.cublas)}`
  );
}

const PROBE_MARK = "SLN_CUDA_PROBE ";

/** Probe `library` in a child process (never in this one). */
export function probeInChild(library: string, timeoutMs = Number(process.env.SELFLABEL_CUDA_PROBE_TIMEOUT_MS || 120_000)): Promise<CudaStatus> {
  const script = path.join(__dirname, "cuda_probe.js");
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [script, library],
      { encoding: "utf8", timeout: timeoutMs, maxBuffer: 4 << 20, env: process.env },
      (err, stdout, stderr) => {
        const line = String(stdout)
          .split("\n")
          .find((l) => l.startsWith(PROBE_MARK));
        const tail = String(stderr).trim().split("\n").filter(Boolean).slice(-2).join(" | ");
        // Only a clean exit counts: a child that answered and then crashed (at
        // exit, in CUDA's teardown) would crash this process too.
        if (!line || err) {
          const e = err as (Error & { code?: number | string; signal?: string; killed?: boolean }) | null;
          const how = e?.killed && e.signal === "SIGTERM"
            ? `did not answer within ${timeoutMs / 1000} s`
            : e?.signal
              ? `was killed by ${e.signal}`
              : `exited with code ${e?.code ?? 0}`;
          const answered = line ? " after answering" : " without an answer";
          resolve({
            available: false,
            state: "probe-crashed",
            library,
            reason:
              `probing ${library} crashed: the probe process ${how}${answered}${tail ? ` (${tail})` : ""}; ` +
              `an incomplete cuDNN (libcudnn_graph, _ops, _cnn, _engines_* missing beside libcudnn.so.9) does this; ${LOAD_HINT}`,
          });
          return;
        }
        let j: { stage: string; error?: string; probe?: CudaProbe };
        try {
          j = JSON.parse(line.slice(PROBE_MARK.length));
        } catch {
          resolve({ available: false, state: "probe-crashed", library, reason: `probing ${library}: unreadable answer '${line}'` });
          return;
        }
        if (j.stage === "load") {
          resolve({ available: false, state: "load-failed", library, reason: j.error ?? "the library did not load" });
        } else if (!j.probe || !j.probe.ok) {
          resolve({
            available: false,
            state: "no-device",
            library,
            reason: `no usable CUDA device: ${j.probe?.error ?? j.error ?? "the probe said no"}`,
            probe: j.probe,
          });
        } else {
          resolve({ available: true, state: "ok", library, reason: describeProbe(j.probe), probe: j.probe });
        }
      },
    );
  });
}

let statusPromise: Promise<CudaStatus> | undefined;
let loadPromise: Promise<CudaStatus> | undefined;

/** Whether CUDA can be used here (probed once per process, in a child). Does not load it into this process. */
export function cudaStatus(): Promise<CudaStatus> {
  if (statusPromise) return statusPromise;
  statusPromise = (async (): Promise<CudaStatus> => {
    if (process.env.SELFLABEL_CUDA_LIB === "off") {
      return { available: false, state: "disabled", library: null, reason: "no CUDA backend: disabled by SELFLABEL_CUDA_LIB=off" };
    }
    const candidates = cudaLibraryCandidates();
    const found = candidates.find((f) => fs.existsSync(f));
    if (!found) {
      const explicit = process.env.SELFLABEL_CUDA_LIB;
      return {
        available: false,
        state: "not-built",
        library: explicit ? candidates[0] : null,
        reason: explicit
          ? `no CUDA backend: SELFLABEL_CUDA_LIB=${explicit} does not exist; ${BUILD_HINT}`
          : `no CUDA backend: this installation has no ${CUDA_LIBRARY_NAME} (looked in ${candidates.map((c) => path.relative(packageRoot(), c)).join(", ")}); ${BUILD_HINT}`,
      };
    }
    return probeInChild(found);
  })();
  return statusPromise;
}

/**
 * Make the CUDA backend usable in this process: probe (in a child), then load
 * the library here when the probe said ok. Returns the status either way.
 */
export function loadCuda(): Promise<CudaStatus> {
  if (loadPromise) return loadPromise;
  loadPromise = (async (): Promise<CudaStatus> => {
    const st = await cudaStatus();
    if (!st.available || !st.library) return st;
    try {
      native().cudaLoad(st.library);
      return st;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      return { ...st, available: false, state: "load-failed", reason: msg };
    }
  })();
  return loadPromise;
}

/** The library loaded into this process, or null. */
export function cudaLoaded(): { path: string; abi: number } | null {
  return native().cudaLoaded();
}

/** TF32 math on the CUDA backend (off by default; --tf32). Needs loadCuda() first. */
export function setCudaTf32(enabled: boolean): void {
  native().cudaSetTf32(enabled);
}

let noticed = false;
/** Print one notice per process on stderr (device 'auto' falling back to the CPU). */
export function cudaNoticeOnce(line: string): void {
  if (noticed) return;
  noticed = true;
  process.stderr.write(`selflabel-native: ${line}\n`);
}
