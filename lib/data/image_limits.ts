// Image size from the file's header, before any decoding: PNG, JPEG, GIF,
// BMP, TIFF and WebP. A decoder allocates width x height x 4 bytes whatever
// the file's size (a 389 KB PNG declaring 20000 x 20000 took 4 GB), so the
// pixel count is checked first, for every format, with what else a decoder
// would allocate from the header alone (a GIF frame larger than its screen, a
// BMP palette larger than the file, every page of a TIFF). Also: how many images of a
// dataset are smaller than the training input size.

/** Largest image accepted, in pixels (100 MP: 400 MB of RGBA; jimp's own JPEG limit). */
export const MAX_IMAGE_PIXELS = 100_000_000;

export interface ImageHeader {
  format: "png" | "jpeg" | "gif" | "bmp" | "tiff" | "webp";
  width: number;
  height: number;
  /** Why the decoder would allocate more than width x height (checked by checkImagePixels), if it would. */
  problem?: string;
  /** TIFF: the pixels of all its pages (each is decoded), when more than the first's. */
  pages?: number;
}

function jpegSize(b: Uint8Array): [number, number] | null {
  let p = 2;
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return null;
    const m = b[p + 1];
    if (m === 0xff) {
      p++; // fill byte
      continue;
    }
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      p += 2; // markers without a length
      continue;
    }
    const len = (b[p + 2] << 8) | b[p + 3];
    // SOF0..SOF15 except DHT (c4), JPG (c8), DAC (cc)
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      if (p + 9 > b.length) return null;
      return [(b[p + 7] << 8) | b[p + 8], (b[p + 5] << 8) | b[p + 6]];
    }
    if (len < 2) return null;
    p += 2 + len;
  }
  return null;
}

/** Most pages (IFDs) a TIFF may have: jimp decodes every page of the chain. */
export const MAX_TIFF_PAGES = 64;

/**
 * Size of a TIFF's first page, after walking the whole page chain as utif
 * does (next-IFD offsets until 0): every page is decoded, so the pixels of
 * all pages count (`total`). null when the chain leaves the file, loops, has
 * more than MAX_TIFF_PAGES pages, or a page's size is not a single SHORT/LONG
 * (utif would loop forever on a chain that points back, or read garbage).
 */
function tiffSize(b: Uint8Array): [number, number, number] | null {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const le = b[0] === 0x49;
  if (b.length < 8) return null;
  let ifd = dv.getUint32(4, le);
  const seen = new Set<number>();
  let first: [number, number] | null = null;
  let total = 0;
  while (ifd !== 0) {
    if (ifd < 8 || ifd + 2 > b.length || seen.has(ifd) || seen.size >= MAX_TIFF_PAGES) return null;
    seen.add(ifd);
    const n = dv.getUint16(ifd, le);
    if (ifd + 2 + 12 * n + 4 > b.length) return null;
    let w = -1,
      h = -1;
    for (let i = 0; i < n; i++) {
      const e = ifd + 2 + 12 * i;
      const tag = dv.getUint16(e, le);
      if (tag !== 256 && tag !== 257) continue;
      const type = dv.getUint16(e + 2, le);
      if ((type !== 3 && type !== 4) || dv.getUint32(e + 4, le) !== 1) return null;
      const v = type === 3 ? dv.getUint16(e + 8, le) : dv.getUint32(e + 8, le);
      if (tag === 256) w = v;
      else h = v;
    }
    if (w >= 0 || h >= 0) {
      if (w < 0 || h < 0) return null;
      first ??= [w, h];
      total += w * h;
    }
    ifd = dv.getUint32(ifd + 2 + 12 * n, le);
  }
  return first ? [first[0], first[1], total] : null;
}

/**
 * The first frame of a GIF (the one jimp decodes), found by walking the
 * blocks as omggif does. The decoder allocates the frame's width x height
 * whatever the screen size (a 35-byte GIF with a 10x10 screen and a
 * 65535x65535 frame ran for minutes and took GBs), so a frame must lie
 * within the screen. null when the blocks cannot be walked to a frame.
 */
function gifFrame(b: Uint8Array): { x: number; y: number; w: number; h: number; data: number } | null {
  const at = (i: number) => (i < b.length ? b[i] : -1);
  let p = 13;
  if (b[10] & 0x80) p += 3 << ((b[10] & 7) + 1); // the global palette
  const subBlocks = (): boolean => {
    for (;;) {
      const n = at(p++);
      if (n < 0) return false;
      if (n === 0) return true;
      p += n;
    }
  };
  while (p < b.length) {
    const block = at(p++);
    if (block === 0x2c) {
      const u16 = (o: number) => Math.max(0, at(p + o)) | (Math.max(0, at(p + o + 1)) << 8); // omggif reads past the end as 0
      const flags = Math.max(0, at(p + 8));
      const data = p + 9 + (flags & 0x80 ? 3 << ((flags & 7) + 1) : 0); // after the local palette: the LZW minimum code size
      return { x: u16(0), y: u16(2), w: u16(4), h: u16(6), data };
    }
    if (block !== 0x21) return null; // the trailer or garbage: no frame
    const label = at(p++);
    if (label === 0xff) {
      // omggif's Netscape test (as it is written: a block size other than 11, or NETSCAPE2.0 with its loop sub-block)
      const netscape = "NETSCAPE2.0".split("").every((c, i) => at(p + 1 + i) === c.charCodeAt(0)) && at(p + 12) === 3 && at(p + 13) === 1 && at(p + 16) === 0;
      if (at(p) !== 0x0b || netscape) p += 17;
      else {
        p += 12;
        if (!subBlocks()) return null;
      }
    } else if (label === 0xf9) {
      if (at(p) !== 4 || at(p + 5) !== 0) return null;
      p += 6;
    } else if (label === 0xfe) {
      if (!subBlocks()) return null;
    } else return null;
  }
  return null;
}

/**
 * Whether the LZW data of a GIF frame (starting at its minimum code size)
 * would make omggif's decoder loop forever. omggif builds its code table
 * without checking codes: a code above the next free one is taken as a prefix
 * and, after a clear code, entries left from before the clear are still
 * followed, so the prefix chain it chases to expand a code can become a cycle
 * (fuzz input 1334 of seed 19: a 319-byte GIF that ran for minutes). This
 * replays omggif's code reading and table updates (prefixes only, no pixels)
 * and reports a chase longer than the table, which only a cycle can make.
 * It stops where omggif stops (end of data, end-of-information, the frame
 * full), so its cost is bounded like the decode's: at most 4096 steps per
 * code, and no chase is longer than the pixels it would write.
 */
export function gifLzwLoops(b: Uint8Array, data: number, pixels: number): boolean {
  const byte = (i: number) => (i < b.length ? b[i] : 0);
  const minCodeSize = byte(data);
  if (minCodeSize > 11) return false; // no code can chase: every code is below the clear code
  const clear = 1 << minCodeSize,
    eoi = clear + 1;
  const prefix = new Int32Array(4096);
  let p = data + 1,
    sub = b[p++] ?? 0, // undefined past the end: omggif's walk already refused that file
    next = eoi + 1,
    size = minCodeSize + 1,
    mask = (1 << size) - 1,
    cur = 0,
    shift = 0,
    out = 0,
    prev = -1;
  for (;;) {
    while (shift < 16 && sub !== 0) {
      cur |= byte(p++) << shift;
      shift += 8;
      sub = sub === 1 ? byte(p++) : sub - 1;
    }
    if (shift < size) return false;
    const code = cur & mask;
    cur >>= size;
    shift -= size;
    if (code === clear) {
      next = eoi + 1;
      size = minCodeSize + 1;
      mask = (1 << size) - 1;
      prev = -1;
      continue;
    }
    if (code === eoi) return false;
    const chased = code < next ? code : prev;
    let length = 0;
    for (let c = chased; c > clear; c = prefix[c]) if (++length > 4096) return true;
    out += length + 1 + (chased !== code ? 1 : 0);
    if (out > pixels) return false;
    if (prev >= 0 && next < 4096) {
      prefix[next++] = prev;
      if (next >= mask + 1 && size < 12) (size++, (mask = (mask << 1) | 1));
    }
    prev = code;
  }
}

function webpSize(b: Uint8Array): [number, number] | null {
  const t = String.fromCharCode(b[12], b[13], b[14], b[15]);
  if (t === "VP8X" && b.length >= 30) return [1 + (b[24] | (b[25] << 8) | (b[26] << 16)), 1 + (b[27] | (b[28] << 8) | (b[29] << 16))];
  if (t === "VP8L" && b.length >= 25) {
    const bits = b[21] | (b[22] << 8) | (b[23] << 16) | (b[24] << 24);
    return [1 + (bits & 0x3fff), 1 + ((bits >>> 14) & 0x3fff)];
  }
  if (t === "VP8 " && b.length >= 30) return [(b[26] | (b[27] << 8)) & 0x3fff, (b[28] | (b[29] << 8)) & 0x3fff];
  return null;
}

/**
 * Format and size from the first bytes of an image file; null when the
 * signature is none of these. A known signature whose size cannot be read
 * gives -1 x -1 (refused by checkImagePixels: no decoder runs unbounded).
 */
export function imageHeader(b: Uint8Array): ImageHeader | null {
  const u32be = (o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  const i32le = (o: number) => b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
  if (b.length >= 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return { format: "png", width: u32be(16), height: u32be(20) };
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    const s = jpegSize(b);
    return s ? { format: "jpeg", width: s[0], height: s[1] } : { format: "jpeg", width: -1, height: -1 };
  }
  if (b.length >= 10 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) {
    const h: ImageHeader = { format: "gif", width: b[6] | (b[7] << 8), height: b[8] | (b[9] << 8) };
    const f = gifFrame(b);
    if (f && (f.x + f.w > h.width || f.y + f.h > h.height)) h.problem = `its first frame (${f.w}x${f.h} at ${f.x},${f.y}) does not fit its ${h.width}x${h.height} screen`;
    else if (f && gifLzwLoops(b, f.data, f.w * f.h)) h.problem = "its first frame's LZW codes refer to table entries that loop (corrupt data)";
    return h;
  }
  if (b.length >= 26 && b[0] === 0x42 && b[1] === 0x4d) {
    const h: ImageHeader = { format: "bmp", width: Math.abs(i32le(18)), height: Math.abs(i32le(22)) };
    // bmp-ts reads the width unsigned (a negative one allocates GBs) and
    // allocates a palette of the declared colour count before reading it
    const headerSize = i32le(14) >>> 0,
      bpp = b.length >= 30 ? b[28] | (b[29] << 8) : 0,
      colors = b.length >= 50 ? i32le(46) >>> 0 : 0;
    const palette = colors > 0 ? colors : bpp <= 8 ? 2 ** bpp : 0;
    if (i32le(18) < 0) h.problem = `its width is negative (${i32le(18)})`;
    else if (14 + headerSize + 4 * palette > b.length) h.problem = `its palette of ${palette} colours is larger than the file (${b.length} bytes)`;
    return h;
  }
  if (b.length >= 8 && ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 42) || (b[0] === 0x4d && b[1] === 0x4d && b[3] === 42))) {
    const s = tiffSize(b);
    if (!s) return { format: "tiff", width: -1, height: -1 };
    const h: ImageHeader = { format: "tiff", width: s[0], height: s[1] };
    if (s[2] > s[0] * s[1]) h.pages = s[2];
    return h;
  }
  if (b.length >= 16 && String.fromCharCode(b[0], b[1], b[2], b[3]) === "RIFF" && String.fromCharCode(b[8], b[9], b[10], b[11]) === "WEBP") {
    const s = webpSize(b);
    return s ? { format: "webp", width: s[0], height: s[1] } : { format: "webp", width: -1, height: -1 };
  }
  return null;
}

/**
 * Throw (a one-line reason) when the header declares more than `maxPixels`
 * pixels or an empty image; call before decoding. Unknown formats pass (the
 * decoder refuses them).
 */
export function checkImagePixels(b: Uint8Array, maxPixels = MAX_IMAGE_PIXELS): ImageHeader | null {
  const h = imageHeader(b);
  if (!h) return null;
  if (h.width < 0 || h.height < 0) throw new Error(`cannot read the image size from the ${h.format} header`);
  if (h.width < 1 || h.height < 1) throw new Error(`${h.format} header declares a ${h.width}x${h.height} image`);
  if (h.problem) throw new Error(`${h.format} header: ${h.problem} (not decoded)`);
  if (h.pages !== undefined && h.pages > maxPixels)
    throw new Error(`tiff header declares pages of ${(h.pages / 1e6).toFixed(0)} MP in all, above the ${maxPixels / 1e6} MP limit (not decoded)`);
  if (h.width * h.height > maxPixels)
    throw new Error(`${h.format} header declares ${h.width}x${h.height} = ${((h.width * h.height) / 1e6).toFixed(0)} MP, above the ${maxPixels / 1e6} MP limit (not decoded)`);
  return h;
}

/** Images of a dataset with a side below `size` (they would be upscaled), with the smallest one. */
export function smallImages(ds: { count: number; height: number; width: number; heights: Int32Array; widths: Int32Array }, size: number): { count: number; height: number; width: number; index: number } {
  if (ds.height > 0 && ds.width > 0) {
    const small = ds.height < size || ds.width < size;
    return { count: small ? ds.count : 0, height: ds.height, width: ds.width, index: 0 };
  }
  let count = 0,
    index = -1,
    least = Infinity;
  for (let i = 0; i < ds.count; i++) {
    const m = Math.min(ds.heights[i], ds.widths[i]);
    if (m < size) count++;
    if (m < least) (least = m), (index = i);
  }
  return { count, height: index >= 0 ? ds.heights[index] : 0, width: index >= 0 ? ds.widths[index] : 0, index };
}
