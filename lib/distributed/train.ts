// Data-parallel training over MPI (`train --distributed`, started by mpirun):
// what lib/train/train.ts asks of the ranks. Each rank takes a contiguous part
// of every global batch (Loader's `part`: the batch order and per-image
// augmentation draws are the single-process run's), the native step sums the
// gradients over the ranks between backward and the SGD update (DistHooks),
// batch norm statistics stay per rank unless --sync-bn, the label pass is
// row-sharded (lib/distributed/label_pass.ts), rank 0 writes every file.
import { createHash } from "node:crypto";
import { Model } from "../model";
import { InputError, UsageError } from "../errors";
import { partRange } from "../data/loader";
import { initMpi, mpiNative, mpiWorld, MpiWorld } from "./mpi";
import { finishNccl } from "./nccl";

export interface Distributed {
  rank: number;
  size: number;
  syncBn: boolean;
  /** Rank 0 writes checkpoints, outputs and log.jsonl and prints. */
  writer: boolean;
  part: { index: number; count: number };
  /** The global batch size and the dataset size (configureDistributed sets them). */
  batchSize: number;
  count: number;
  /** Images in global batch `index` of an epoch (the last may be short). */
  globalBatch(index: number): number;
  /**
   * Extra trainStep options for a step of n local images of a global batch of
   * `global`: the loss share, and this rank's first position in the batch (dropout
   * draws the masks of the global positions).
   */
  stepOptions(n: number, global: number): { distributed: true; lossScale: number; syncBn: boolean; rowOffset: number };
  /** Sums over the ranks (float64). */
  sum(values: number[]): Promise<number[]>;
  barrier(): Promise<void>;
  /** Refuse to start unless every rank has the same `what` (JSON-comparable); names the first differing rank and field. */
  agree(what: Record<string, unknown>): Promise<void>;
  /** Per-rank batch norm: rank 0's running statistics to every rank (as DDP's buffer broadcast). */
  syncBuffers(model: Model): Promise<void>;
  /** Every rank must hold the same parameters (checked before a checkpoint); throws naming the rank that differs. */
  checkParams(model: Model): Promise<void>;
}

/** Start MPI (mpirun gives rank and size) and check what needs no data: every failure is an InputError (exit 2). */
export function startDistributed(o: { syncBn?: boolean; batchSize?: number }): Distributed {
  let w: MpiWorld;
  try {
    w = initMpi();
  } catch (e) {
    throw new InputError(`--distributed: ${(e as Error).message}`);
  }
  return makeDistributed(w, o.syncBn === true);
}

function makeDistributed(w: MpiWorld, syncBn: boolean): Distributed {
  const n = mpiNative();
  const d: Distributed = {
    rank: w.rank,
    size: w.size,
    syncBn,
    writer: w.rank === 0,
    part: { index: w.rank, count: w.size },
    batchSize: 0,
    count: 0,
    globalBatch(index: number) {
      return Math.min(d.batchSize, d.count - index * d.batchSize);
    },
    stepOptions(local: number, global: number) {
      return { distributed: true, lossScale: local / global, syncBn, rowOffset: partRange(global, w.rank, w.size)[0] };
    },
    async sum(values: number[]) {
      const a = Float64Array.from(values);
      await n.mpiAllreduce(a, "sum");
      return Array.from(a);
    },
    async barrier() {
      await n.mpiBarrier();
    },
    async agree(what: Record<string, unknown>) {
      const mine = JSON.stringify(what);
      const all = (await n.mpiAllgather(new Uint8Array(Buffer.from(mine)))).map((b) => Buffer.from(b).toString("utf8"));
      const ref = JSON.parse(all[0]) as Record<string, unknown>;
      for (let r = 1; r < all.length; r++) {
        if (all[r] === all[0]) continue;
        const other = JSON.parse(all[r]) as Record<string, unknown>;
        const keys = [...new Set([...Object.keys(ref), ...Object.keys(other)])];
        const diff = keys.filter((k) => JSON.stringify(ref[k]) !== JSON.stringify(other[k]));
        const show = diff
          .slice(0, 3)
          .map((k) => `${k}: rank 0 ${JSON.stringify(ref[k])}, rank ${r} ${JSON.stringify(other[k])}`)
          .join("; ");
        throw new UsageError(`--distributed: the ranks disagree (${show}); start every rank with the same flags and data`);
      }
    },
    async syncBuffers(model: Model) {
      if (syncBn || w.size === 1) return;
      const sd = await model.stateDict();
      const keys = Object.keys(sd).filter((k) => /running_(mean|var)$/.test(k));
      if (keys.length === 0) return;
      const total = keys.reduce((s, k) => s + sd[k].data.length, 0);
      const flat = new Float32Array(total);
      let off = 0;
      for (const k of keys) {
        flat.set(sd[k].data, off);
        off += sd[k].data.length;
      }
      await n.mpiBcast(flat, 0);
      off = 0;
      const next: Record<string, Float32Array> = {};
      for (const [k, t] of Object.entries(sd)) next[k] = t.data;
      for (const k of keys) {
        next[k] = flat.slice(off, off + sd[k].data.length);
        off += sd[k].data.length;
      }
      await model.loadStateDict(next);
    },
    async checkParams(model: Model) {
      const h = createHash("sha256");
      const sd = await model.stateDict();
      for (const k of Object.keys(sd).sort()) {
        if (/running_(mean|var)$/.test(k) && !syncBn) continue; // per-rank BN buffers differ until syncBuffers
        const t = sd[k].data;
        h.update(k);
        h.update(Buffer.from(t.buffer, t.byteOffset, t.byteLength));
      }
      const mine = h.digest("hex");
      const all = (await n.mpiAllgather(new Uint8Array(Buffer.from(mine)))).map((b) => Buffer.from(b).toString("utf8"));
      const r = all.findIndex((x) => x !== all[0]);
      if (r > 0) throw new Error(`--distributed: rank ${r}'s parameters differ from rank 0's (the gradient all-reduce gave the ranks different sums)`);
    },
  };
  return d;
}

/**
 * Fix the global batch size and dataset size; refuse a split that leaves a rank
 * fewer than 2 images of some batch (batch norm in training mode needs them).
 */
export function configureDistributed(d: Distributed, batchSize: number, count: number): void {
  d.batchSize = batchSize;
  d.count = count;
  const last = count % batchSize || batchSize;
  for (const b of new Set([batchSize, last])) {
    const [s, e] = partRange(b, d.size - 1, d.size);
    const [s0, e0] = partRange(b, 0, d.size);
    if (Math.min(e - s, e0 - s0) < 2)
      throw new InputError(
        `--distributed: a batch of ${b} images over ${d.size} ranks leaves a rank fewer than 2 images; use a --batch-size of at least ${2 * d.size} (and not ${count} mod batch size < ${2 * d.size})`,
      );
  }
}

/**
 * A --distributed run failed on this rank: say so with the rank, then end every
 * rank (MPI_Abort with the error's exit code; mpirun exits with it). Without MPI
 * initialised, nothing to do (the caller reports the error as usual).
 */
export function abortDistributed(e: unknown, exitCode: number): void {
  const w = mpiWorld();
  if (!w) return;
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`selflabel-native: rank ${w.rank} of ${w.size}: ${msg.split("\n")[0]}\n`);
  mpiNative().mpiAbort(exitCode);
}

/** A finished --distributed run: the NCCL communicator destroyed, MPI_Finalize (mpirun counts a rank that exits without it as failed). */
export function finishDistributed(): void {
  finishNccl();
  if (mpiWorld()) mpiNative().mpiFinalize();
}
