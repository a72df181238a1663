// selflabel-native report: one HTML page about a run (plots of NMI/ARI/accuracy
// per label pass and loss per epoch, clusters vs classes, cluster grids, flags
// and versions). Static files, no network.
import type { Argv } from "yargs";
import * as path from "node:path";
import { openExperiment, checkHead, openTrainData } from "../eval/experiment";
import { writeReport } from "../eval/report";

export const command = "report";
export const describe = "Write an HTML report of a run: quality per label pass, loss per epoch, clusters vs classes, cluster grids, flags, versions";

export function builder(y: Argv): Argv {
  return y
    .option("exp", { type: "string", demandOption: true, describe: "experiment directory written by train" })
    .option("head", { type: "number", default: 0, describe: "which head" })
    .option("out", { type: "string", describe: "output directory (default: EXP/report)" })
    .option("data", { type: "string", describe: "the training data (default: the path recorded in the checkpoint)" })
    .option("data-format", { type: "string", choices: ["auto", "imagefolder", "idx", "cifar"], default: "auto" });
}

export async function handler(a: Record<string, unknown>): Promise<void> {
  const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);
  const e = openExperiment(a.exp as string, warn);
  const head = checkHead(e, a.head);
  const out = (a.out as string | undefined) ?? path.join(e.exp, "report");
  const ds = await openTrainData(e, { data: (a.data as string | undefined) ?? null, dataFormat: a.dataFormat as string }, warn);
  try {
    const file = await writeReport(e, ds, out, { head });
    for (const note of e.notes) process.stderr.write(`note: ${note}\n`);
    console.log(`wrote ${file}`);
  } finally {
    await ds.close();
  }
}
