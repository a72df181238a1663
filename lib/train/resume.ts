// Choosing and validating the checkpoint a run resumes from.
//
// A checkpoint made for another run (architecture, heads, input shape, data)
// is refused: the user pointed --exp at the wrong directory. A checkpoint that
// is corrupt (unreadable bytes, or contents that contradict themselves: labels
// of the wrong count or out of range, an epoch/step/image count out of range,
// a label schedule that is not the one its flags give) is moved aside, renamed
// `<name>.corrupt` (never deleted, never overwritten by the new run), and the
// next older checkpoint is tried. When checkpoints exist but none is valid the
// run stops (exit 2) instead of silently starting over.
import * as fs from "node:fs";
import { Checkpoint, CheckpointError, CheckpointMeta, listCheckpointFiles, readCheckpoint, readCheckpointMeta, checkpointDir } from "./checkpoint";
import { SafetensorsError } from "../safetensors";
import { labelSchedule } from "./recipe";

/** What the resuming run expects of a checkpoint. */
export interface ResumeExpect {
  arch: string;
  numClasses: number[];
  inputShape: [number, number, number];
  fingerprint: string;
  /** Images in the training set. */
  count: number;
}

function isInt(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x);
}

/** Differences that mean "made for another run" (refused, not corrupt). */
export function runMismatch(m: CheckpointMeta, x: ResumeExpect): string[] {
  const out: string[] = [];
  const same = (a: unknown, b: unknown[]) => Array.isArray(a) && a.join(",") === b.join(",");
  if (m.arch !== x.arch) out.push(`arch ${m.arch} (now ${x.arch})`);
  if (!same(m.numClasses, x.numClasses)) out.push(`heads [${m.numClasses}] (now [${x.numClasses}])`);
  if (!same(m.inputShape, x.inputShape)) out.push(`input [${m.inputShape}] (now [${x.inputShape}])`);
  if (m.fingerprint !== x.fingerprint) out.push(`dataset ${String(m.fingerprint).slice(0, 12)} (now ${x.fingerprint.slice(0, 12)})`);
  return out;
}

/**
 * Internal consistency of a checkpoint read for a data set of `x.count`
 * images; throws CheckpointError naming the file and the first problem.
 */
export function validateCheckpoint(c: Checkpoint, x: ResumeExpect): void {
  const m = c.meta;
  const N = x.count;
  const bad = (what: string): never => {
    throw new CheckpointError(`${c.file}: ${what}`);
  };
  // an aborted run's checkpoint (partial.safetensors) is `batch` batches into epoch m.epoch + 1
  const batch = ((m.extra ?? {}).batch ?? 0) as number;
  const bs = (m.flags ?? {}).batchSize;
  if (!isInt(batch) || batch < 0 || (batch > 0 && (!isInt(bs) || bs < 1 || batch * bs >= N))) bad(`batch ${String(batch)} is not inside an epoch`);
  if (!isInt(m.epoch) || m.epoch < (batch > 0 ? 0 : 1) || m.epoch > 1e7) bad(`epoch ${m.epoch} is not a completed epoch count`);
  const partial = batch > 0 ? batch * (bs as number) : 0;
  if (!isInt(m.seen) || m.seen !== m.epoch * N + partial)
    bad(`${m.seen} images trained, expected ${m.epoch} epochs x ${N} images${partial ? ` + ${partial}` : ""}`);
  if (c.labels.length !== x.numClasses.length) bad(`${c.labels.length} label arrays for ${x.numClasses.length} heads`);
  c.labels.forEach((l, h) => {
    if (!(l instanceof Int32Array)) bad(`labels of head ${h} are missing or not int32`);
    if (l.length !== N) bad(`${l.length} labels in head ${h} for ${N} images`);
    const K = x.numClasses[h];
    for (let i = 0; i < l.length; i++) if (!(l[i] >= 0 && l[i] < K)) bad(`label ${l[i]} of image ${i} in head ${h} is outside [0, ${K})`);
  });
  const f = (m.flags ?? {}) as Record<string, unknown>;
  const ex = (m.extra ?? {}) as Record<string, unknown>;
  const epochs = f.epochs,
    nopts = f.nopts;
  if (!isInt(epochs) || epochs < 1 || !isInt(nopts) || nopts < 1 || nopts > 1e6) bad(`flags epochs ${epochs} / nopts ${nopts} are not valid`);
  if (m.epoch > (epochs as number)) bad(`epoch ${m.epoch} is beyond the run's ${epochs} epochs`);
  const step = ex.step ?? 0;
  if (!isInt(step) || step < 0 || step > m.seen) bad(`step ${String(step)} out of range [0, ${m.seen}]`);
  // the remaining label times must be the tail of the schedule its flags give,
  // and the passes already made its head, every one of them already due
  const times = m.labelTimes;
  const all = labelSchedule({ epochs: epochs as number, nopts: nopts as number, initLabels: f.initLabels as string | undefined, firstPass: f.firstPass as number | undefined, relabel: f.relabel as string | undefined }, N);
  const passes = (ex.passes ?? 0) as number;
  if (!Array.isArray(times) || times.length > all.length || !times.every((t, i) => t === all[all.length - times.length + i]))
    bad(`label schedule [${String(times).slice(0, 60)}] is not the tail of the one for ${epochs} epochs, ${N} images, ${nopts} passes`);
  if (!isInt(passes) || passes + times.length !== all.length) bad(`${String(passes)} label passes made + ${times.length} left != ${all.length}`);
  if (passes > 0 && all[passes - 1] > m.seen) bad(`label pass ${passes} was due at ${all[passes - 1]} images, after the ${m.seen} trained`);
  if (ex.precision !== undefined && ex.precision !== "f32" && ex.precision !== "bf16") bad(`training precision ${JSON.stringify(ex.precision)} is not f32 or bf16`);
  if (ex.warm !== undefined) {
    if (!Array.isArray(ex.warm)) bad(`warm-start record is not a list`);
    (ex.warm as unknown[]).forEach((w, h) => {
      if (w === null) return;
      if (!Array.isArray(w) || w.length !== x.numClasses[h] || !w.every((v) => typeof v === "number" && Number.isFinite(v)))
        bad(`warm-start scaling of head ${h} is not ${x.numClasses[h]} finite numbers`);
    });
  }
  for (const [k, v] of Object.entries(c.params)) if (!(v instanceof Float32Array)) bad(`model.${k} is not float32`);
  for (const [k, v] of Object.entries(c.momentum)) if (!(v instanceof Float32Array)) bad(`momentum.${k} is not float32`);
}

/** Move a corrupt checkpoint aside (`<file>.corrupt`, `.corrupt-2`, ...); returns the new name. */
export function setAside(file: string): string {
  for (let i = 1; ; i++) {
    const to = `${file}.corrupt${i > 1 ? `-${i}` : ""}`;
    if (fs.existsSync(to)) continue;
    fs.renameSync(file, to);
    return to;
  }
}

function isCorrupt(e: unknown): boolean {
  return e instanceof SafetensorsError || e instanceof CheckpointError;
}

/**
 * The checkpoint to resume from: the newest valid one (by recorded epoch), or
 * null when the experiment has none. Corrupt ones are set aside with a
 * warning; a checkpoint of another run, or checkpoints none of which is
 * valid, stop the run with a CheckpointError.
 */
export function chooseResume(exp: string, x: ResumeExpect, warn: (msg: string) => void): Checkpoint | null {
  const files = listCheckpointFiles(exp);
  if (files.length === 0) return null;
  const metas: { file: string; meta: CheckpointMeta }[] = [];
  const aside: string[] = [];
  const corrupt = (file: string, e: unknown) => {
    if (!isCorrupt(e)) throw e;
    const to = setAside(file);
    aside.push(to);
    warn(`${(e as Error).message}; moved aside to ${to}, trying an older checkpoint`);
  };
  for (const file of files) {
    try {
      const meta = readCheckpointMeta(file);
      if (!isInt(meta.epoch) || meta.epoch < (meta.extra?.batch ? 0 : 1)) throw new CheckpointError(`${file}: epoch ${String(meta.epoch)} is not a completed epoch count`);
      metas.push({ file, meta });
    } catch (e) {
      corrupt(file, e);
    }
  }
  // newest first; an aborted epoch's partial checkpoint after the epoch it started from
  const batchOf = (m: CheckpointMeta) => Number((m.extra ?? {}).batch ?? 0);
  metas.sort((a, b) => b.meta.epoch - a.meta.epoch || batchOf(b.meta) - batchOf(a.meta));
  for (const { file, meta } of metas) {
    const mismatch = runMismatch(meta, x);
    if (mismatch.length) throw new CheckpointError(`${file} was made for another run: ${mismatch.join(", ")}; use another --exp or --no-resume`);
    try {
      const c = readCheckpoint(file);
      validateCheckpoint(c, x);
      return c;
    } catch (e) {
      corrupt(file, e);
    }
  }
  throw new CheckpointError(
    `no valid checkpoint left in ${checkpointDir(exp)} (corrupt ones kept as ${aside.join(", ")}); use --no-resume to start over`,
  );
}
