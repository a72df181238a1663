// Builders for crafted input files: zip archives (stored or deflated, with
// right or wrong CRCs), torch.save-style pickles of tensor records, PNG
// headers, IDX files. The malicious files of issue 19 are made from these by
// `malicious()` (test/harden_parsers.test.ts and the fuzz driver use them;
// `node .build-ts/bench/fuzz/fixtures.js DIR` writes them to DIR).
import * as zlib from "node:zlib";
import { Prng } from "../../lib/prng";

export interface ZipItem {
  name: string;
  data: Buffer;
  deflate?: boolean;
  /** Declared uncompressed size (default: the real one). */
  size?: number;
  /** CRC-32 to record (default: the real one). */
  crc?: number;
}

/** A zip archive (no zip64), central directory at the end. */
export function zip(items: ZipItem[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let off = 0;
  for (const it of items) {
    const body = it.deflate ? zlib.deflateRawSync(it.data) : it.data;
    const crc = it.crc ?? zlib.crc32(it.data);
    const size = it.size ?? it.data.length;
    const name = Buffer.from(it.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(it.deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(it.deflate ? 8 : 0, 10);
    cd.writeUInt32LE(crc >>> 0, 16);
    cd.writeUInt32LE(body.length, 20);
    cd.writeUInt32LE(size, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(off, 42);
    parts.push(local, name, body);
    central.push(cd, name);
    off += 30 + name.length + body.length;
  }
  const cdBuf = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(items.length, 8);
  eocd.writeUInt16LE(items.length, 10);
  eocd.writeUInt32LE(cdBuf.length, 12);
  eocd.writeUInt32LE(off, 16);
  return Buffer.concat([...parts, cdBuf, eocd]);
}

// ---- pickle pieces (protocol 2)
const op = (...b: number[]) => Buffer.from(b);
export function pInt(v: number): Buffer {
  if (Number.isInteger(v) && v >= 0 && v < 2 ** 31) {
    const b = Buffer.alloc(5);
    b[0] = 0x4a; // BININT
    b.writeInt32LE(v, 1);
    return b;
  }
  const b = Buffer.alloc(10);
  b[0] = 0x8a; // LONG1, 8 bytes
  b[1] = 8;
  b.writeBigInt64LE(BigInt(v), 2);
  return b;
}
export function pStr(s: string): Buffer {
  const d = Buffer.from(s, "utf8");
  const h = Buffer.alloc(5);
  h[0] = 0x58; // BINUNICODE
  h.writeUInt32LE(d.length, 1);
  return Buffer.concat([h, d]);
}
const pGlobal = (m: string, n: string) => Buffer.concat([op(0x63), Buffer.from(`${m}\n${n}\n`)]);
const pTuple = (items: Buffer[]) => Buffer.concat([op(0x28), ...items, op(0x74)]);

export interface TensorRecord {
  key: string;
  storage: string; // record name under data/
  cls?: string; // FloatStorage
  numel: number; // storage elements
  offset?: number;
  size: number[];
  stride: number[];
}

/** data.pkl of an OrderedDict of tensors, as torch.save writes it. */
export function statePickle(tensors: TensorRecord[]): Buffer {
  const parts: Buffer[] = [op(0x80, 2), pGlobal("collections", "OrderedDict"), op(0x29, 0x52)];
  for (const t of tensors) {
    parts.push(
      pStr(t.key),
      pGlobal("torch._utils", "_rebuild_tensor_v2"),
      pTuple([
        pTuple([pStr("storage"), pGlobal("torch", t.cls ?? "FloatStorage"), pStr(t.storage), pStr("cpu"), pInt(t.numel)]),
        op(0x51), // BINPERSID
        pInt(t.offset ?? 0),
        pTuple(t.size.map(pInt)),
        pTuple(t.stride.map(pInt)),
        op(0x89), // False
        pGlobal("collections", "OrderedDict"),
        op(0x29, 0x52),
      ]),
      op(0x52), // REDUCE
      op(0x73), // SETITEM
    );
  }
  parts.push(op(0x2e));
  return Buffer.concat(parts);
}

/** A .pth (zip) with data.pkl and float32 storages (values 0, 1, 2, ...). */
export function pth(tensors: TensorRecord[], storages: Record<string, Buffer> = {}, pickle?: Buffer): Buffer {
  const items: ZipItem[] = [{ name: "archive/data.pkl", data: pickle ?? statePickle(tensors) }];
  const keys = new Map<string, number>();
  for (const t of tensors) keys.set(t.storage, Math.max(keys.get(t.storage) ?? 0, t.numel));
  for (const [k, n] of keys) {
    if (storages[k]) continue;
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) f[i] = i;
    storages[k] = Buffer.from(f.buffer);
  }
  for (const [k, d] of Object.entries(storages)) items.push({ name: `archive/data/${k}`, data: d });
  items.push({ name: "archive/byteorder", data: Buffer.from("little") });
  return zip(items);
}

/** A safetensors file from a raw header object and data bytes. */
export function safetensors(header: unknown, data: Buffer): Buffer {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

/** An 8-bit RGB PNG: signature, IHDR of the given size, one IDAT holding `idat` (zlib data), IEND. */
export function pngFile(width: number, height: number, idat: Buffer): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** A PNG of the given declared size: signature, IHDR, a tiny IDAT, IEND (only the header is real). */
export function pngHeader(width: number, height: number): Buffer {
  return pngFile(width, height, zlib.deflateSync(Buffer.alloc(1024)));
}

/** An IDX file: uint8 data of the given dims. */
export function idx(dims: number[], data: Uint8Array): Buffer {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h.writeUInt32BE(0x00000800 | dims.length, 0);
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([h, Buffer.from(data)]);
}

/** The crafted malicious files of issue 19, by name. */
export function malicious(): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  // .pth: a [1<<30] tensor of stride 0 over one float (was a 4.25 GB tensor)
  out["pth-zero-stride.pth"] = pth([{ key: "w", storage: "0", numel: 1, size: [1 << 30], stride: [0] }]);
  // [2, 2e9] with zero strides (was 4.8 GB)
  out["pth-zero-stride-2d.pth"] = pth([{ key: "w", storage: "0", numel: 1, size: [2, 2e9], stride: [0, 0] }]);
  // a negative stride (gave NaN values)
  out["pth-negative-stride.pth"] = pth([{ key: "w", storage: "0", numel: 4, offset: 3, size: [4], stride: [-1] }]);
  // a tensor reaching past its storage through its offset
  out["pth-offset-past.pth"] = pth([{ key: "w", storage: "0", numel: 4, offset: 2, size: [2, 2], stride: [2, 1] }]);
  // a 300 KB LONG4 integer (ran > 30 s)
  const n = 300_000;
  const long4 = Buffer.alloc(5 + n, 0x7f);
  long4[0] = 0x8b;
  long4.writeUInt32LE(n, 1);
  out["pth-long4.pth"] = pth([], {}, Buffer.concat([op(0x80, 2), long4, op(0x2e)]));
  // 3M APPENDS items (overflowed the JS stack)
  const items = Buffer.alloc(3_000_000 * 2);
  for (let i = 0; i < items.length; i += 2) (items[i] = 0x4b), (items[i + 1] = 1);
  out["pth-appends.pth"] = pth([], {}, Buffer.concat([op(0x80, 2, 0x5d, 0x28), items, op(0x65, 0x2e)]));
  // a deflated record declaring 16 MiB from ~16 KB (a 1000x bomb; 1 GiB from 1 MB in the issue)
  const bombData = Buffer.alloc(16 << 20);
  out["pth-deflate-bomb.pth"] = zip([
    { name: "archive/data.pkl", data: statePickle([{ key: "w", storage: "0", numel: 4 << 20, size: [4 << 20], stride: [1] }]) },
    { name: "archive/data/0", data: bombData, deflate: true },
  ]);
  // a deflated record that inflates past its declared size
  out["pth-deflate-lies.pth"] = zip([
    { name: "archive/data.pkl", data: statePickle([{ key: "w", storage: "0", numel: 4, size: [4], stride: [1] }]) },
    { name: "archive/data/0", data: Buffer.alloc(1 << 20), deflate: true, size: 16 },
  ]);
  // one flipped byte in a storage record (loaded as other weights before)
  const good = pth([{ key: "w", storage: "0", numel: 16, size: [16], stride: [1] }]);
  const flipped = Buffer.from(good);
  const at = flipped.indexOf(Buffer.from("archive/data/0")) + "archive/data/0".length + 5;
  flipped[at] ^= 0x40;
  out["pth-crc.pth"] = flipped;
  // the same storage copied through strides a thousand times
  const many: TensorRecord[] = [];
  for (let i = 0; i < 1000; i++) many.push({ key: `w${i}`, storage: "0", numel: 4096, size: [64, 64], stride: [1, 64] });
  out["pth-copies.pth"] = pth(many);

  // safetensors
  const d16 = Buffer.alloc(16);
  const F = (o: unknown, shape: unknown = [4]) => ({ dtype: "F32", shape, data_offsets: o });
  out["st-negative-offset.safetensors"] = safetensors({ a: F([-16, 0]) }, d16);
  out["st-overlap.safetensors"] = safetensors({ a: F([0, 16]), b: F([0, 16]) }, d16);
  out["st-null-offsets.safetensors"] = safetensors({ a: F(null) }, d16);
  out["st-null-offset.safetensors"] = safetensors({ a: F([null, 16]) }, d16);
  out["st-huge-dims.safetensors"] = safetensors({ a: F([0, 0], [0, 1e300]) }, d16);
  out["st-float-offsets.safetensors"] = safetensors({ a: F([0.5, 16.5]) }, d16);
  out["st-metadata-array.safetensors"] = safetensors({ __metadata__: ["x"], a: F([0, 16]) }, d16);
  out["st-metadata-number.safetensors"] = safetensors({ __metadata__: { k: 5 }, a: F([0, 16]) }, d16);
  out["st-metadata-null.safetensors"] = safetensors({ __metadata__: null, a: F([0, 16]) }, d16);
  out["st-entry-null.safetensors"] = safetensors({ a: null }, d16);

  // images and IDX
  out["png-bomb.png"] = pngHeader(20000, 20000);
  // found by the image fuzz campaign (jimp's decoders): a 10x10 GIF whose first
  // frame is 65535x65535 (ran for minutes, GBs), a BMP declaring a palette of
  // 16M colours in 62 bytes (0.5 s, 130 MB each), a TIFF whose page chain
  // points back at itself (utif walks it forever)
  out["gif-frame-bomb.gif"] = Buffer.from([
    ...Buffer.from("GIF89a"), 10, 0, 10, 0, 0x80, 0, 0, 0, 0, 0, 255, 255, 255,
    0x2c, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 2, 2, 0x4c, 0x01, 0, 0x3b,
  ]);
  // a 4x4 GIF whose LZW codes make omggif's code table loop (the decoder then
  // chases prefixes forever; the fuzz campaign's input 1334 of seed 19 did it
  // in 319 bytes): after a clear code, 7 (beyond the table), 6 (entry 6 := 7),
  // 1 (entry 7 := 6), then 6 chases 6 -> 7 -> 6 -> ...; 3-bit codes, the last
  // one 4-bit, packed from the low bit: 4 | 7 << 3 | 6 << 6 | 1 << 9 | 6 << 12
  out["gif-lzw-loop.gif"] = Buffer.from([
    ...Buffer.from("GIF89a"), 4, 0, 4, 0, 0x80, 0, 0, 0, 0, 0, 255, 255, 255,
    0x2c, 0, 0, 0, 0, 4, 0, 4, 0, 0, 2, 2, 0xbc, 0x63, 0, 0x3b,
  ]);
  const bmp = Buffer.alloc(62);
  bmp.write("BM", 0);
  bmp.writeUInt32LE(62, 2);
  bmp.writeUInt32LE(54, 10);
  bmp.writeUInt32LE(40, 14);
  bmp.writeInt32LE(12, 18);
  bmp.writeInt32LE(255, 22);
  bmp.writeUInt16LE(1, 26);
  bmp.writeUInt16LE(24, 28);
  bmp.writeUInt32LE(1 << 24, 46); // colours in the palette
  out["bmp-palette.bmp"] = bmp;
  const tif = Buffer.alloc(8 + 2 + 2 * 12 + 4);
  tif.write("II", 0);
  tif.writeUInt16LE(42, 2);
  tif.writeUInt32LE(8, 4);
  tif.writeUInt16LE(2, 8);
  [256, 257].forEach((tag, i) => {
    tif.writeUInt16LE(tag, 10 + 12 * i);
    tif.writeUInt16LE(3, 12 + 12 * i);
    tif.writeUInt32LE(1, 14 + 12 * i);
    tif.writeUInt16LE(4, 18 + 12 * i);
  });
  tif.writeUInt32LE(8, 34); // the next page: this one again
  out["tiff-loop.tif"] = tif;
  out["idx-1x3-images-ubyte"] = idx([4, 1, 3], new Uint8Array(12));
  return out;
}

/** n bytes from a seeded stream (fixture pixels). */
export function randomBytes(n: number, rng: Prng): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.nextU32() & 255;
  return a;
}
