// What a run records about itself beyond its numbers: the versions it ran
// with (log.jsonl's start/resume records), whether an experiment is finished,
// and where an aborted run leaves its mid-epoch checkpoint.
import * as fs from "node:fs";
import * as path from "node:path";
import { native, packageRoot } from "../binding";
import { formatCudaVersion, CudaProbe } from "../cuda";
import { load as loadSafetensors } from "../safetensors";
import { checkpointDir, CheckpointMeta } from "./checkpoint";
import type { TrainResult } from "./train";

/** A batch record in log.jsonl at least this often (seconds), besides every --log-iter batches. */
export const BATCH_RECORD_SECONDS = 10;

export interface RunVersions {
  package: string;
  node: string;
  napi: number;
  /** The CPU backend, e.g. "oneDNN 2.6.3 (OpenMP), ISA avx512_core". */
  cpu: string;
  /** Set when the run uses the CUDA backend. */
  cuda?: { device?: string; driver: string; runtime: string; cudnn: string; cublas: string };
}

export function runVersions(cuda?: CudaProbe): RunVersions {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), "package.json"), "utf8")) as { version: string };
  const info = native().info();
  const v: RunVersions = { package: pkg.version, node: process.version, napi: info.napiVersion, cpu: info.cpu };
  if (cuda && cuda.ok)
    v.cuda = {
      device: cuda.device,
      driver: formatCudaVersion("driver", cuda.driver),
      runtime: formatCudaVersion("runtime", cuda.runtime),
      cudnn: formatCudaVersion("cudnn", cuda.cudnn),
      cublas: formatCudaVersion("cublas", cuda.cublas),
    };
  return v;
}

/** checkpoints/partial.safetensors: the state of an epoch stopped by an AbortSignal. */
export function partialCheckpointFile(exp: string): string {
  return path.join(checkpointDir(exp), "partial.safetensors");
}

/**
 * The recorded result when the run of `meta` (the newest checkpoint) has
 * finished: all its epochs trained, model.safetensors written from them and a
 * "done" record in log.jsonl; otherwise null.
 */
export function finishedRun(exp: string, meta: CheckpointMeta, epochs: number): TrainResult | null {
  if (meta.epoch < epochs || ((meta.extra ?? {}) as Record<string, unknown>).batch) return null;
  try {
    const m = JSON.parse(loadSafetensors(path.join(exp, "model.safetensors")).metadata.selflabel ?? "{}");
    if (m.epochs !== epochs || m.fingerprint !== meta.fingerprint || m.arch !== meta.arch) return null;
    const lines = fs.readFileSync(path.join(exp, "log.jsonl"), "utf8").trim().split("\n");
    for (let i = lines.length - 1; i >= 0; i--) {
      const r = JSON.parse(lines[i]);
      if (r.event === "start" || r.event === "resume") return null; // the last run did not get to "done"
      if (r.event === "done") {
        const { time: _t, event: _e, ...result } = r;
        return result as TrainResult;
      }
    }
  } catch {
    return null; // missing or unreadable: train the rest again
  }
  return null;
}
