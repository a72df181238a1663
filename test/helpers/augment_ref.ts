// Plain float64 reference of the parameterised augmentation (conventions in
// native/include/sln/augment.h), written for obviousness, not speed: per
// output pixel, PIL's separable bilinear filter as two explicit passes, then
// grayscale, the jitter steps in order, flip, normalise.
import type { ImageParams } from "../../lib/data/augment";

export interface RefImage {
  data: Uint8Array;
  offset: number;
  height: number;
  width: number;
  channels: 1 | 3;
  layout: "HWC" | "CHW";
}

function px(im: RefImage, y: number, x: number, c: number): number {
  const { height: H, width: W, channels: C } = im;
  return im.layout === "HWC" ? im.data[im.offset + (y * W + x) * C + c] : im.data[im.offset + (c * H + y) * W + x];
}

/** PIL precompute_coeffs for one axis: taps [start, start + weights.length) per output index. */
function coeffs(inSize: number, in0: number, in1: number, outSize: number): { start: number; weights: number[] }[] {
  const scale = (in1 - in0) / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filterscale;
  const out: { start: number; weights: number[] }[] = [];
  for (let o = 0; o < outSize; o++) {
    const center = in0 + (o + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const w: number[] = [];
    for (let x = xmin; x < xmax; x++) w.push(Math.max(0, 1 - Math.abs((x - center + 0.5) / filterscale)));
    const total = w.reduce((a, b) => a + b, 0);
    out.push({ start: xmin, weights: w.map((v) => (total !== 0 ? v / total : 0)) });
  }
  return out;
}

const gray = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;
const clamp = (x: number) => Math.min(1, Math.max(0, x));

function hue(rgb: number[], f: number): number[] {
  const [r, g, b] = rgb;
  const maxc = Math.max(r, g, b);
  const minc = Math.min(r, g, b);
  const eqc = maxc === minc;
  const cr = maxc - minc;
  const s = cr / (eqc ? 1 : maxc);
  const div = eqc ? 1 : cr;
  const rc = (maxc - r) / div;
  const gc = (maxc - g) / div;
  const bc = (maxc - b) / div;
  let h = maxc === r ? bc - gc : maxc === g ? 2 + rc - bc : 4 + gc - rc;
  h = (((h / 6 + 1) % 1) + 1) % 1;
  h = (((h + f) % 1) + 1) % 1;
  const v = maxc;
  const i = Math.floor(h * 6) % 6;
  const fr = h * 6 - Math.floor(h * 6);
  const p = clamp(v * (1 - s));
  const q = clamp(v * (1 - s * fr));
  const t = clamp(v * (1 - s * (1 - fr)));
  return [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i];
}

/** One image -> (outC, S, S) float64, as the native batch does it. */
export function augmentRef(
  im: RefImage,
  p: ImageParams,
  outH: number,
  outW: number,
  outC: 1 | 3,
  mean: number[],
  std: number[],
): Float64Array {
  const C = im.channels;
  const [x0, y0, x1, y1] = p.box;
  const cx = coeffs(im.width, x0, x1, outW);
  const cy = coeffs(im.height, y0, y1, outH);
  // horizontal pass over every source row, then vertical
  const tmp: number[][][] = [];
  for (let y = 0; y < im.height; y++) {
    const row: number[][] = [];
    for (let o = 0; o < outW; o++) {
      const v: number[] = [];
      for (let c = 0; c < C; c++) {
        let acc = 0;
        cx[o].weights.forEach((w, k) => (acc += w * px(im, y, cx[o].start + k, c)));
        v.push(acc);
      }
      row.push(v);
    }
    tmp.push(row);
  }
  let img: number[][][] = []; // [y][x][c] in [0, 1]
  for (let o = 0; o < outH; o++) {
    const row: number[][] = [];
    for (let x = 0; x < outW; x++) {
      const v: number[] = [];
      for (let c = 0; c < C; c++) {
        let acc = 0;
        cy[o].weights.forEach((w, k) => (acc += w * tmp[cy[o].start + k][x][c]));
        v.push(acc / 255);
      }
      row.push(C === 1 && outC === 3 ? [v[0], v[0], v[0]] : v);
    }
    img.push(row);
  }
  const WC = outC;
  if (p.gray && WC === 3) img = img.map((r) => r.map(([a, b, c]) => { const l = gray(a, b, c); return [l, l, l]; }));
  for (const op of p.order) {
    const f = p.factors[op];
    if (op === 0 && f !== 1) img = img.map((r) => r.map((v) => v.map((x) => clamp(f * x))));
    if (op === 1 && f !== 1) {
      let sum = 0;
      for (const r of img) for (const v of r) sum += WC === 3 ? gray(v[0], v[1], v[2]) : v[0];
      const m = sum / (outH * outW);
      img = img.map((r) => r.map((v) => v.map((x) => clamp(f * x + (1 - f) * m))));
    }
    if (op === 2 && f !== 1 && WC === 3) img = img.map((r) => r.map((v) => { const l = gray(v[0], v[1], v[2]); return v.map((x) => clamp(f * x + (1 - f) * l)); }));
    if (op === 3 && f !== 0 && WC === 3) img = img.map((r) => r.map((v) => hue(v, f)));
  }
  const out = new Float64Array(outC * outH * outW);
  for (let c = 0; c < outC; c++) {
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) {
        const sx = p.flip ? outW - 1 - x : x;
        out[(c * outH + y) * outW + x] = (img[y][sx][c] - mean[c]) / std[c];
      }
    }
  }
  return out;
}
