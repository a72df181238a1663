// The options and the opening shared by the commands that draw a finished run
// (clusters, report): --exp --head --out --data --data-format, then the
// experiment, the checked head, the output directory and the training data.
import type { Argv } from "yargs";
import { openExperiment, checkHead, openTrainData } from "../eval/experiment";

export function experimentBuilder(y: Argv, text: { head: string; out: string }): Argv {
  return y
    .option("exp", { type: "string", demandOption: true, describe: "experiment directory written by train" })
    .option("head", { type: "number", default: 0, describe: text.head })
    .option("out", { type: "string", describe: text.out })
    .option("data", { type: "string", describe: "the training data (default: the path recorded in the checkpoint)" })
    .option("data-format", { type: "string", choices: ["auto", "imagefolder", "idx", "cifar"], default: "auto" });
}

/** Opens --exp, checks --head, resolves --out (default `defaultOut(exp, head)`) and opens the training data; the caller closes `ds`. */
export async function openExperimentData(a: Record<string, unknown>, defaultOut: (exp: string, head: number) => string) {
  const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);
  const e = openExperiment(a.exp as string, warn);
  const head = checkHead(e, a.head);
  const out = (a.out as string | undefined) ?? defaultOut(e.exp, head);
  const ds = await openTrainData(e, { data: (a.data as string | undefined) ?? null, dataFormat: a.dataFormat as string }, warn);
  return { e, head, out, ds };
}
