// NCCL for `--distributed --device cuda`: gradients and Sinkhorn sums over NCCL,
// one GPU per rank, the unique id broadcast over MPI. The NCCL side lives in
// libselflabel_nccl.so (native/mpi/nccl.cpp), built by `npm run build:nccl`
// against NCCL's headers and libnccl.so.2 (pip's nvidia-nccl-cu13 wheel or a
// system NCCL) and the CUDA runtime; it is never linked into the addon.
import * as fs from "node:fs";
import * as path from "node:path";
import { packageRoot } from "../binding";
import type { MpiStatus } from "./mpi";

export const NCCL_LIBRARY_NAME = "libselflabel_nccl.so";

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

/** Whether the NCCL path can run: MPI (for the bootstrap), the library, and training using it (not yet). */
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
  // Honest state: the library builds and links (CI) and its probe ran on one GPU, but
  // training and the Sinkhorn do not call it yet.
  return {
    available: false,
    library: lib,
    reason: `${lib} is built, but the NCCL path is not wired into training yet: --distributed trains on the CPU over MPI (docs/distributed.md)`,
  };
}
