// selflabel-native clusters: PNG grids of each cluster's images and an index.html.
import type { Argv } from "yargs";
import * as path from "node:path";
import { openExperiment, checkHead, openTrainData } from "../eval/experiment";
import { writeClusterPages } from "../eval/clusters";
import { clusteringScores } from "../metrics";

export const command = "clusters";
export const describe = "Draw each cluster of a head as a PNG grid (frame = true class) and write an index.html";

export function builder(y: Argv): Argv {
  return y
    .option("exp", { type: "string", demandOption: true, describe: "experiment directory written by train" })
    .option("head", { type: "number", default: 0, describe: "which head's clusters" })
    .option("out", { type: "string", describe: "output directory (default: EXP/clusters-headH)" })
    .option("data", { type: "string", describe: "the training data (default: the path recorded in the checkpoint)" })
    .option("data-format", { type: "string", choices: ["auto", "imagefolder", "idx", "cifar"], default: "auto" });
}

export async function handler(a: Record<string, unknown>): Promise<void> {
  const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);
  const e = openExperiment(a.exp as string, warn);
  const head = checkHead(e, a.head);
  const out = (a.out as string | undefined) ?? path.join(e.exp, `clusters-head${head}`);
  const ds = await openTrainData(e, { data: (a.data as string | undefined) ?? null, dataFormat: a.dataFormat as string }, warn);
  try {
    const labels = e.labels[head];
    let title = `${path.basename(path.resolve(e.exp))}: head ${head}, ${e.meta.numClasses[head]} clusters (epoch ${e.meta.epoch})`;
    if (ds.labels) {
      const s = await clusteringScores(labels, ds.labels);
      title += `, NMI ${s.nmi.toFixed(3)}`;
    }
    const infos = await writeClusterPages(ds, labels, e.meta.numClasses[head], out, { title });
    for (const note of e.notes) process.stderr.write(`note: ${note}\n`);
    console.log(`wrote ${infos.filter((c) => c.file).length} cluster grids and ${path.join(out, "index.html")}`);
  } finally {
    await ds.close();
  }
}
