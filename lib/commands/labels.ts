// selflabel-native labels: export the pseudo-labels (index, path, label per head).
import type { Argv } from "yargs";
import * as path from "node:path";
import * as fs from "node:fs";
import { lockForOutput } from "../train/lock";
import { openExperiment, checkHead, openTrainData, Experiment } from "../eval/experiment";
import { detectFormat } from "../data";
import { writeFileAtomic } from "../safetensors";
import { InputError, UsageError } from "../errors";
import { csvField } from "../csv";

export const command = "labels";
export const describe = "Export an experiment's pseudo-labels as CSV or JSON (image index, path, label)";

export function builder(y: Argv): Argv {
  return y
    .option("exp", { type: "string", demandOption: true, describe: "experiment directory written by train" })
    .option("data", { type: "string", describe: "the training data, for image paths of an unfinished ImageFolder run (default: as recorded)" })
    .option("head", { type: "number", describe: "only this head (default: all heads)" })
    .option("out", { type: "string", describe: "output file (default: stdout)" })
    .option("format", { type: "string", choices: ["csv", "json"], describe: "csv (default) or json; default from --out's extension" });
}

/** Paths of an ImageFolder run whose labels came from a checkpoint (labels.csv has them otherwise). */
async function imageFolderPaths(e: Experiment, a: Record<string, unknown>): Promise<(string | null)[] | null> {
  const f = e.meta.flags as Record<string, unknown>;
  const data = (a.data as string | undefined) ?? (f.data as string | null);
  if (!data) return null;
  const fmt = (a.data ? "auto" : (f.dataFormat as string)) ?? "auto";
  if (fmt !== "imagefolder" && !(fmt === "auto" && fs.existsSync(data) && detectFormat(data) === "imagefolder")) return null;
  const ds = await openTrainData(e, { data: a.data as string | undefined }, (m) => process.stderr.write(`warning: ${m}\n`));
  try {
    return ds.paths;
  } finally {
    await ds.close();
  }
}

export async function handler(a: Record<string, unknown>): Promise<void> {
  const out = a.out as string | undefined;
  const format = (a.format as string | undefined) ?? (out && path.extname(out).toLowerCase() === ".json" ? "json" : "csv");
  if (out !== undefined && out === "") throw new UsageError("--out needs a file name");
  const e = openExperiment(a.exp as string, (m) => process.stderr.write(`warning: ${m}\n`));
  const heads = a.head === undefined ? e.labels.map((_, h) => h) : [checkHead(e, a.head)];
  const n = e.labels[0].length;
  let paths = e.paths;
  if (!paths) paths = await imageFolderPaths(e, a);
  let text: string;
  if (format === "json") {
    const images = new Array(n);
    for (let i = 0; i < n; i++) {
      const o: Record<string, unknown> = { index: i, path: paths ? paths[i] : null };
      if (a.head !== undefined) o.label = e.labels[heads[0]][i];
      else o.labels = heads.map((h) => e.labels[h][i]);
      images[i] = o;
    }
    text =
      JSON.stringify({ exp: e.exp, epoch: e.meta.epoch, source: e.source.labels, heads, clusters: heads.map((h) => e.meta.numClasses[h]), images }) + "\n";
  } else {
    const rows = [heads.length === 1 && a.head !== undefined ? "index,path,label" : "index,path," + heads.map((h) => `label_head${h}`).join(",")];
    for (let i = 0; i < n; i++) rows.push(`${i},${paths && paths[i] !== null ? csvField(paths[i] as string) : ""},${heads.map((h) => e.labels[h][i]).join(",")}`);
    text = rows.join("\n") + "\n";
  }
  for (const note of e.notes) process.stderr.write(`note: ${note}\n`);
  if (!out) {
    process.stdout.write(text);
    return;
  }
  const lock = lockForOutput(e.exp, out, "labels", (l) => process.stderr.write(l + "\n"));
  try {
    writeFileAtomic(out, text);
  } catch (err) {
    throw new InputError(`--out ${out}: cannot write (${(err as Error).message.split("\n")[0]})`);
  } finally {
    lock?.release();
  }
  process.stderr.write(`wrote ${n} labels of head${heads.length > 1 ? "s" : ""} ${heads.join(", ")} to ${out}\n`);
}
