// selflabel-native report: one HTML page about a run (plots of NMI/ARI/accuracy
// per label pass and loss per epoch, clusters vs classes, cluster grids, flags
// and versions). Static files, no network.
import type { Argv } from "yargs";
import * as path from "node:path";
import { experimentBuilder, openExperimentData } from "./experiment_args";
import { writeReport } from "../eval/report";

export const command = "report";
export const describe = "Write an HTML report of a run: quality per label pass, loss per epoch, clusters vs classes, cluster grids, flags, versions";

export function builder(y: Argv): Argv {
  return experimentBuilder(y, { head: "which head", out: "output directory (default: EXP/report)" });
}

export async function handler(a: Record<string, unknown>): Promise<void> {
  const { e, head, out, ds, lock } = await openExperimentData(a, "report", (exp) => path.join(exp, "report"));
  try {
    const file = await writeReport(e, ds, out, { head });
    for (const note of e.notes) process.stderr.write(`note: ${note}\n`);
    console.log(`wrote ${file}`);
  } finally {
    await ds.close();
    lock?.release();
  }
}
