// Experiment checkpoints: DIR/checkpoints/*.safetensors holding parameters,
// BN running statistics, SGD momentum buffers, the pseudo-labels of every head
// and a JSON metadata record (epoch, arch, flags, remaining label times, PRNG
// state, dataset fingerprint, loss). Written atomically; resume picks the
// newest valid checkpoint by its recorded epoch, whatever its file name.
import * as fs from "node:fs";
import * as path from "node:path";
import { NamedTensor, save, load, readHeader, SafetensorsError } from "../safetensors";

export const FORMAT = "selflabel-native/checkpoint/1";

export interface CheckpointMeta {
  format: string;
  epoch: number; // epochs completed
  arch: string;
  numClasses: number[];
  inputShape: [number, number, number];
  fingerprint: string; // dataset fingerprint
  flags: Record<string, unknown>;
  labelTimes: number[]; // remaining label-optimisation times (images seen)
  seen: number; // images trained on so far
  prng: unknown; // PRNG state for exact resume
  loss: number; // mean training loss of the last epoch
  lrDropNext: boolean; // written just before a learning-rate drop
  extra?: Record<string, unknown>;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  params: Record<string, Float32Array>; // model state dict (params + buffers)
  momentum: Record<string, Float32Array>;
  labels: Int32Array[]; // one per head
  file: string;
}

export class CheckpointError extends Error {
  readonly exitCode = 2;
  readonly code: string = "SLN_CHECKPOINT";
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

export function checkpointDir(exp: string): string {
  return path.join(exp, "checkpoints");
}

export function encodeCheckpoint(c: Omit<Checkpoint, "file">): { tensors: Record<string, NamedTensor>; metadata: Record<string, string> } {
  const tensors: Record<string, NamedTensor> = {};
  for (const [k, v] of Object.entries(c.params)) tensors[`model.${k}`] = { shape: [v.length], data: v };
  for (const [k, v] of Object.entries(c.momentum)) tensors[`momentum.${k}`] = { shape: [v.length], data: v };
  c.labels.forEach((l, h) => (tensors[`labels.${h}`] = { shape: [l.length], data: l }));
  return { tensors, metadata: { selflabel: JSON.stringify(c.meta) } };
}

export function writeCheckpoint(file: string, c: Omit<Checkpoint, "file">): void {
  const { tensors, metadata } = encodeCheckpoint(c);
  save(file, tensors, metadata);
}

function parseMeta(metadata: Record<string, string>, file: string): CheckpointMeta {
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(metadata.selflabel ?? "");
  } catch {
    throw new CheckpointError(`${file}: no selflabel-native metadata (not one of our checkpoints)`);
  }
  if (!meta || typeof meta !== "object") throw new CheckpointError(`${file}: metadata is not an object`);
  if (meta.format !== FORMAT) throw new CheckpointError(`${file}: unknown checkpoint format ${String(meta.format)}`);
  const ints = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0);
  if (!ints(meta.numClasses) || meta.numClasses.length === 0) throw new CheckpointError(`${file}: bad numClasses in the metadata`);
  if (!ints(meta.inputShape) || meta.inputShape.length !== 3) throw new CheckpointError(`${file}: bad inputShape in the metadata`);
  if (!Number.isInteger(meta.epoch)) throw new CheckpointError(`${file}: epoch ${String(meta.epoch)} is not an integer`);
  if (!Array.isArray(meta.labelTimes)) throw new CheckpointError(`${file}: no label schedule in the metadata`);
  return meta;
}

/** A checkpoint's metadata from its header alone (the file's extent is still checked). */
export function readCheckpointMeta(file: string): CheckpointMeta {
  return parseMeta(readHeader(file).metadata, file);
}

export function readCheckpoint(file: string): Checkpoint {
  const { tensors, metadata } = load(file);
  const meta = parseMeta(metadata, file);
  const params: Record<string, Float32Array> = {};
  const momentum: Record<string, Float32Array> = {};
  const labels: Int32Array[] = [];
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith("model.")) params[k.slice(6)] = t.data as Float32Array;
    else if (k.startsWith("momentum.")) momentum[k.slice(9)] = t.data as Float32Array;
    else if (k.startsWith("labels.")) {
      const h = Number(k.slice(7));
      if (!(Number.isInteger(h) && h >= 0 && h < meta.numClasses.length)) throw new CheckpointError(`${file}: unexpected tensor ${k}`);
      labels[h] = t.data as Int32Array;
    }
  }
  if (labels.length !== meta.numClasses.length || !Array.from(labels).every((l) => l instanceof Int32Array))
    throw new CheckpointError(`${file}: expected ${meta.numClasses.length} label arrays`);
  return { meta, params, momentum, labels, file };
}

/** Checkpoint files of an experiment (temporary files excluded). */
export function listCheckpointFiles(exp: string): string[] {
  const dir = checkpointDir(exp);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".safetensors") && !f.startsWith("."))
    .map((f) => path.join(dir, f));
}

function isBadCheckpoint(e: unknown): boolean {
  return e instanceof SafetensorsError || e instanceof CheckpointError;
}

/** Metadata of every readable checkpoint, newest (highest epoch) first; unreadable files go to `warn`. */
function checkpointMetas(exp: string, warn: (msg: string) => void): { file: string; meta: CheckpointMeta }[] {
  const all: { file: string; meta: CheckpointMeta }[] = [];
  for (const f of listCheckpointFiles(exp)) {
    try {
      all.push({ file: f, meta: readCheckpointMeta(f) });
    } catch (e) {
      if (!isBadCheckpoint(e)) throw e;
      warn(`skipping ${f}: ${(e as Error).message}`);
    }
  }
  return all.sort((a, b) => b.meta.epoch - a.meta.epoch);
}

/**
 * The newest valid checkpoint (highest epoch), or null. Only headers are read
 * to choose it; invalid files are reported through `warn` and skipped.
 */
export function newestCheckpoint(exp: string, warn: (msg: string) => void = () => {}): Checkpoint | null {
  for (const { file } of checkpointMetas(exp, warn)) {
    try {
      return readCheckpoint(file);
    } catch (e) {
      if (!isBadCheckpoint(e)) throw e;
      warn(`skipping ${file}: ${(e as Error).message}`);
    }
  }
  return null;
}

export function checkpointName(epoch: number): string {
  return `epoch-${String(epoch).padStart(4, "0")}.safetensors`;
}

/**
 * Retention: keep the newest two, the lowest-loss one and every one written
 * just before a learning-rate drop; delete the rest. Files we cannot read are
 * left alone.
 */
export function pruneCheckpoints(exp: string): void {
  const all = checkpointMetas(exp, () => {});
  if (all.length <= 2) return;
  const keep = new Set(all.slice(0, 2).map((c) => c.file));
  const lowest = all.reduce((m, c) => (c.meta.loss < m.meta.loss ? c : m));
  keep.add(lowest.file);
  for (const c of all) if (c.meta.lrDropNext) keep.add(c.file);
  for (const c of all) if (!keep.has(c.file)) fs.rmSync(c.file, { force: true });
}
