// NCCL for `--distributed --device cuda`: one GPU per rank, the gradient arena
// summed over NCCL before every SGD update and the row-sharded CUDA Sinkhorn's
// K-vector sums over NCCL; the unique id is made on rank 0 and broadcast over
// MPI. The NCCL side lives in libselflabel_nccl.so (native/mpi/nccl.cpp), built
// by `npm run build:nccl` against NCCL's headers and libnccl.so.2 (pip's
// nvidia-nccl-cu13 wheel or a system NCCL) and the CUDA runtime; it is never
// linked into the addon (native/addon/nccl_loader.cpp dlopens it).
//
// Where the library is looked for (first hit wins): SELFLABEL_NCCL_LIB (a path,
// or "off"), <package>/build-mpi/libselflabel_nccl.so, the prebuilds folder.
import * as fs from "node:fs";
import * as path from "node:path";
import { native, packageRoot, NativeBinding } from "../binding";
import { InputError } from "../errors";
import { mpiNative, MpiStatus, MpiWorld } from "./mpi";

export const NCCL_LIBRARY_NAME = "libselflabel_nccl.so";

/** The addon's NCCL entry points (nccl_loader.cpp). */
export interface NcclBinding {
  ncclLoad(path: string): void;
  ncclDescribe(): string | null;
  ncclUniqueId(): Uint8Array;
  ncclInit(id: Uint8Array, rank: number, size: number, device: number): Promise<void>;
  /** a through the CUDA backend's memory, all-reduced there over NCCL, back (device checks). */
  ncclAllreduceTest(a: Float64Array, op?: "sum" | "max" | "min"): Promise<void>;
  ncclFinalize(): void;
}

function ncclNative(): NativeBinding & NcclBinding {
  return native() as NativeBinding & NcclBinding;
}

export interface NcclStatus {
  available: boolean;
  library: string | null;
  reason: string;
}

export function ncclLibraryCandidates(): string[] {
  const explicit = process.env.SELFLABEL_NCCL_LIB;
  if (explicit !== undefined && explicit !== "") return explicit === "off" ? [] : [path.resolve(explicit)];
  const root = packageRoot();
  return [path.join(root, "build-mpi", NCCL_LIBRARY_NAME), path.join(root, "prebuilds", `${process.platform}-${process.arch}`, NCCL_LIBRARY_NAME)];
}

/**
 * Whether `--distributed --device cuda` can run: MPI (for the bootstrap), the
 * library (loaded here: NCCL's version and the CUDA device count; no
 * communicator is made) and at least one CUDA device.
 */
export function ncclStatus(mpi: MpiStatus): NcclStatus {
  if (process.env.SELFLABEL_NCCL_LIB === "off") return { available: false, library: null, reason: "disabled by SELFLABEL_NCCL_LIB=off" };
  const lib = ncclLibraryCandidates().find((p) => fs.existsSync(p)) ?? null;
  if (!mpi.available) return { available: false, library: lib, reason: "NCCL is bootstrapped over MPI, which is unavailable" };
  if (!lib)
    return {
      available: false,
      library: null,
      reason: "the NCCL library is not built: `npm run build:nccl` (needs nvcc's CUDA runtime and NCCL: pip install nvidia-nccl-cu13, or a system libnccl-dev)",
    };
  let d: string;
  try {
    const n = ncclNative();
    n.ncclLoad(lib);
    d = n.ncclDescribe() ?? "NCCL";
  } catch (e) {
    return { available: false, library: lib, reason: (e as Error).message };
  }
  // "NCCL 2.30.7, 2 CUDA device(s)" or "NCCL 2.30.7, no usable CUDA device: <CUDA's reason>"
  const m = /, (\d+) CUDA device\(s\)$/.exec(d);
  if (!m || Number(m[1]) < 1) return { available: false, library: lib, reason: `${d} (one GPU per rank is needed)` };
  return { available: true, library: lib, reason: `${d}; one GPU per rank (the rank's local index picks it)` };
}

/**
 * The GPU of this rank: its index among the ranks on this machine (OpenMPI's
 * OMPI_COMM_WORLD_LOCAL_RANK, MPICH's MPI_LOCALRANKID, Slurm's SLURM_LOCALID;
 * else the global rank), as the one visible device: CUDA_VISIBLE_DEVICES is set
 * to it (or to that entry of a CUDA_VISIBLE_DEVICES list already set) before the
 * CUDA library is loaded, so the backend's device 0 is the rank's own GPU.
 * Returns what was chosen, for the log.
 */
export function pickRankGpu(rank: number, env: NodeJS.ProcessEnv = process.env): { local: number; visible: string } {
  const v = env.OMPI_COMM_WORLD_LOCAL_RANK ?? env.MPI_LOCALRANKID ?? env.SLURM_LOCALID;
  const local = v !== undefined && /^\d+$/.test(v) ? Number(v) : rank;
  const list = (env.CUDA_VISIBLE_DEVICES ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  const visible = list.length > 0 ? list[local % list.length] : String(local);
  env.CUDA_VISIBLE_DEVICES = visible;
  return { local, visible };
}

let started = false;

/**
 * Join every rank's GPU into one NCCL communicator (after MPI and the CUDA
 * library are up): rank 0 makes the unique id, MPI broadcasts it, every rank
 * calls ncclCommInitRank on its device 0. Throws a one-line Error when NCCL is
 * unavailable or the communicator cannot be made.
 */
export async function initNccl(w: MpiWorld, mpi: MpiStatus): Promise<void> {
  if (started) return;
  const st = ncclStatus(mpi);
  if (!st.available || !st.library) throw new Error(`NCCL is unavailable: ${st.reason}`);
  const n = ncclNative();
  const id = w.rank === 0 ? n.ncclUniqueId() : new Uint8Array(128);
  await mpiNative().mpiBcast(id, 0);
  await n.ncclInit(id, w.rank, w.size, 0);
  started = true;
}

/**
 * `train --distributed --device cuda` after the CUDA library loaded: join the
 * communicator or stop with a one-line InputError (exit 2); returns the log note.
 */
export async function startRunNccl(w: MpiWorld, mpi: MpiStatus): Promise<string> {
  try {
    await initNccl(w, mpi);
  } catch (e) {
    throw new InputError(`--distributed --device cuda: ${(e as Error).message}`);
  }
  return `; NCCL over ${w.size} rank(s), this rank on GPU ${process.env.CUDA_VISIBLE_DEVICES}`;
}

/** Whether this process joined a communicator. */
export function ncclStarted(): boolean {
  return started;
}

/** Destroy the communicator (end of a run). */
export function finishNccl(): void {
  if (started) ncclNative().ncclFinalize();
  started = false;
}

/** The device-memory all-reduce through the CUDA backend (device checks only). */
export async function ncclAllreduceTest(a: Float64Array, op: "sum" | "max" | "min" = "sum"): Promise<void> {
  return ncclNative().ncclAllreduceTest(a, op);
}
