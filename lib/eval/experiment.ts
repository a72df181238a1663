// Opening a finished (or interrupted) experiment directory for evaluation:
// the newest checkpoint says how the run was made (arch, heads, input shape,
// data flags, dataset fingerprint). When the run finished, model.safetensors
// and labels.csv hold its final state (labels.csv has the labels of the last
// label pass, which runs after the last checkpoint); otherwise the newest
// checkpoint's parameters and labels are used.
import * as fs from "node:fs";
import * as path from "node:path";
import { InputError, UsageError } from "../errors";
import { load as loadSafetensors, SafetensorsError } from "../safetensors";
import { newestCheckpoint, checkpointDir, listCheckpointFiles, CheckpointMeta } from "../train/checkpoint";
import { openDataset, Dataset, EmptyDatasetError, DataUsageError } from "../data";
import { createModel, Model } from "../model";
import { parseCsv } from "../csv";
import { subsetOf } from "../data/subset";
export { parseCsvLine } from "../csv";

export interface Experiment {
  exp: string;
  meta: CheckpointMeta;
  /** Where parameters and labels came from, for the report. */
  source: { params: string; labels: string };
  params: Record<string, Float32Array>;
  /** Pseudo-labels, one Int32Array per head. */
  labels: Int32Array[];
  /** Image paths from labels.csv (ImageFolder runs), or null. */
  paths: (string | null)[] | null;
  /** Notes worth printing (e.g. why the checkpoint was used). */
  notes: string[];
}

function sameShape(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** labels.csv of train: index,path,label_head0,... Throws a message on anything else. */
function readLabelsCsv(file: string, n: number, heads: number, numClasses: number[]): { labels: Int32Array[]; paths: (string | null)[] } {
  const rows = parseCsv(fs.readFileSync(file, "utf8"));
  const want = ["index", "path", ...Array.from({ length: heads }, (_, h) => `label_head${h}`)].join(",");
  const header = (rows[0] ?? []).join(",");
  if (header !== want) throw new Error(`header is '${header}', expected '${want}'`);
  if (rows.length - 1 !== n) throw new Error(`${rows.length - 1} rows, expected ${n}`);
  const labels = Array.from({ length: heads }, () => new Int32Array(n));
  const paths: (string | null)[] = new Array(n);
  for (let r = 0; r < n; r++) {
    const f = rows[r + 1];
    if (f.length !== heads + 2) throw new Error(`row ${r + 1} has ${f.length} fields, expected ${heads + 2}`);
    if (Number(f[0]) !== r) throw new Error(`row ${r + 1} has index '${f[0]}', expected ${r}`);
    paths[r] = f[1] === "" ? null : f[1];
    for (let h = 0; h < heads; h++) {
      const v = Number(f[h + 2]);
      if (!Number.isInteger(v) || v < 0 || v >= numClasses[h]) throw new Error(`row ${r + 1}: label '${f[h + 2]}' of head ${h} is not in 0..${numClasses[h] - 1}`);
      labels[h][r] = v;
    }
  }
  return { labels, paths };
}

/** Load the experiment's final state (see the file comment). InputError when there is nothing to evaluate. */
export function openExperiment(exp: string, warn: (m: string) => void = () => {}): Experiment {
  if (!exp) throw new UsageError("--exp DIR is required");
  if (!fs.existsSync(exp)) throw new InputError(`--exp ${exp}: no such directory (train first: selflabel-native train --exp ${exp})`);
  if (!fs.statSync(exp).isDirectory()) throw new InputError(`--exp ${exp}: not a directory`);
  if (listCheckpointFiles(exp).length === 0)
    throw new InputError(`--exp ${exp}: no checkpoints in ${checkpointDir(exp)} (not an experiment directory, or training has not finished an epoch yet)`);
  const ck = newestCheckpoint(exp, warn);
  if (!ck) throw new InputError(`--exp ${exp}: none of the checkpoints in ${checkpointDir(exp)} can be read`);
  const meta = ck.meta;
  const notes: string[] = [];
  let params = ck.params;
  let labels = ck.labels;
  let paths: (string | null)[] | null = null;
  const source = { params: path.relative(exp, ck.file), labels: path.relative(exp, ck.file) };
  const modelFile = path.join(exp, "model.safetensors");
  if (fs.existsSync(modelFile)) {
    let m: ReturnType<typeof loadSafetensors> | null = null;
    let mm: Record<string, unknown> = {};
    try {
      m = loadSafetensors(modelFile);
      mm = JSON.parse(m.metadata.selflabel ?? "{}");
    } catch (e) {
      if (!(e instanceof SafetensorsError || e instanceof SyntaxError)) throw e;
      notes.push(`model.safetensors unreadable (${(e as Error).message}); using ${source.params}`);
      m = null;
    }
    if (m) {
      const final =
        mm.epochs === meta.epoch &&
        mm.arch === meta.arch &&
        mm.fingerprint === meta.fingerprint &&
        sameShape(mm.numClasses, meta.numClasses) &&
        sameShape(mm.inputShape, meta.inputShape);
      if (final) {
        params = {};
        for (const [k, t] of Object.entries(m.tensors)) params[k] = t.data as Float32Array;
        source.params = "model.safetensors";
        const csv = path.join(exp, "labels.csv");
        try {
          const r = readLabelsCsv(csv, labels[0].length, meta.numClasses.length, meta.numClasses);
          labels = r.labels;
          paths = r.paths;
          source.labels = "labels.csv";
        } catch (e) {
          notes.push(`labels.csv unusable (${(e as Error).message}); using the labels of ${source.labels}`);
        }
      } else {
        notes.push(`model.safetensors is not from the run of ${source.params} (an older or unfinished run); using the checkpoint`);
      }
    }
  }
  return { exp, meta, source, params, labels, paths, notes };
}

/** Validate --head against the experiment: an integer in 0..heads-1. */
export function checkHead(e: Experiment, head: unknown): number {
  const H = e.meta.numClasses.length;
  if (head === undefined) return 0;
  if (typeof head !== "number" || !Number.isInteger(head)) throw new UsageError(`--head must be an integer, got ${String(head)}`);
  if (head < 0 || head >= H)
    throw new InputError(`--head ${head} is out of range: ${e.exp} has ${H} head${H > 1 ? "s" : ""} (0..${H - 1})`);
  return head;
}

export interface DataOverride {
  /** --data PATH instead of the one recorded in the checkpoint. */
  data?: string | null;
  dataFormat?: string;
}

function flagsData(meta: CheckpointMeta, o: DataOverride) {
  const f = meta.flags as Record<string, unknown>;
  const data = o.data ?? (f.data as string | null) ?? null;
  const format = (o.data ? o.dataFormat ?? "auto" : (f.dataFormat as string) ?? "auto") as never;
  const synCount = (f.syntheticCount as number | null) ?? undefined;
  const subset = typeof f.subset === "number" && Number.isInteger(f.subset) && f.subset > 0 ? f.subset : 0;
  const seed = typeof f.seed === "number" && Number.isInteger(f.seed) ? f.seed : 0;
  return { data, format, synthetic: synCount ? { count: synCount } : undefined, inputSize: meta.inputShape[1], subset, seed };
}

const short = (f: string) => (f.length <= 64 ? f : f.slice(0, 16) + "...");

/**
 * The training split the experiment was trained on (from the checkpoint's flags,
 * or --data), refused with one line when its fingerprint differs.
 */
export async function openTrainData(e: Experiment, o: DataOverride = {}, warn: (m: string) => void = () => {}): Promise<Dataset> {
  const fd = flagsData(e.meta, o);
  const full = await openDataset({ data: fd.data, format: fd.format, split: "train", inputSize: fd.inputSize, synthetic: fd.synthetic, onWarning: warn });
  // train --subset N: the same seeded subset (recorded in the checkpoint's flags)
  const ds = subsetOf(full, fd.subset, fd.seed);
  if (ds.fingerprint !== e.meta.fingerprint) {
    await ds.close();
    throw new InputError(
      `the data at ${fd.data ?? "(built-in synthetic set)"} is not the data ${e.exp} was trained on ` +
        `(fingerprint ${short(ds.fingerprint)}, checkpoint ${short(e.meta.fingerprint)}); pass the training data with --data`,
    );
  }
  return ds;
}

/** The test/validation split of the same data, or null (with the reason) when there is none. */
export async function openTestData(e: Experiment, o: DataOverride = {}): Promise<{ ds: Dataset | null; reason: string }> {
  const fd = flagsData(e.meta, o);
  try {
    const ds = await openDataset({ data: fd.data, format: fd.format, split: "test", inputSize: fd.inputSize, synthetic: fd.synthetic });
    return { ds, reason: "" };
  } catch (err) {
    // no test split; a damaged one is an error
    if (err instanceof EmptyDatasetError || err instanceof DataUsageError) return { ds: null, reason: (err as Error).message };
    throw err;
  }
}

/** The network of the experiment with its trained parameters. */
export async function loadModel(e: Experiment): Promise<Model> {
  const archSpec = e.meta.arch === "alexnet" ? ((e.meta.flags?.archspec as "big" | "small" | undefined) ?? "big") : undefined;
  const m = await createModel({
    arch: e.meta.arch,
    numClasses: e.meta.numClasses,
    inputShape: e.meta.inputShape,
    device: "cpu",
    ...(archSpec ? { archSpec } : {}),
  });
  try {
    await m.loadStateDict(e.params);
  } catch (err) {
    m.dispose();
    throw new InputError(`${e.exp}/${e.source.params}: the parameters do not fit ${e.meta.arch} (${(err as Error).message.split("\n")[0]})`);
  }
  return m;
}
