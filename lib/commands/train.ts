// selflabel-native train: the SeLa loop. Flags carry the reference's names;
// with no arguments it trains smallcnn on the built-in synthetic set.
import { train, HeadQuality } from "../train/train";
import { trainBuilder, optionsFromArgv } from "../train/options";
import { abortDistributed, finishDistributed } from "../distributed/train";
import { mpiWorld } from "../distributed/mpi";
import { exitCodeOf } from "../errors";
import { ProgressDisplay } from "../progress_display";

export const command = "train";
export const describe = "Train a network by self-labelling (SeLa); no arguments: smallcnn on the built-in synthetic set";

export const builder = trainBuilder;

function fmt(q: HeadQuality[] | null): string {
  if (!q) return "n/a";
  return q.map((x, h) => `head ${h}: NMI ${x.nmi.toFixed(3)}, ARI ${x.ari.toFixed(3)}, accuracy ${x.accuracy.toFixed(3)}`).join("; ");
}

export async function handler(a: Record<string, unknown>): Promise<void> {
  const opts = optionsFromArgv(a);
  const interval = Number(process.env.SELFLABEL_PROGRESS_SECONDS || 30);
  const display = new ProgressDisplay({ tty: process.stderr.isTTY === true, intervalSec: interval > 0 ? interval : 30 });
  const log = (line: string) => {
    display.clear();
    console.log(line);
  };
  // Ctrl-C once: stop between two batches with a checkpoint (resumable); twice: at once.
  const stop = new AbortController();
  const onInt = () => {
    if (stop.signal.aborted) process.exit(130);
    display.clear();
    process.stderr.write("stopping after this batch (Ctrl-C again to quit at once)\n");
    stop.abort();
  };
  // --distributed: the ranks cannot stop at different batches, so Ctrl-C ends the
  // job (mpirun forwards SIGINT) and the same command resumes from the last checkpoint
  if (!opts.distributed) process.on("SIGINT", onInt);
  const killAfter = process.env.SELFLABEL_TEST_KILL_AFTER_CHECKPOINT; // test hook
  let r;
  try {
    r = await train(opts, {
      log,
      signal: stop.signal,
      afterCheckpoint: killAfter ? (epoch) => (String(epoch) === killAfter ? process.kill(process.pid, "SIGKILL") : undefined) : undefined,
      onProgress: (p) => display.update(p),
    });
  } catch (e) {
    if (opts.distributed) abortDistributed(e, exitCodeOf(e)); // ends every rank (no return) once MPI runs
    throw e;
  } finally {
    process.off("SIGINT", onInt);
    display.clear();
  }
  if (opts.distributed) {
    const rank = mpiWorld()?.rank ?? 0;
    finishDistributed();
    if (rank !== 0) return; // rank 0 reports
  }
  if (r.alreadyFinished) return;
  console.log(`done in ${r.seconds.toFixed(1)} s, ${r.labelPasses} label passes; outputs in ${r.exp}`);
  console.log(`self-labels vs true classes: ${fmt(r.selfLabels)}`);
  if (r.test) console.log(`test-set predictions: ${fmt(r.test)}`);
}
