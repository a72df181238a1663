// The zip container of torch.save files: central directory (zip64 included)
// and entry bytes (stored or deflated). Every entry read is checked against
// the CRC-32 of its central-directory record; inflation stops at the declared
// size (zlib's maxOutputLength), and the caller's budget caps how many bytes
// all inflated entries of one file may take together.
import * as zlib from "node:zlib";
import { PthError } from "./error";

export interface ZipEntry {
  name: string;
  method: number; // 0 stored, 8 deflate
  compressedSize: number;
  size: number;
  localOffset: number;
  crc32: number;
}

/** Bytes a reader may still inflate (shared by every zipRead of one file). */
export interface InflateBudget {
  left: number;
}

/**
 * torch.save stores its records uncompressed; deflated ones appear only in
 * re-zipped files. Real weights deflate by a few percent; 64x is what a file
 * of mostly zeros reaches. Beyond it (a 1 MB record claiming 1 GiB) it is a
 * decompression bomb.
 */
export const MAX_INFLATE_RATIO = 64;
export function inflateBudget(fileBytes: number): InflateBudget {
  return { left: MAX_INFLATE_RATIO * fileBytes + (1 << 20) };
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
    const crc32 = buf.readUInt32LE(p + 16);
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
        if (e + 4 + len > buf.length) throw bad(`zip64 field of ${name} beyond the end of the file`);
        if (size === 0xffffffff) (size = Number(buf.readBigUInt64LE(q))), (q += 8);
        if (compressedSize === 0xffffffff) (compressedSize = Number(buf.readBigUInt64LE(q))), (q += 8);
        if (localOffset === 0xffffffff) localOffset = Number(buf.readBigUInt64LE(q));
      }
      e += 4 + len;
    }
    out.push({ name, method, compressedSize, size, localOffset, crc32 });
    p = eEnd + commentLen;
  }
  return out;
}

/**
 * The bytes of one entry: stored entries as a view, deflated ones inflated
 * (never past the declared size, and within `budget` when given); the CRC-32
 * must match the central directory's.
 */
export function zipRead(buf: Buffer, e: ZipEntry, file = "<buffer>", budget?: InflateBudget): Buffer {
  const bad = (what: string) => new PthError(`${file}: zip entry ${e.name}: ${what}`);
  const p = e.localOffset;
  if (!(p >= 0) || p + 30 > buf.length || buf.readUInt32LE(p) !== 0x04034b50) throw bad("local header missing (corrupt archive)");
  const start = p + 30 + buf.readUInt16LE(p + 26) + buf.readUInt16LE(p + 28);
  if (!(e.compressedSize >= 0) || start + e.compressedSize > buf.length) throw bad("data beyond the end of the file (truncated?)");
  const raw = buf.subarray(start, start + e.compressedSize);
  let out: Buffer;
  if (e.method === 0) {
    if (e.size !== e.compressedSize) throw bad("stored entry with differing sizes");
    out = raw;
  } else if (e.method === 8) {
    if (e.size > MAX_INFLATE_RATIO * e.compressedSize + 4096 || (budget && e.size > budget.left))
      throw bad(`declares ${e.size} bytes inflated from ${e.compressedSize}: refused as a decompression bomb (more than ${MAX_INFLATE_RATIO}x)`);
    if (e.size > 0x7fffffff) throw bad(`declares ${e.size} inflated bytes, more than one record may hold`);
    try {
      out = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw bad(code === "ERR_BUFFER_TOO_LARGE" ? `inflates to more than the declared ${e.size} bytes` : `corrupt deflate data (${code ?? (err as Error).message})`);
    }
    if (out.length !== e.size) throw bad(`inflated to ${out.length} bytes, expected ${e.size}`);
    if (budget) budget.left -= out.length;
  } else {
    throw bad(`compression method ${e.method} is not supported (only stored and deflate)`);
  }
  const crc = zlib.crc32(out) >>> 0;
  if (crc !== e.crc32 >>> 0)
    throw bad(`CRC-32 ${crc.toString(16).padStart(8, "0")} does not match the recorded ${(e.crc32 >>> 0).toString(16).padStart(8, "0")} (corrupt file)`);
  return out;
}
