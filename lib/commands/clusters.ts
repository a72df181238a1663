// selflabel-native clusters: PNG grids of each cluster's images and an index.html.
import type { Argv } from "yargs";
import * as path from "node:path";
import { experimentBuilder, openExperimentData } from "./experiment_args";
import { writeClusterPages } from "../eval/clusters";
import { clusteringScores } from "../metrics";

export const command = "clusters";
export const describe = "Draw each cluster of a head as a PNG grid (frame = true class) and write an index.html";

export function builder(y: Argv): Argv {
  return experimentBuilder(y, { head: "which head's clusters", out: "output directory (default: EXP/clusters-headH)" });
}

export async function handler(a: Record<string, unknown>): Promise<void> {
  const { e, head, out, ds, lock } = await openExperimentData(a, "clusters", (exp, head) => path.join(exp, `clusters-head${head}`));
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
    lock?.release();
  }
}
