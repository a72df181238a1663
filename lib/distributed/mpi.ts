// MPI for `--distributed` runs: finding libselflabel_mpi.so, loading it into
// this process (dlopen on demand; the addon never links MPI), initialising it,
// and typed wrappers of the collectives (native/addon/mpi_loader.cpp).
//
// Where the library is looked for (first hit wins):
//   1. SELFLABEL_MPI_LIB: an explicit path (or "off": MPI unavailable);
//   2. <package>/build-mpi/libselflabel_mpi.so          (`npm run build:mpi`)
//   3. <package>/prebuilds/linux-x64/libselflabel_mpi.so
// A single-machine run never calls anything here.
import * as fs from "node:fs";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { native, packageRoot, NativeBinding } from "../binding";

export const MPI_LIBRARY_NAME = "libselflabel_mpi.so";

/** The addon's MPI entry points (mpi_loader.cpp); kept here so lib/binding.ts stays MPI-free. */
export interface MpiBinding {
  mpiLoad(path: string): void;
  mpiDescribe(): string | null;
  mpiInit(): { rank: number; size: number; launched: boolean };
  mpiAllreduce(a: Float32Array | Float64Array | Int32Array | BigInt64Array, op?: "sum" | "max" | "min"): Promise<void>;
  mpiAllgather(bytes: Uint8Array): Promise<Uint8Array[]>;
  mpiBcast(bytes: Uint8Array | Float32Array | Float64Array | Int32Array, root: number): Promise<void>;
  mpiBarrier(): Promise<void>;
  mpiAbort(code: number): void;
  mpiFinalize(): void;
  sinkhornShardRows(n: number, rank: number, ranks: number): [number, number];
  /** Seconds, bytes and calls spent in all-reduces and all-gathers since the last call (then reset). */
  mpiStats(): { seconds: number; bytes: number; calls: number };
}

export function mpiNative(): NativeBinding & MpiBinding {
  return native() as NativeBinding & MpiBinding;
}

export interface MpiStatus {
  available: boolean;
  /** The library file (found or asked for); null when none. */
  library: string | null;
  /** One line: the MPI version, or why MPI is unavailable and what to do. */
  reason: string;
}

export function mpiLibraryCandidates(): string[] {
  const explicit = process.env.SELFLABEL_MPI_LIB;
  if (explicit !== undefined && explicit !== "") return explicit === "off" ? [] : [path.resolve(explicit)];
  const root = packageRoot();
  return [
    path.join(root, "build-mpi", MPI_LIBRARY_NAME),
    path.join(root, "prebuilds", `${process.platform}-${process.arch}`, MPI_LIBRARY_NAME),
  ];
}

function onPath(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const INSTALL_HINT = "install OpenMPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev), then `npm run build:mpi`";

/**
 * Whether MPI can be used, without initialising it: the library is found and
 * loads (dlopen of libmpi only; MPI_Init is not called).
 */
export function mpiStatus(): MpiStatus {
  if (process.env.SELFLABEL_MPI_LIB === "off") return { available: false, library: null, reason: "disabled by SELFLABEL_MPI_LIB=off" };
  const explicit = process.env.SELFLABEL_MPI_LIB;
  const lib = mpiLibraryCandidates().find((p) => fs.existsSync(p));
  if (!lib && explicit) return { available: false, library: path.resolve(explicit), reason: `SELFLABEL_MPI_LIB=${explicit}: no such file` };
  if (!lib) {
    const why = onPath("mpicxx")
      ? "the MPI library is not built: run `npm run build:mpi`"
      : `no MPI found (mpicxx is not on PATH): ${INSTALL_HINT}`;
    return { available: false, library: null, reason: why + " (or set SELFLABEL_MPI_LIB to libselflabel_mpi.so)" };
  }
  try {
    const n = mpiNative();
    n.mpiLoad(lib);
    const launcher = onPath("mpirun") ? "" : "; mpirun is not on PATH (install openmpi-bin)";
    return { available: true, library: lib, reason: `${n.mpiDescribe() ?? "MPI"}${launcher}` };
  } catch (e) {
    return { available: false, library: lib, reason: `${(e as Error).message}` };
  }
}

export interface MpiWorld {
  rank: number;
  size: number;
  /** Started by mpirun/mpiexec (false: a singleton, size 1). */
  launched: boolean;
  library: string;
}

let world: MpiWorld | null = null;

/** Load and initialise MPI once (MPI_Init_thread); throws a one-line Error (code SLN_NO_MPI) when unavailable. */
export function initMpi(): MpiWorld {
  if (world) return world;
  const st = mpiStatus();
  if (!st.available || !st.library) {
    const e = new Error(`MPI is unavailable: ${st.reason}`) as Error & { code: string };
    e.code = "SLN_NO_MPI";
    throw e;
  }
  const w = mpiNative().mpiInit();
  world = { ...w, library: st.library };
  return world;
}

/** The initialised world, or null when initMpi() was not called. */
export function mpiWorld(): MpiWorld | null {
  return world;
}
