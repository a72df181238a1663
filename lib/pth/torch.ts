// torch.save files: the zip's data.pkl unpickled with torch's globals
// (tensor rebuild functions, storage classes, OrderedDict, nothing else) and
// its storages read from the data/<key> records.
//
// Memory bound (tested in test/harden_parsers.test.ts and by the fuzz driver):
// besides the file's bytes, reading one allocates at most
//   inflated records  <= their declared sizes, and <= 64 x the file + 1 MiB
//                        (zip.ts: deflated records only; torch.save stores)
//   storages          <= the records (float16/bfloat16 widen to 2x)
//   strided copies    <= the storages' elements (rebuildTensor)
//   float32 weights   <= the bytes of the buffers they come from (weights.ts)
//   pickle values     <= 32 x the pickle's bytes (pickle.ts: O(1) per opcode)
// so peak memory is a small multiple of the output (the weights, which are
// the storages) plus 32 x the pickle, plus a constant; a tensor can never be
// larger than its storage (no stride-0 or overlapping expansion).
import * as fs from "node:fs";
import { PthError } from "./error";
import { zipEntries, zipRead, inflateBudget } from "./zip";
import { unpickle, PyDict, PickleContext } from "./pickle";

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

export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

interface UnpickleContext {
  file: string;
  loadStorage(key: string, storageClass: string, numel: number): Storage;
  /** Elements of all storages read so far, and elements copied into strided tensors (at most as many). */
  storageElements: number;
  copiedElements: number;
}

const isCount = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;

/**
 * _rebuild_tensor_v2(storage, offset, size, stride, ...). Checked before any
 * allocation: offset, sizes and strides are non-negative integers (one stride
 * per dimension), the tensor's extent offset + sum((size-1)*stride) lies in
 * its storage, and it has no more elements than its storage (no overlapping
 * strides: a 1-element storage cannot become a [1<<30] tensor). Contiguous
 * tensors are views of the storage; strided ones are copied, and all copies
 * of a file together may not exceed the elements of its storages.
 */
function rebuildTensor(ctx: UnpickleContext, args: unknown[]): PthTensor {
  const [storage, offset, size, stride] = args as [Storage, unknown, unknown[], unknown[]];
  if (!storage || !storage.values || !Array.isArray(size) || !Array.isArray(stride) || typeof offset !== "number") {
    throw new PthError(`${ctx.file}: malformed tensor record in the pickle`);
  }
  const bad = (what: string): never => {
    throw new PthError(`${ctx.file}: a tensor record ${what}`);
  };
  if (size.length !== stride.length || size.length > 64) bad(`has ${size.length} sizes and ${stride.length} strides`);
  if (!isCount(offset)) bad(`has storage offset ${offset}`);
  if (!size.every(isCount)) bad(`has size [${size.slice(0, 8).map(String)}] (sizes must be non-negative integers)`);
  if (!stride.every(isCount)) bad(`has stride [${stride.slice(0, 8).map(String)}] (strides must be non-negative integers)`);
  const dims = size as number[],
    strides = stride as number[];
  const src = storage.values;
  let numel = 1;
  for (const d of dims) numel *= d;
  if (numel > src.length) bad(`of shape [${dims}] has ${numel} elements, more than its storage's ${src.length} (overlapping strides are not supported)`);
  if (numel > 0) {
    let maxIndex = offset;
    for (let d = 0; d < dims.length; d++) maxIndex += (dims[d] - 1) * strides[d];
    if (!(maxIndex < src.length)) bad(`of shape [${dims}], stride [${strides}] and offset ${offset} reaches past its storage of ${src.length} elements`);
  }
  const Ctor = src.constructor as new (n: number) => typeof src;
  // contiguous fast path; general strides otherwise
  let contiguous = true;
  for (let d = dims.length - 1, want = 1; d >= 0; d--) {
    if (dims[d] !== 1 && strides[d] !== want) contiguous = false;
    want *= dims[d];
  }
  if (contiguous) {
    // a view: no copy of large weights (the storage is ours, read-only use)
    return new PthTensor(storage.dtype, [...dims], (src as Float32Array).subarray(offset, offset + numel));
  }
  ctx.copiedElements += numel;
  if (ctx.copiedElements > ctx.storageElements) bad(`makes the strided copies of this file exceed the ${ctx.storageElements} elements of its storages`);
  const out = new Ctor(numel);
  const idx = new Array(dims.length).fill(0);
  for (let i = 0; i < numel; i++) {
    let p = offset;
    for (let d = 0; d < dims.length; d++) p += idx[d] * strides[d];
    (out as Float32Array)[i] = (src as Float32Array)[p];
    for (let d = dims.length - 1; d >= 0; d--) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
  }
  return new PthTensor(storage.dtype, [...dims], out);
}

/** The pickle context of a torch.save file: allowed globals, their calls, storages. */
function torchContext(ctx: UnpickleContext): PickleContext {
  return {
    file: ctx.file,
    global(module: string, name: string): PyGlobal {
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
    },
    call(fn: unknown, args: unknown, fail: (what: string) => never): unknown {
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
    },
    persistentLoad(pid0: unknown, fail: (what: string) => never): unknown {
      // ('storage', storage class, key, location, numel)
      const pid = pid0 as unknown[];
      if (!Array.isArray(pid) || pid[0] !== "storage" || !(pid[1] instanceof PyGlobal) || typeof pid[2] !== "string") {
        fail("persistent id is not a torch storage record");
      }
      const cls = (pid[1] as PyGlobal).name;
      if (!STORAGES[cls]) fail(`storage class ${cls} is not supported`);
      return ctx.loadStorage(pid[2] as string, cls, Number(pid[4]));
    },
  };
}

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
  try {
    return decodePthUnchecked(buf, file);
  } catch (e) {
    // a Buffer read past the end somewhere in a corrupt archive: still a bad file, named
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ERR_OUT_OF_RANGE" || code === "ERR_BUFFER_OUT_OF_BOUNDS") throw new PthError(`${file}: corrupt archive (${(e as Error).message.split("\n")[0]})`);
    throw e;
  }
}

function decodePthUnchecked(buf: Buffer, file: string): unknown {
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
  const budget = inflateBudget(buf.length);
  const bo = byName.get(prefix + "byteorder");
  if (bo && zipRead(buf, bo, file, budget).toString("latin1").trim() !== "little") {
    throw new PthError(`${file}: big-endian checkpoints are not supported`);
  }
  const storages = new Map<string, Storage>();
  const ctx: UnpickleContext = {
    file,
    storageElements: 0,
    copiedElements: 0,
    loadStorage(key, cls, numel) {
      const have = storages.get(key);
      if (have) return have;
      const e = byName.get(`${prefix}data/${key}`);
      if (!e) throw new PthError(`${file}: storage record data/${key} is missing from the archive`);
      const [dtype, size] = STORAGES[cls];
      const bytes = zipRead(buf, e, file, budget);
      // numel from the pickle; the record's length must hold it
      if (!isCount(numel) && !Number.isNaN(numel)) throw new PthError(`${file}: storage data/${key} has element count ${numel}`);
      const count = isCount(numel) ? numel : Math.floor(bytes.length / size);
      const s: Storage = { dtype, values: decodeStorage(bytes, dtype, count, `${file}: data/${key}`) };
      storages.set(key, s);
      ctx.storageElements += count;
      return s;
    },
  };
  return unpickle(zipRead(buf, pkl, file, budget), torchContext(ctx));
}

