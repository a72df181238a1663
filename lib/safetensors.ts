// safetensors reader/writer (https://github.com/huggingface/safetensors):
// 8-byte little-endian header length, a JSON header
// { name: { dtype, shape, data_offsets: [begin, end] }, __metadata__: { k: string } },
// then the raw little-endian data. Writes are atomic: temporary file in the
// same directory, fsync, rename, fsync of the directory; a process killed at
// any moment leaves either the old file or the complete new one.
import * as fs from "node:fs";
import * as path from "node:path";
import * as crypto from "node:crypto";

export type DType = "F32" | "F64" | "I32" | "I64" | "U8";
export type TypedData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

export interface NamedTensor {
  shape: number[];
  data: TypedData;
}

const DTYPE_OF = new Map<Function, DType>([
  [Float32Array, "F32"],
  [Float64Array, "F64"],
  [Int32Array, "I32"],
  [BigInt64Array, "I64"],
  [Uint8Array, "U8"],
]);
const SIZE: Record<DType, number> = { F32: 4, F64: 8, I32: 4, I64: 8, U8: 1 };

export class SafetensorsError extends Error {
  readonly exitCode = 2;
  readonly code: string = "SLN_BAD_SAFETENSORS";
  constructor(file: string, what: string) {
    super(`${file}: not a valid safetensors file (${what})`);
    this.name = "SafetensorsError";
  }
}

/** Serialise tensors (sorted by name) and string metadata. */
export function encode(tensors: Record<string, NamedTensor>, metadata: Record<string, string> = {}): Buffer {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const n of names) {
    const t = tensors[n];
    const dtype = DTYPE_OF.get(t.data.constructor);
    if (!dtype) throw new TypeError(`safetensors: ${n}: unsupported array type ${t.data.constructor.name}`);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new RangeError(`safetensors: ${n}: shape [${t.shape}] has ${count} values, data has ${t.data.length}`);
    header[n] = { dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // pad the header with spaces to a multiple of 8 so the data is aligned
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const hbuf = Buffer.from(json, "utf8");
  const out = Buffer.alloc(8 + hbuf.length + off);
  out.writeBigUInt64LE(BigInt(hbuf.length), 0);
  hbuf.copy(out, 8);
  let p = 8 + hbuf.length;
  for (const n of names) {
    const d = tensors[n].data;
    Buffer.from(d.buffer, d.byteOffset, d.byteLength).copy(out, p);
    p += d.byteLength;
  }
  return out;
}

export interface TensorEntry {
  dtype: DType;
  shape: number[];
  /** Byte range within the data section. */
  begin: number;
  end: number;
}

export interface Header {
  entries: Record<string, TensorEntry>;
  metadata: Record<string, string>;
  /** Offset of the data section in the file. */
  base: number;
}

/**
 * Parse and validate the header held in `head` (the file's first bytes, at
 * least 8 + header length) against the whole file's length: every tensor's
 * byte range must lie inside the file, so a truncated file is refused here.
 */
function parseHeader(head: Buffer, fileLength: number, file: string): Header {
  if (fileLength < 8 || head.length < 8)
    throw new SafetensorsError(file, `${fileLength} bytes, shorter than the 8-byte header length`);
  const hlen = head.readBigUInt64LE(0);
  if (hlen > BigInt(fileLength - 8)) throw new SafetensorsError(file, `header length ${hlen} exceeds the file (truncated?)`);
  let header: Record<string, any>;
  try {
    header = JSON.parse(head.subarray(8, 8 + Number(hlen)).toString("utf8"));
  } catch {
    throw new SafetensorsError(file, "header is not JSON");
  }
  if (!header || typeof header !== "object" || Array.isArray(header)) throw new SafetensorsError(file, "header is not an object");
  const base = 8 + Number(hlen);
  const dataLen = fileLength - base;
  const entries: Record<string, TensorEntry> = {};
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === "__metadata__") {
      // a map of strings to strings, nothing else
      if (!v || typeof v !== "object" || Array.isArray(v) || !Object.values(v).every((x) => typeof x === "string"))
        throw new SafetensorsError(file, "__metadata__ is not a map of strings");
      metadata = v as Record<string, string>;
      continue;
    }
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new SafetensorsError(file, `${name}: entry is not an object`);
    const dtype = v.dtype as DType;
    if (typeof dtype !== "string" || !Object.prototype.hasOwnProperty.call(SIZE, dtype))
      throw new SafetensorsError(file, `${name}: unsupported dtype ${String(v.dtype)}`);
    const shape = v.shape as number[];
    const offs = v.data_offsets as number[];
    // every dimension a safe integer and the element count below 2^53:
    // [0, 1e300] has 0 elements but no real tensor has such a dimension
    if (!Array.isArray(shape) || shape.length > 64 || !shape.every((s) => Number.isSafeInteger(s) && s >= 0))
      throw new SafetensorsError(file, `${name}: bad shape ${JSON.stringify(shape)?.slice(0, 80)}`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || !(offs[0] <= offs[1]) || offs[1] > dataLen)
      throw new SafetensorsError(file, `${name}: data offsets ${JSON.stringify(offs)?.slice(0, 80)} outside the ${dataLen}-byte data (truncated?)`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (offs[1] - offs[0] !== count * SIZE[dtype])
      throw new SafetensorsError(file, `${name}: ${offs[1] - offs[0]} bytes for shape [${shape}] of ${dtype}`);
    entries[name] = { dtype, shape, begin: offs[0], end: offs[1] };
  }
  // no two tensors share bytes (empty tensors take none)
  const ranges = Object.entries(entries)
    .filter(([, e]) => e.end > e.begin)
    .sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < ranges.length; i++)
    if (ranges[i][1].begin < ranges[i - 1][1].end)
      throw new SafetensorsError(file, `${ranges[i - 1][0]} and ${ranges[i][0]} overlap in the data section`);
  return { entries, metadata, base };
}

export function decode(buf: Buffer, file = "<buffer>"): { tensors: Record<string, NamedTensor>; metadata: Record<string, string> } {
  const { entries, metadata, base } = parseHeader(buf, buf.length, file);
  const tensors: Record<string, NamedTensor> = {};
  for (const [name, e] of Object.entries(entries)) {
    // copy into a fresh, aligned buffer
    const bytes = new Uint8Array(e.end - e.begin);
    bytes.set(buf.subarray(base + e.begin, base + e.end));
    let data: TypedData;
    switch (e.dtype) {
      case "F32": data = new Float32Array(bytes.buffer); break;
      case "F64": data = new Float64Array(bytes.buffer); break;
      case "I32": data = new Int32Array(bytes.buffer); break;
      case "I64": data = new BigInt64Array(bytes.buffer); break;
      default: data = bytes;
    }
    tensors[name] = { shape: e.shape, data };
  }
  return { tensors, metadata };
}

/**
 * The header of a file without reading its data: names, shapes, metadata.
 * Validated as load() validates it, truncation included.
 */
export function readHeader(file: string): Header {
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const lenBuf = Buffer.alloc(Math.min(8, size));
    fs.readSync(fd, lenBuf, 0, lenBuf.length, 0);
    if (lenBuf.length < 8) return parseHeader(lenBuf, size, file); // throws: too short
    const hlen = lenBuf.readBigUInt64LE(0);
    if (hlen > BigInt(size - 8)) return parseHeader(lenBuf, size, file); // throws: exceeds the file
    const head = Buffer.alloc(8 + Number(hlen));
    fs.readSync(fd, head, 0, head.length, 0);
    return parseHeader(head, size, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** A write that failed for a reason outside the program (disk full, read-only, permissions): exit 2. */
export class WriteError extends Error {
  readonly exitCode = 2;
  readonly code: string;
  constructor(file: string, bytes: number, e: NodeJS.ErrnoException) {
    const why =
      e.code === "ENOSPC" || e.code === "EDQUOT"
        ? `no space left on the device (${e.code}) to write ${bytes} bytes; free some space or choose another directory`
        : `cannot write ${bytes} bytes (${e.code ?? e.message})`;
    super(`${file}: ${why}`);
    this.name = "WriteError";
    this.code = e.code ?? "EIO";
  }
}

/** Write atomically: tmp file + fsync + rename + directory fsync. Failures name the file and the bytes. */
export function writeFileAtomic(file: string, data: Buffer | string): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`);
  const bytes = typeof data === "string" ? Buffer.byteLength(data) : data.length;
  const fail = (e: unknown): never => {
    const x = e as NodeJS.ErrnoException;
    if (typeof x?.code === "string" && x.syscall) throw new WriteError(file, bytes, x);
    throw e;
  };
  let fd: number;
  try {
    fd = fs.openSync(tmp, "w");
  } catch (e) {
    return fail(e);
  }
  try {
    fs.writeFileSync(fd, data); // loops until every byte is written
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    return fail(e);
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    return fail(e);
  }
  try {
    const dfd = fs.openSync(dir, "r");
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  } catch {
    /* directories cannot be fsynced on some filesystems; the rename is still atomic */
  }
}

export function save(file: string, tensors: Record<string, NamedTensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(file, encode(tensors, metadata));
}

export function load(file: string): { tensors: Record<string, NamedTensor>; metadata: Record<string, string> } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new SafetensorsIoError(file, e as NodeJS.ErrnoException);
  }
  return decode(buf, file);
}

/** A file that cannot be read: the path and the system's reason. */
export class SafetensorsIoError extends Error {
  readonly exitCode = 2;
  readonly code: string;
  constructor(file: string, e: NodeJS.ErrnoException) {
    super(`${file}: cannot read (${e.code ?? e.message})`);
    this.name = "SafetensorsIoError";
    this.code = e.code ?? "EIO";
  }
}
