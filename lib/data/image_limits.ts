// Image size from the file's header, before any decoding: PNG, JPEG, GIF,
// BMP, TIFF and WebP. A decoder allocates width x height x 4 bytes whatever
// the file's size (a 389 KB PNG declaring 20000 x 20000 took 4 GB), so the
// pixel count is checked first, for every format. Also: how many images of a
// dataset are smaller than the training input size.

/** Largest image accepted, in pixels (100 MP: 400 MB of RGBA; jimp's own JPEG limit). */
export const MAX_IMAGE_PIXELS = 100_000_000;

export interface ImageHeader {
  format: "png" | "jpeg" | "gif" | "bmp" | "tiff" | "webp";
  width: number;
  height: number;
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

function tiffSize(b: Uint8Array): [number, number] | null {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const le = b[0] === 0x49;
  if (b.length < 8) return null;
  const ifd = dv.getUint32(4, le);
  if (ifd < 8) return null;
  if (ifd + 2 > b.length) return null;
  const n = dv.getUint16(ifd, le);
  let w = -1,
    h = -1;
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + 12 * i;
    if (e + 12 > b.length) break;
    const tag = dv.getUint16(e, le);
    const type = dv.getUint16(e + 2, le);
    const v = type === 3 ? dv.getUint16(e + 8, le) : dv.getUint32(e + 8, le);
    if (tag === 256) w = v;
    if (tag === 257) h = v;
  }
  return w >= 0 && h >= 0 ? [w, h] : null;
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
  if (b.length >= 10 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return { format: "gif", width: b[6] | (b[7] << 8), height: b[8] | (b[9] << 8) };
  if (b.length >= 26 && b[0] === 0x42 && b[1] === 0x4d) return { format: "bmp", width: Math.abs(i32le(18)), height: Math.abs(i32le(22)) };
  if (b.length >= 8 && ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 42) || (b[0] === 0x4d && b[1] === 0x4d && b[3] === 42))) {
    const s = tiffSize(b);
    return s ? { format: "tiff", width: s[0], height: s[1] } : { format: "tiff", width: -1, height: -1 };
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
