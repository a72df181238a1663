// Reading PyTorch checkpoints (torch.save's zip format, PyTorch >= 1.6)
// without executing anything.
//
// A .pth is a zip archive: <prefix>/data.pkl (a pickle, protocol 2), one
// record <prefix>/data/<key> of raw little-endian bytes per storage, and
// <prefix>/byteorder in newer versions. The pickle is interpreted by a small
// stack machine that knows only the opcodes torch.save emits and builds plain
// values; its "globals" come from an allow-list (the tensor rebuild functions,
// the storage classes, collections.OrderedDict). Any other global (os.system,
// builtins.eval, numpy, ...) is refused with an error that names it, before
// anything else happens: there is no code that could run.
import * as fs from "node:fs";
import * as zlib from "node:zlib";
import * as path from "node:path";
import type { StateDict, TensorInfo } from "./model";
import { load as loadSafetensors, save as saveSafetensors, NamedTensor } from "./safetensors";

export class PthError extends Error {
  readonly exitCode = 2;
  readonly code: string;
  constructor(message: string, code = "SLN_BAD_PTH") {
    super(message);
    this.name = "PthError";
    this.code = code;
  }
}

// ------------------------------------------------------------------ zip

export interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflate
  compressedSize: number;
  size: number;
  localOffset: number;
}

/** The central directory of a zip archive (zip64 sizes and offsets included). */
export function zipEntries(buf: Buffer, file = "<buffer>"): ZipEntry[] {
  const bad = (what: string) => new PthError(`${file}: not a readable zip archive (${what})`);
  // end of central directory: 22 bytes + up to 65535 bytes of comment
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw bad("no end-of-central-directory record; truncated or not a zip");
  let count = buf.readUInt16LE(eocd + 10);
  let cdSize = buf.readUInt32LE(eocd + 12);
  let cdOff = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOff === 0xffffffff || cdSize === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || buf.readUInt32LE(loc) !== 0x07064b50) throw bad("zip64 locator missing");
    const z64 = Number(buf.readBigUInt64LE(loc + 8));
    if (z64 + 56 > buf.length || buf.readUInt32LE(z64) !== 0x06064b50) throw bad("zip64 end record missing");
    count = Number(buf.readBigUInt64LE(z64 + 32));
    cdSize = Number(buf.readBigUInt64LE(z64 + 40));
    cdOff = Number(buf.readBigUInt64LE(z64 + 48));
  }
  if (cdOff + cdSize > buf.length) throw bad("central directory beyond the end of the file (truncated?)");
  const out: ZipEntry[] = [];
  let p = cdOff;
  for (let i = 0; i < count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) throw bad(`central directory entry ${i} is corrupt`);
    const flags = buf.readUInt16LE(p + 8);
    const method = buf.readUInt16LE(p + 10);
    let compressedSize = buf.readUInt32LE(p + 20);
    let size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    let localOffset = buf.readUInt32LE(p + 42);
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString("utf8");
    if (flags & 1) throw bad(`${name} is encrypted`);
    // zip64 extended information: the 0xffffffff fields, in this order
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = buf.readUInt16LE(e);
      const len = buf.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff) (size = Number(buf.readBigUInt64LE(q))), (q += 8);
        if (compressedSize === 0xffffffff) (compressedSize = Number(buf.readBigUInt64LE(q))), (q += 8);
        if (localOffset === 0xffffffff) localOffset = Number(buf.readBigUInt64LE(q));
      }
      e += 4 + len;
    }
    out.push({ name, method, compressedSize, size, localOffset });
    p = eEnd + commentLen;
  }
  return out;
}

/** The bytes of one entry: stored entries as a view, deflated ones inflated. */
export function zipRead(buf: Buffer, e: ZipEntry, file = "<buffer>"): Buffer {
  const bad = (what: string) => new PthError(`${file}: zip entry ${e.name}: ${what}`);
  const p = e.localOffset;
  if (p + 30 > buf.length || buf.readUInt32LE(p) !== 0x04034b50) throw bad("local header missing (corrupt archive)");
  const start = p + 30 + buf.readUInt16LE(p + 26) + buf.readUInt16LE(p + 28);
  if (start + e.compressedSize > buf.length) throw bad("data beyond the end of the file (truncated?)");
  const raw = buf.subarray(start, start + e.compressedSize);
  if (e.method === 0) {
    if (e.size !== e.compressedSize) throw bad("stored entry with differing sizes");
    return raw;
  }
  if (e.method === 8) {
    const out = zlib.inflateRawSync(raw);
    if (out.length !== e.size) throw bad(`inflated to ${out.length} bytes, expected ${e.size}`);
    return out;
  }
  throw bad(`compression method ${e.method} is not supported (only stored and deflate)`);
}

// ------------------------------------------------------------------ values

/** A Python dict / OrderedDict; keys are strings or numbers. */
export class PyDict {
  readonly map = new Map<unknown, unknown>();
  constructor(readonly ordered = false) {}
  get(k: unknown): unknown {
    return this.map.get(k);
  }
  has(k: unknown): boolean {
    return this.map.has(k);
  }
  keys(): unknown[] {
    return [...this.map.keys()];
  }
}

export type TorchDType = "float32" | "float64" | "float16" | "bfloat16" | "int64" | "int32" | "int16" | "int8" | "uint8" | "bool";

/** A tensor from a checkpoint: contiguous, row-major, in its own dtype. */
export class PthTensor {
  constructor(
    readonly dtype: TorchDType,
    readonly shape: number[],
    readonly data: Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array,
  ) {}
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  /** float32 copy (floating dtypes only). */
  toFloat32(): Float32Array {
    if (this.data instanceof Float32Array) return this.data;
    if (this.dtype === "float64") return Float32Array.from(this.data as Float64Array);
    throw new PthError(`a ${this.dtype} tensor cannot be used as float32 weights`);
  }
}

class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

const MARK = Symbol("mark");

// storage class -> element dtype and size
const STORAGES: Record<string, [TorchDType, number]> = {
  FloatStorage: ["float32", 4],
  DoubleStorage: ["float64", 8],
  HalfStorage: ["float16", 2],
  BFloat16Storage: ["bfloat16", 2],
  LongStorage: ["int64", 8],
  IntStorage: ["int32", 4],
  ShortStorage: ["int16", 2],
  CharStorage: ["int8", 1],
  ByteStorage: ["uint8", 1],
  BoolStorage: ["bool", 1],
};

/** The globals a checkpoint may name; anything else is refused. */
export const ALLOWED_GLOBALS = [
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
  "collections.OrderedDict",
  ...Object.keys(STORAGES).map((s) => `torch.${s}`),
];

interface Storage {
  dtype: TorchDType;
  values: Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function decodeStorage(bytes: Buffer, dtype: TorchDType, count: number, what: string): Storage["values"] {
  const size = STORAGES[Object.keys(STORAGES).find((k) => STORAGES[k][0] === dtype)!][1];
  if (bytes.length < count * size) {
    throw new PthError(`${what}: ${bytes.length} bytes, expected ${count * size} (${count} ${dtype}); truncated file?`);
  }
  // torch aligns records to 64 bytes, so usually a view of the file's bytes
  // will do; otherwise copy (typed arrays need aligned offsets)
  let ab: ArrayBuffer;
  let off = 0;
  if (bytes.byteOffset % size === 0 && dtype !== "float16" && dtype !== "bfloat16") {
    ab = bytes.buffer as ArrayBuffer;
    off = bytes.byteOffset;
  } else {
    ab = new ArrayBuffer(count * size);
    bytes.copy(Buffer.from(ab), 0, 0, count * size);
  }
  switch (dtype) {
    case "float32":
      return new Float32Array(ab, off, count);
    case "float64":
      return new Float64Array(ab, off, count);
    case "int64":
      return new BigInt64Array(ab, off, count);
    case "int32":
      return new Int32Array(ab, off, count);
    case "int16":
      return new Int16Array(ab, off, count);
    case "int8":
      return new Int8Array(ab, off, count);
    case "uint8":
    case "bool":
      return new Uint8Array(ab, off, count);
    case "float16":
    case "bfloat16": {
      const u = new Uint16Array(ab, off, count);
      const out = new Float32Array(count);
      const tmp = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) {
        if (dtype === "bfloat16") tmp[i] = u[i] << 16;
        else out[i] = halfToFloat(u[i]);
      }
      return out;
    }
  }
}

// ------------------------------------------------------------------ unpickler

interface UnpickleContext {
  file: string;
  loadStorage(key: string, storageClass: string, numel: number): Storage;
}

function rebuildTensor(ctx: UnpickleContext, args: unknown[]): PthTensor {
  const [storage, offset, size, stride] = args as [Storage, number, number[], number[]];
  if (!storage || !storage.values || !Array.isArray(size) || !Array.isArray(stride) || typeof offset !== "number") {
    throw new PthError(`${ctx.file}: malformed tensor record in the pickle`);
  }
  const numel = size.reduce((a, b) => a * b, 1);
  const src = storage.values;
  const Ctor = src.constructor as new (n: number) => typeof src;
  // contiguous fast path; general strides otherwise
  let contiguous = true;
  for (let d = size.length - 1, want = 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== want) contiguous = false;
    want *= size[d];
  }
  let maxIndex = offset;
  for (let d = 0; d < size.length; d++) if (size[d] > 0) maxIndex += (size[d] - 1) * stride[d];
  if (numel > 0 && (maxIndex >= src.length || offset < 0)) {
    throw new PthError(`${ctx.file}: a tensor of shape [${size}] reaches past its storage of ${src.length} elements`);
  }
  if (contiguous) {
    // a view: no copy of large weights (the storage is ours, read-only use)
    return new PthTensor(storage.dtype, [...size], (src as Float32Array).subarray(offset, offset + numel));
  }
  {
    const out = new Ctor(numel);
    const idx = new Array(size.length).fill(0);
    for (let i = 0; i < numel; i++) {
      let p = offset;
      for (let d = 0; d < size.length; d++) p += idx[d] * stride[d];
      (out as Float32Array)[i] = (src as Float32Array)[p];
      for (let d = size.length - 1; d >= 0; d--) {
        if (++idx[d] < size[d]) break;
        idx[d] = 0;
      }
    }
    return new PthTensor(storage.dtype, [...size], out);
  }
}

/**
 * Interpret a pickle (protocols 2-4 as torch.save writes them). Globals are
 * resolved only against ALLOWED_GLOBALS; persistent ids must be torch
 * storages. Returns the top-level value.
 */
export function unpickle(data: Buffer, ctx: UnpickleContext): unknown {
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const fail = (what: string): never => {
    throw new PthError(`${ctx.file}: bad pickle at byte ${p}: ${what}`);
  };
  const need = (n: number) => {
    if (p + n > data.length) fail("truncated");
  };
  const popMark = (): unknown[] => {
    let i = stack.length - 1;
    while (i >= 0 && stack[i] !== MARK) i--;
    if (i < 0) fail("MARK missing");
    const items = stack.splice(i + 1);
    stack.pop();
    return items;
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail("stack underflow");
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail("stack underflow");
    return stack[stack.length - 1];
  };
  const readLine = (): string => {
    const e = data.indexOf(0x0a, p);
    if (e < 0) fail("unterminated line");
    const s = data.subarray(p, e).toString("latin1");
    p = e + 1;
    return s;
  };
  const global = (module: string, name: string): PyGlobal => {
    const q = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.includes(q)) {
      throw new PthError(
        `${ctx.file}: refused: the checkpoint's pickle names the global '${q}', which is not a tensor or container ` +
          `(allowed: torch._utils._rebuild_tensor_v2, torch.*Storage, collections.OrderedDict, ...); nothing was executed. ` +
          `Only load checkpoints from sources you trust, and only plain state_dicts`,
        "SLN_PTH_REFUSED",
      );
    }
    return new PyGlobal(module, name);
  };
  const setItems = (d: unknown, kv: unknown[]) => {
    if (!(d instanceof PyDict)) fail("SETITEM(S) on a non-dict");
    for (let i = 0; i + 1 < kv.length; i += 2) (d as PyDict).map.set(kv[i], kv[i + 1]);
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof PyGlobal)) fail("REDUCE of something that is not an allowed global");
    const g = fn as PyGlobal;
    const a = args as unknown[];
    if (!Array.isArray(a)) fail("REDUCE arguments are not a tuple");
    switch (g.qualname) {
      case "collections.OrderedDict":
        if (a.length !== 0) fail("OrderedDict(...) with arguments");
        return new PyDict(true);
      case "torch._utils._rebuild_tensor_v2":
        return rebuildTensor(ctx, a);
      case "torch._utils._rebuild_parameter":
      case "torch._utils._rebuild_parameter_with_state":
        if (!(a[0] instanceof PthTensor)) fail("_rebuild_parameter without a tensor");
        return a[0];
      default:
        return fail(`${g.qualname} cannot be called`);
    }
  };
  for (;;) {
    need(1);
    const op = data[p++];
    switch (op) {
      case 0x80: // PROTO
        need(1);
        if (data[p] > 5) fail(`pickle protocol ${data[p]} is not supported`);
        p++;
        break;
      case 0x95: // FRAME (protocol 4): a length we do not need
        need(8);
        p += 8;
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return stack[0];
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop(),
          a = pop();
        stack.push([a, b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop(),
          b = pop(),
          a = pop();
        stack.push([a, b, c]);
        break;
      }
      case 0x4a: // BININT
        need(4);
        stack.push(data.readInt32LE(p));
        p += 4;
        break;
      case 0x4b: // BININT1
        need(1);
        stack.push(data[p++]);
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(data.readUInt16LE(p));
        p += 2;
        break;
      case 0x8a: // LONG1
      case 0x8b: {
        // LONG4
        const n = op === 0x8a ? (need(1), data[p++]) : (need(4), (p += 4), data.readUInt32LE(p - 4));
        need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[p + i]);
        if (n > 0 && data[p + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x49: {
        // INT (text): also True/False as I01/I00
        const s = readLine();
        stack.push(s === "01" ? true : s === "00" ? false : Number(s));
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(data.readDoubleBE(p));
        p += 8;
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x58: // BINUNICODE
      case 0x8c: // SHORT_BINUNICODE
      case 0x8d: // BINUNICODE8
      case 0x54: // BINSTRING
      case 0x55: // SHORT_BINSTRING
      case 0x42: // BINBYTES
      case 0x43: {
        // SHORT_BINBYTES
        let n: number;
        if (op === 0x8c || op === 0x55 || op === 0x43) need(1), (n = data[p]), (p += 1);
        else if (op === 0x8d) need(8), (n = Number(data.readBigUInt64LE(p))), (p += 8);
        else need(4), (n = data.readUInt32LE(p)), (p += 4);
        need(n);
        const b = data.subarray(p, p + n);
        p += n;
        if (op === 0x42 || op === 0x43) stack.push(Buffer.from(b));
        else stack.push(b.toString(op === 0x54 || op === 0x55 ? "latin1" : "utf8"));
        break;
      }
      case 0x71: // BINPUT
        need(1);
        memo.set(data[p++], top());
        break;
      case 0x72: // LONG_BINPUT
        need(4);
        memo.set(data.readUInt32LE(p), top());
        p += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        let k: number;
        if (op === 0x68) need(1), (k = data[p++]);
        else need(4), (k = data.readUInt32LE(p)), (p += 4);
        if (!memo.has(k)) fail(`memo entry ${k} missing`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = readLine();
        const name = readLine();
        stack.push(global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop(),
          module = pop();
        if (typeof name !== "string" || typeof module !== "string") fail("STACK_GLOBAL of non-strings");
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: // NEWOBJ: cls.__new__(cls, *args); no allowed global is a class built this way
        fail("NEWOBJ is not allowed (objects other than tensors and containers)");
        break;
      case 0x62: {
        // BUILD: the OrderedDict of a state_dict carries _metadata; keep it aside
        const state = pop();
        const obj = top();
        if (!(obj instanceof PyDict)) fail("BUILD on something other than a dict");
        (obj as PyDict & { state?: unknown }).state = state;
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop(),
          k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) fail("APPEND to a non-list");
        (l as unknown[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fail("APPENDS to a non-list");
        (l as unknown[]).push(...items);
        break;
      }
      case 0x51: {
        // BINPERSID: ('storage', storage class, key, location, numel)
        const pid = pop() as unknown[];
        if (!Array.isArray(pid) || pid[0] !== "storage" || !(pid[1] instanceof PyGlobal) || typeof pid[2] !== "string") {
          fail("persistent id is not a torch storage record");
        }
        const cls = (pid[1] as PyGlobal).name;
        if (!STORAGES[cls]) fail(`storage class ${cls} is not supported`);
        stack.push(ctx.loadStorage(pid[2] as string, cls, Number(pid[4])));
        break;
      }
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      default:
        fail(`opcode 0x${op.toString(16)} is not one torch.save writes; refused`);
    }
  }
}

// ------------------------------------------------------------------ torch.save files

/** The top-level object of a torch.save zip checkpoint (tensors as PthTensor). */
export function readPth(file: string): unknown {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new PthError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, "SLN_IO");
  }
  return decodePth(buf, file);
}

export function decodePth(buf: Buffer, file = "<buffer>"): unknown {
  if (buf.length >= 2 && buf[0] === 0x80 && buf[1] <= 5) {
    throw new PthError(
      `${file}: this is the legacy (pre-1.6) torch.save format, which is not supported; re-save it with ` +
        `PyTorch >= 1.6 (torch.save(torch.load(f), g)) on a machine you trust`,
    );
  }
  if (buf.length < 4 || buf.readUInt32LE(0) !== 0x04034b50) {
    throw new PthError(`${file}: not a PyTorch checkpoint (torch.save writes a zip archive; this file does not start like one)`);
  }
  const entries = zipEntries(buf, file);
  const pkl = entries.find((e) => e.name === "data.pkl" || e.name.endsWith("/data.pkl"));
  if (!pkl) throw new PthError(`${file}: no data.pkl in the archive (not a torch.save checkpoint)`);
  const prefix = pkl.name.slice(0, pkl.name.length - "data.pkl".length);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const bo = byName.get(prefix + "byteorder");
  if (bo && zipRead(buf, bo, file).toString("latin1").trim() !== "little") {
    throw new PthError(`${file}: big-endian checkpoints are not supported`);
  }
  const storages = new Map<string, Storage>();
  const ctx: UnpickleContext = {
    file,
    loadStorage(key, cls, numel) {
      const have = storages.get(key);
      if (have) return have;
      const e = byName.get(`${prefix}data/${key}`);
      if (!e) throw new PthError(`${file}: storage record data/${key} is missing from the archive`);
      const [dtype, size] = STORAGES[cls];
      const bytes = zipRead(buf, e, file);
      // numel from the pickle; the record's length must hold it
      const count = Number.isFinite(numel) && numel >= 0 ? numel : Math.floor(bytes.length / size);
      const s: Storage = { dtype, values: decodeStorage(bytes, dtype, count, `${file}: data/${key}`) };
      storages.set(key, s);
      return s;
    },
  };
  return unpickle(zipRead(buf, pkl, file), ctx);
}

// ------------------------------------------------------------------ state dicts

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

export function weightsFrom(obj: unknown, file: string): PthWeights {
  let sd: PyDict;
  let labels: Int32Array[] | undefined;
  if (obj instanceof PyDict && obj.has("state_dict")) {
    const inner = obj.get("state_dict");
    if (!isTensorDict(inner)) throw new PthError(`${file}: 'state_dict' is not a dict of tensors`);
    sd = inner;
    const L = obj.get("L");
    if (L !== undefined && L !== null) labels = labelsFrom(L, file);
  } else if (isTensorDict(obj)) {
    sd = obj;
  } else {
    const what =
      obj instanceof PyDict ? `a dict with keys ${obj.keys().slice(0, 10).map(String).join(", ")}` : obj instanceof PthTensor ? "a single tensor" : typeof obj;
    throw new PthError(`${file}: no state_dict found (expected a dict of tensors or {state_dict, ...}; got ${what})`);
  }
  const stateDict: StateDict = {};
  const ignored: string[] = [];
  for (const [k0, v] of sd.map) {
    if (typeof k0 !== "string") throw new PthError(`${file}: state_dict key ${String(k0)} is not a string`);
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
    stateDict[k] = { shape: [...t.shape], data: t.toFloat32() };
  }
  return { stateDict, labels, ignored };
}

function labelsFrom(L: unknown, file: string): Int32Array[] {
  const rows: Int32Array[] = [];
  const toI32 = (t: PthTensor, n: number, off: number): Int32Array => {
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

// ------------------------------------------------------------------ files of either kind

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
