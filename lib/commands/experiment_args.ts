// The options and the opening shared by the commands that draw a finished run
// (clusters, report): --exp --head --out --data --data-format, then the
// experiment, the checked head, the output directory and the training data.
import type { Argv } from "yargs";
import { openExperiment, checkHead, openTrainData } from "../eval/experiment";
import { lockForOutput } from "../train/lock";

export function experimentBuilder(y: Argv, text: { head: string; out: string }): Argv {
  return y
    .option("exp", { type: "string", demandOption: true, describe: "experiment directory written by train" })
    .option("head", { type: "number", default: 0, describe: text.head })
    .option("out", { type: "string", describe: text.out })
    .option("data", { type: "string", describe: "the training data (default: the path recorded in the checkpoint)" })
    .option("data-format", { type: "string", choices: ["auto", "imagefolder", "idx", "cifar"], default: "auto" });
}

/**
 * Opens --exp, checks --head, resolves --out (default `defaultOut(exp, head)`),
 * takes the experiment's lock when --out lies inside it (exit 2 naming the
 * holder while train or another writer runs there; nothing written), and opens
 * the training data. The caller closes `ds` and releases `lock`.
 */
export async function openExperimentData(a: Record<string, unknown>, command: string, defaultOut: (exp: string, head: number) => string) {
  const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);
  const e = openExperiment(a.exp as string, warn);
  const head = checkHead(e, a.head);
  const out = (a.out as string | undefined) ?? defaultOut(e.exp, head);
  const lock = lockForOutput(e.exp, out, command, (l) => process.stderr.write(l + "\n"));
  try {
    const ds = await openTrainData(e, { data: (a.data as string | undefined) ?? null, dataFormat: a.dataFormat as string }, warn);
    return { e, head, out, ds, lock };
  } catch (err) {
    lock?.release();
    throw err;
  }
}
