// The typed native binding: the only module that loads the addon.
import * as fs from "node:fs";
import * as path from "node:path";
import type { SinkhornDtype, SinkhornOptions, SinkhornResult } from "./sinkhorn";

/** Package root: the nearest parent directory whose package.json is ours. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const p = path.join(dir, "package.json");
    if (fs.existsSync(p)) {
      try {
        if (JSON.parse(fs.readFileSync(p, "utf8")).name === "selflabel-native") return dir;
      } catch {
        /* keep walking */
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error("selflabel-native: cannot find the package root from " + __dirname);
    dir = up;
  }
}

export interface NativeInfo {
  napiVersion: number;
  cpu: string;
  threads: number;
}

export type HarnessTensors = Record<string, Float64Array>;

export interface NativeBinding {
  info(): NativeInfo;
  setThreads(n: number): void;
  harnessRun(op: string, backend: string, params: Record<string, number>, inputs: HarnessTensors): HarnessTensors;
  harnessOps(): string[];
  // sinkhorn_binding.cpp (wrapped by lib/sinkhorn.ts)
  sinkhornLogits(logits: Float32Array, n: number, k: number, opts: SinkhornOptions): Promise<SinkhornResult>;
  sinkhornFeatures(
    features: Float32Array,
    n: number,
    d: number,
    weight: Float32Array,
    bias: Float32Array | null,
    k: number,
    opts: SinkhornOptions,
  ): Promise<SinkhornResult>;
  sinkhornTwoPass(logits: Float32Array, n: number, k: number, opts: SinkhornOptions): Promise<SinkhornResult>;
  sinkhornPlannedBytes(n: number, k: number, dtype: SinkhornDtype): number;
  memoryBandwidth(bytes: number, threads: number, reps: number): Promise<{ read: number; copy: number; triad: number }>;
  [name: string]: unknown;
}

let cached: NativeBinding | undefined;

/**
 * Load the addon: SELFLABEL_ADDON (an explicit .node path) first, then a
 * prebuild or build/Release through node-gyp-build.
 */
export function native(): NativeBinding {
  if (cached) return cached;
  const explicit = process.env.SELFLABEL_ADDON;
  try {
    if (explicit) {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      cached = require(path.resolve(explicit)) as NativeBinding;
    } else {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const load = require("node-gyp-build") as (dir: string) => unknown;
      cached = load(packageRoot()) as NativeBinding;
    }
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(
      `selflabel-native: the native addon could not be loaded (${msg}). ` +
        "Build it with `npm run build:native` (needs libdnnl-dev and a C++ compiler).",
    );
  }
  const n = process.env.SELFLABEL_NUM_THREADS;
  if (n !== undefined && n !== "") {
    const t = Number(n);
    if (!Number.isInteger(t) || t < 1) throw new RangeError(`SELFLABEL_NUM_THREADS must be a positive integer, got '${n}'`);
    cached.setThreads(t);
  }
  return cached;
}
