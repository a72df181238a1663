// Weights from torch.save checkpoints and safetensors files: state_dict
// names cleaned (module. prefixes), the reference's pseudo-labels, our
// training checkpoints, the reference resnet's layout, and the check of a
// dict against a model's tensors.
import * as fs from "node:fs";
import * as path from "node:path";
import type { StateDict, TensorInfo } from "../model_types";
import { load as loadSafetensors, save as saveSafetensors, NamedTensor } from "../safetensors";
import { PthError } from "./error";
import { PyDict } from "./pickle";
import { PthTensor, readPth } from "./torch";

export interface PthWeights {
  /** float32 tensors under the checkpoint's names, `module.` segments removed. */
  stateDict: StateDict;
  /** The reference's pseudo-labels `L` (one Int32Array per head), when present. */
  labels?: Int32Array[];
  /** Keys dropped: BN `num_batches_tracked` counters (we do not keep them). */
  ignored: string[];
}

function isTensorDict(v: unknown): v is PyDict {
  return v instanceof PyDict && v.map.size > 0 && [...v.map.values()].every((x) => x instanceof PthTensor);
}

/**
 * The weights in a torch.save checkpoint: a plain state_dict, or the
 * reference's { state_dict, L, ... } (labels returned). `module.` prefixes
 * (DataParallel, also inside a name such as features.module.0) are removed;
 * `*.num_batches_tracked` is dropped (see `ignored`).
 */
export function loadPth(file: string): PthWeights {
  return weightsFrom(readPth(file), file);
}

/** A short description of a pickled value for messages (never recursive: values may nest a million deep). */
function brief(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "..." : v);
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean" || v === null) return String(v);
  if (Array.isArray(v)) return `a list of ${v.length} items`;
  return typeof v;
}

/**
 * Bytes the float32/int32 copies made from the tensors of one file may take:
 * the bytes of the distinct buffers those tensors view. Keys that reference
 * one storage many times cannot multiply the memory.
 */
class CopyBudget {
  private left = 0;
  constructor(tensors: Iterable<unknown>, private readonly file: string) {
    const seen = new Set<ArrayBufferLike>();
    for (const t of tensors) if (t instanceof PthTensor && !seen.has(t.data.buffer)) seen.add(t.data.buffer), (this.left += t.data.buffer.byteLength);
  }
  take(bytes: number): void {
    this.left -= bytes;
    if (this.left < 0) throw new PthError(`${this.file}: its tensors reference the same data over and over (the copies would exceed the file's own bytes)`);
  }
}

export function weightsFrom(obj: unknown, file: string): PthWeights {
  let sd: PyDict;
  let labels: Int32Array[] | undefined;
  if (obj instanceof PyDict && obj.has("state_dict")) {
    const inner = obj.get("state_dict");
    if (!isTensorDict(inner)) throw new PthError(`${file}: 'state_dict' is not a dict of tensors`);
    sd = inner;
    const L = obj.get("L");
    const budget = new CopyBudget([...inner.map.values(), ...(L instanceof PthTensor ? [L] : Array.isArray(L) ? L : [])], file);
    if (L !== undefined && L !== null) labels = labelsFrom(L, file, budget);
  } else if (isTensorDict(obj)) {
    sd = obj;
  } else {
    const what =
      obj instanceof PyDict ? `a dict with keys ${obj.keys().slice(0, 10).map(brief).join(", ")}` : obj instanceof PthTensor ? "a single tensor" : typeof obj;
    throw new PthError(`${file}: no state_dict found (expected a dict of tensors or {state_dict, ...}; got ${what})`);
  }
  const stateDict: StateDict = {};
  const ignored: string[] = [];
  const budget = new CopyBudget(sd.map.values(), file);
  for (const [k0, v] of sd.map) {
    if (typeof k0 !== "string") throw new PthError(`${file}: state_dict key ${brief(k0)} is not a string`);
    const k = k0.replace(/^module\./, "").replace(/\.module\./g, ".");
    const t = v as PthTensor;
    if (k.endsWith(".num_batches_tracked")) {
      ignored.push(k);
      continue;
    }
    if (!["float32", "float64", "float16", "bfloat16"].includes(t.dtype)) {
      throw new PthError(`${file}: ${k0} is a ${t.dtype} tensor; weights must be floating point`);
    }
    if (stateDict[k]) throw new PthError(`${file}: ${k} appears twice (with and without a module. prefix)`);
    if (!(t.data instanceof Float32Array)) budget.take(t.numel * 4);
    stateDict[k] = { shape: [...t.shape], data: t.toFloat32() };
  }
  return { stateDict, labels, ignored };
}

function labelsFrom(L: unknown, file: string, budget: CopyBudget): Int32Array[] {
  const rows: Int32Array[] = [];
  const toI32 = (t: PthTensor, n: number, off: number): Int32Array => {
    budget.take(n * 4);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = Number((t.data as ArrayLike<number | bigint>)[off + i]);
      if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new PthError(`${file}: pseudo-label L has a bad value ${v}`);
      out[i] = v;
    }
    return out;
  };
  const isInt = (t: PthTensor) => ["int64", "int32", "int16", "int8", "uint8"].includes(t.dtype);
  if (L instanceof PthTensor && isInt(L)) {
    if (L.shape.length === 1) return [toI32(L, L.shape[0], 0)];
    if (L.shape.length === 2) {
      for (let h = 0; h < L.shape[0]; h++) rows.push(toI32(L, L.shape[1], h * L.shape[1]));
      return rows;
    }
  }
  if (Array.isArray(L) && L.every((x) => x instanceof PthTensor && isInt(x) && x.shape.length === 1)) {
    return (L as PthTensor[]).map((t) => toI32(t, t.shape[0], 0));
  }
  throw new PthError(`${file}: pseudo-labels 'L' must be an integer tensor (heads, N) or a list of them`);
}

export const WEIGHTS_FORMAT = "selflabel-native/weights/1";

/**
 * Weights from a .pth (torch.save zip), a safetensors file written by
 * `convert` (PyTorch names, real shapes, optional labels.<h>), or one of our
 * training checkpoints (model.<name>, flat shapes).
 */
export function loadWeights(file: string): PthWeights {
  let head: Buffer;
  try {
    const fd = fs.openSync(file, "r");
    head = Buffer.alloc(4);
    fs.readSync(fd, head, 0, 4, 0);
    fs.closeSync(fd);
  } catch (e) {
    throw new PthError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, "SLN_IO");
  }
  if (head.readUInt32LE(0) === 0x04034b50 || (head[0] === 0x80 && head[1] <= 5)) return loadPth(file);
  const { tensors, metadata } = loadSafetensors(file);
  const stateDict: StateDict = {};
  const labels: Int32Array[] = [];
  // a training checkpoint (model.<name>, momentum.<name>, labels.<h>); train's
  // model.safetensors carries 'selflabel' metadata too but plain names
  const ours = (metadata.selflabel ?? "").includes('"format":"selflabel-native/checkpoint/');
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith("labels.")) {
      labels[Number(k.slice(7))] = Int32Array.from(t.data as Int32Array);
      continue;
    }
    if (ours && !k.startsWith("model.")) continue; // momentum.* of a training checkpoint
    const name = ours ? k.slice(6) : k;
    if (!(t.data instanceof Float32Array)) throw new PthError(`${file}: ${k} is not float32`);
    stateDict[name] = { shape: [...t.shape], data: t.data };
  }
  return { stateDict, labels: labels.length ? labels : undefined, ignored: [] };
}

/** Write weights (and labels) as safetensors for `convert`. */
export function saveWeights(file: string, w: PthWeights, source: string): void {
  const tensors: Record<string, NamedTensor> = {};
  for (const [k, t] of Object.entries(w.stateDict)) tensors[k] = { shape: t.shape, data: t.data };
  (w.labels ?? []).forEach((l, h) => (tensors[`labels.${h}`] = { shape: [l.length], data: l }));
  saveSafetensors(file, tensors, { format: WEIGHTS_FORMAT, source: path.basename(source) });
}

/**
 * The reference's resnetv1 layout (features.0 = conv1, features.1 = bn1,
 * features.4..7 = layer1..4) renamed to torchvision's, when every key of the
 * dict uses it; other dicts are returned unchanged.
 */
export function renameReferenceResnet(sd: StateDict): StateDict {
  const keys = Object.keys(sd);
  const re = /^features\.(\d+)\.(.*)$/;
  const body = keys.filter((k) => !k.startsWith("top_layer"));
  if (body.length === 0 || !body.every((k) => re.test(k)) || !keys.some((k) => k.startsWith("features.4."))) return sd;
  const map: Record<string, string> = { "0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4" };
  const out: StateDict = {};
  for (const k of keys) {
    const m = re.exec(k);
    out[m && map[m[1]] ? `${map[m[1]]}.${m[2]}` : k] = sd[k];
  }
  return out;
}

/**
 * Check a dict against a model's tensors: the error lists every missing,
 * unexpected and wrong-shaped key (a flat shape of the right size, as our
 * training checkpoints store, counts as right).
 */
export function checkAgainst(sd: StateDict, info: TensorInfo[], what: string, file: string): void {
  const want = new Map(info.map((t) => [t.name, t.shape]));
  const missing = info.filter((t) => !(t.name in sd)).map((t) => t.name);
  const unexpected = Object.keys(sd).filter((k) => !want.has(k));
  const wrong: string[] = [];
  for (const [k, t] of Object.entries(sd)) {
    const s = want.get(k);
    if (!s) continue;
    const n = s.reduce((a, b) => a * b, 1);
    const same = t.shape.join(",") === s.join(",") || (t.shape.length === 1 && t.shape[0] === n && s.length !== 1);
    if (!same || t.data.length !== n) wrong.push(`${k} [${t.shape}] (expected [${s}])`);
  }
  if (!missing.length && !unexpected.length && !wrong.length) return;
  const list = (v: string[]) => v.slice(0, 10).join(", ") + (v.length > 10 ? `, ... (${v.length} in all)` : "");
  let msg = `${file}: the weights do not fit this ${what} (nothing was changed).`;
  if (missing.length) msg += ` Missing: ${list(missing)}.`;
  if (unexpected.length) msg += ` Unexpected: ${list(unexpected)}.`;
  if (wrong.length) msg += ` Wrong shape: ${list(wrong)}.`;
  if ([...missing, ...unexpected].some((k) => k.startsWith("top_layer")))
    msg += " (Heads: top_layer for one head, top_layer0.. for several; --hc and --ncl must match the checkpoint.)";
  throw new PthError(msg, "SLN_STATE_MISMATCH");
}
