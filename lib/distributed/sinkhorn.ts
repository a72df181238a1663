// Row-sharded Sinkhorn over MPI (native/core/sinkhorn.h, Shard): every rank
// holds the logits (or features) of its own rows only, shardRows(n) of them;
// the solve's reductions over row blocks cross the ranks. Memory per rank is
// (N/R) x K. Every rank must call with the same N, K and options.
//   exact (default): one allgather per iteration of the per-block column sums
//     (K + 8 doubles per block, 256 blocks at most in all); labels, iterations,
//     err and scalings are bit-identical to the single-process solve.
//   exact: false: one float64 all-reduce of K + 8 doubles per iteration; equal
//     to the single-process solve up to floating-point reassociation.
import { SinkhornOptions, SinkhornResult } from "../sinkhorn";
import { mpiNative, mpiWorld } from "./mpi";

export interface ShardedSinkhornOptions extends SinkhornOptions {
  /** Reduce in the single-process block order (bit-identical results). Default true. */
  exact?: boolean;
}

/** The rows [begin, end) that `rank` of `ranks` holds for an n-row solve (whole blocks of the solver). */
export function shardRows(n: number, rank: number, ranks: number): [number, number] {
  return mpiNative().sinkhornShardRows(n, rank, ranks);
}

function world() {
  const w = mpiWorld();
  if (!w) throw new Error("sharded sinkhorn: MPI is not initialised (initMpi() first)");
  return w;
}

/** The rows of this rank (of the initialised MPI world) for an n-row solve. */
export function myRows(n: number): [number, number] {
  const w = world();
  return shardRows(n, w.rank, w.size);
}

/**
 * Solve one head's labels from this rank's logits: (end - begin) x k rows of
 * myRows(nTotal). labels and scaling.logC are this rank's rows; counts, cost,
 * iterations, error and scaling.logR are global and equal on every rank.
 */
export async function shardedSinkhorn(
  logits: Float32Array,
  nTotal: number,
  k: number,
  options: ShardedSinkhornOptions = {},
): Promise<SinkhornResult> {
  const [b, e] = myRows(nTotal);
  const { exact, ...rest } = options;
  return mpiNative().sinkhornLogits(logits, e - b, k, { ...rest, shard: { nTotal, exact: exact ?? true } } as SinkhornOptions);
}

/** The same from this rank's features (end - begin) x d and the head's weight (k, d) and bias. */
export async function shardedSinkhornFromFeatures(
  features: Float32Array,
  nTotal: number,
  d: number,
  weight: Float32Array,
  bias: Float32Array | null,
  k: number,
  options: ShardedSinkhornOptions = {},
): Promise<SinkhornResult> {
  const [b, e] = myRows(nTotal);
  const { exact, ...rest } = options;
  return mpiNative().sinkhornFeatures(features, e - b, d, weight, bias, k, { ...rest, shard: { nTotal, exact: exact ?? true } } as SinkhornOptions);
}

/** Every rank's labels (in rank order = row order): the full (nTotal) label vector on every rank. */
export async function gatherLabels(local: Int32Array): Promise<Int32Array> {
  const parts = await mpiNative().mpiAllgather(new Uint8Array(local.buffer, local.byteOffset, local.byteLength));
  const total = parts.reduce((s, p) => s + p.byteLength, 0) / 4;
  const out = new Int32Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(new Int32Array(p.buffer, p.byteOffset, p.byteLength / 4), off);
    off += p.byteLength / 4;
  }
  return out;
}
