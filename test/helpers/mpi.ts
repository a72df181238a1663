// MPI for the distributed tests: builds libselflabel_mpi.so once (scripts/build-mpi.sh)
// and runs `mpirun --allow-run-as-root --oversubscribe -np R ...`. Where MPI is
// absent, skipReason() says why and the tests skip with that message.
import * as path from "node:path";
import { spawnSync, SpawnSyncReturns } from "node:child_process";
import { packageRoot } from "../../lib/binding";

const root = packageRoot();
let built: string | null | undefined;
let why = "";

function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** The built library's path, or null (then skipReason() says why). */
export function mpiLibrary(): string | null {
  if (built !== undefined) return built;
  if (!has("mpirun") || !has("mpicxx")) {
    why = "MPI is not installed (mpirun / mpicxx not on PATH; apt-get install openmpi-bin libopenmpi-dev)";
    return (built = null);
  }
  const r = spawnSync("sh", [path.join(root, "scripts/build-mpi.sh")], { encoding: "utf8" });
  if (r.status !== 0) {
    why = `scripts/build-mpi.sh failed: ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`;
    return (built = null);
  }
  return (built = r.stdout.trim());
}

export function skipReason(): string | false {
  return mpiLibrary() ? false : `skipped: ${why}`;
}

export function mpiEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // CMA (process_vm_readv) single copies are refused in some containers: shared memory copies work everywhere
  const e: NodeJS.ProcessEnv = { OMPI_MCA_btl_vader_single_copy_mechanism: "none", ...process.env, SELFLABEL_MPI_LIB: mpiLibrary() ?? "", ...extra };
  delete e.NODE_TEST_CONTEXT;
  return e;
}

/** mpirun -np ranks <node> args (blocking). */
export function mpirun(ranks: number, args: string[], env: Record<string, string> = {}, timeoutMs = 600_000): SpawnSyncReturns<string> {
  return spawnSync(
    "mpirun",
    ["--allow-run-as-root", "--oversubscribe", "-np", String(ranks), "-x", "SELFLABEL_MPI_LIB", ...Object.keys(env).flatMap((k) => ["-x", k]), process.execPath, ...args],
    { encoding: "utf8", env: mpiEnv(env), timeout: timeoutMs },
  );
}

/** The JSON of every `<mark> {...}` line in out, by rank. */
export function lines<T = Record<string, unknown>>(out: string, mark: string): T[] {
  return out
    .split("\n")
    .filter((l) => l.startsWith(mark + " "))
    .map((l) => JSON.parse(l.slice(mark.length + 1)) as T)
    .sort((a, b) => ((a as { rank: number }).rank ?? 0) - ((b as { rank: number }).rank ?? 0));
}
