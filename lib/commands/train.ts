// selflabel-native train: the SeLa loop. Flags carry the reference's names;
// with no arguments it trains smallcnn on the built-in synthetic set.
import { train, HeadQuality } from "../train/train";
import { trainBuilder, optionsFromArgv } from "../train/options";

export const command = "train";
export const describe = "Train a network by self-labelling (SeLa); no arguments: smallcnn on the built-in synthetic set";

export const builder = trainBuilder;

function fmt(q: HeadQuality[] | null): string {
  if (!q) return "n/a";
  return q.map((x, h) => `head ${h}: NMI ${x.nmi.toFixed(3)}, ARI ${x.ari.toFixed(3)}, accuracy ${x.accuracy.toFixed(3)}`).join("; ");
}

export async function handler(a: Record<string, unknown>): Promise<void> {
  const opts = optionsFromArgv(a);
  const tty = process.stderr.isTTY;
  let barShown = false;
  const clearBar = () => {
    if (barShown) process.stderr.write("\r\x1b[K");
    barShown = false;
  };
  const log = (line: string) => {
    clearBar();
    console.log(line);
  };
  let lastDraw = 0;
  const killAfter = process.env.SELFLABEL_TEST_KILL_AFTER_CHECKPOINT; // test hook
  const r = await train(opts, {
    log,
    afterCheckpoint: killAfter ? (epoch) => (String(epoch) === killAfter ? process.kill(process.pid, "SIGKILL") : undefined) : undefined,
    progress: tty
      ? (p) => {
          const now = Date.now();
          if (now - lastDraw < 100 && p.batch !== p.batches) return;
          lastDraw = now;
          const w = 24;
          const fill = Math.round((w * p.batch) / p.batches);
          process.stderr.write(
            `\r[${"#".repeat(fill)}${".".repeat(w - fill)}] epoch ${p.epoch + 1}/${p.epochs} batch ${p.batch}/${p.batches} ` +
              `${p.imagesPerSec.toFixed(0)} img/s loss ${p.loss.toFixed(3)} ETA ${p.etaSec.toFixed(0)} s\x1b[K`,
          );
          barShown = true;
        }
      : undefined,
  });
  clearBar();
  console.log(`done in ${r.seconds.toFixed(1)} s, ${r.labelPasses} label passes; outputs in ${r.exp}`);
  console.log(`self-labels vs true classes: ${fmt(r.selfLabels)}`);
  if (r.test) console.log(`test-set predictions: ${fmt(r.test)}`);
}
