// Cluster pictures: one PNG grid per cluster of up to 64 of its images, each
// framed in the colour of its true class when the data has labels, and an
// index.html showing every cluster (size, purity, majority class), clusters
// sorted by purity: what the network grouped together, as in the paper's figure.
import * as fs from "node:fs";
import * as path from "node:path";
import { Jimp } from "jimp";
import { Dataset } from "../data";
import { Prng } from "../prng";
import { InputError } from "../errors";
import { WriteError } from "../safetensors";

/** Write a file; a failure (disk full, ...) names the file and the bytes (WriteError, exit 2). */
function writeOrFail(file: string, data: Buffer | string): void {
  try {
    fs.writeFileSync(file, data);
  } catch (e) {
    const x = e as NodeJS.ErrnoException;
    if (typeof x?.code === "string" && x.syscall) throw new WriteError(file, Buffer.byteLength(data), x);
    throw e;
  }
}

export interface ClusterInfo {
  cluster: number;
  size: number;
  /** Majority-class share (null without labels). */
  purity: number | null;
  majorityClass: number | null;
  /** Dataset indices drawn in the grid, ascending. */
  shown: number[];
  file: string | null; // PNG file name (null for an empty cluster)
}

export interface ClusterPagesOptions {
  /** Images per grid (default 64, 8 per row). */
  perCluster?: number;
  /** Seeds which members are shown when a cluster has more than perCluster. */
  seed?: number;
  /** Title line of the page. */
  title?: string;
}

// Class colours: Tableau 10, then evenly spaced hues.
const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
export function classColour(c: number, numClasses: number): [number, number, number] {
  if (numClasses <= TAB10.length) {
    const h = TAB10[c];
    return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
  }
  // HSL(hue, 70%, 50%) -> RGB
  const hue = (c * 360) / numClasses;
  const s = 0.7,
    l = 0.5;
  const k = (n: number) => (n + hue / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => Math.round(255 * (l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)))));
  return [f(0), f(8), f(4)];
}
export const hex = (rgb: [number, number, number]) => "#" + rgb.map((v) => v.toString(16).padStart(2, "0")).join("");

/** Cell geometry: images scaled (nearest neighbour, integer factor where they are small) into `inner` px, framed by `border` px. */
function geometry(ds: Dataset): { inner: number; border: number; gap: number } {
  let side = Math.max(ds.height, ds.width);
  if (side === 0) for (let i = 0; i < ds.count; i++) side = Math.max(side, ds.heights[i], ds.widths[i]);
  const inner = side < 64 ? side * Math.max(1, Math.floor(64 / side)) : Math.min(side, 96);
  return { inner, border: Math.max(3, Math.round(inner / 24)), gap: 2 };
}

/** Draw one cluster's grid as RGBA. */
async function drawGrid(ds: Dataset, shown: number[], numClasses: number, perRow: number): Promise<{ data: Buffer; width: number; height: number }> {
  const { inner, border, gap } = geometry(ds);
  const cell = inner + 2 * border;
  const cols = Math.min(perRow, shown.length);
  const rows = Math.ceil(shown.length / perRow);
  const width = cols * cell + (cols + 1) * gap;
  const height = rows * cell + (rows + 1) * gap;
  const out = Buffer.alloc(width * height * 4, 255); // white, opaque
  const src = await ds.read(Int32Array.from(shown));
  const C = ds.channels;
  for (let j = 0; j < shown.length; j++) {
    const x0 = gap + (j % perRow) * (cell + gap);
    const y0 = gap + Math.floor(j / perRow) * (cell + gap);
    const truth = ds.labels ? ds.labels[shown[j]] : -1;
    const frame: [number, number, number] = truth >= 0 ? classColour(truth, numClasses) : [160, 160, 160];
    for (let y = 0; y < cell; y++)
      for (let x = 0; x < cell; x++) {
        const o = ((y0 + y) * width + x0 + x) * 4;
        out[o] = frame[0];
        out[o + 1] = frame[1];
        out[o + 2] = frame[2];
      }
    // the image, scaled to fit inner x inner (aspect kept, centred, nearest neighbour)
    const h = src.heights[j],
      w = src.widths[j],
      base = src.offsets[j];
    const scale = inner / Math.max(h, w);
    const dh = Math.max(1, Math.round(h * scale)),
      dw = Math.max(1, Math.round(w * scale));
    const oy = y0 + border + ((inner - dh) >> 1),
      ox = x0 + border + ((inner - dw) >> 1);
    for (let y = 0; y < dh; y++) {
      const sy = Math.min(h - 1, Math.floor(y / scale));
      for (let x = 0; x < dw; x++) {
        const sx = Math.min(w - 1, Math.floor(x / scale));
        const o = ((oy + y) * width + ox + x) * 4;
        for (let c = 0; c < 3; c++) {
          const cc = C === 1 ? 0 : c;
          const p = ds.layout === "HWC" ? base + (sy * w + sx) * C + cc : base + cc * h * w + sy * w + sx;
          out[o + c] = src.data[p];
        }
      }
    }
  }
  return { data: out, width, height };
}

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
}

/**
 * Write cluster-XXXX.png for every non-empty cluster of `labels` (values 0..K-1)
 * and index.html into outDir. Returns the clusters in page order.
 */
export async function writeClusterPages(ds: Dataset, labels: Int32Array, K: number, outDir: string, o: ClusterPagesOptions = {}): Promise<ClusterInfo[]> {
  const per = o.perCluster ?? 64;
  const perRow = 8;
  if (labels.length !== ds.count) throw new InputError(`clusters: ${labels.length} labels for ${ds.count} images`);
  try {
    fs.mkdirSync(outDir, { recursive: true });
    fs.accessSync(outDir, fs.constants.W_OK);
  } catch (e) {
    throw new InputError(`--out ${outDir}: cannot write there (${(e as Error).message.split("\n")[0]})`);
  }
  let numClasses = ds.classes.length;
  if (ds.labels) for (const l of ds.labels) numClasses = Math.max(numClasses, l + 1);
  const members: number[][] = Array.from({ length: K }, () => []);
  for (let i = 0; i < labels.length; i++) {
    const k = labels[i];
    if (!(k >= 0 && k < K)) throw new InputError(`clusters: image ${i} has label ${k}, outside 0..${K - 1}`);
    members[k].push(i);
  }
  const infos: ClusterInfo[] = [];
  for (let k = 0; k < K; k++) {
    const m = members[k];
    let purity: number | null = null,
      majority: number | null = null;
    if (ds.labels && m.length > 0) {
      const counts = new Map<number, number>();
      for (const i of m) counts.set(ds.labels[i], (counts.get(ds.labels[i]) ?? 0) + 1);
      let best = -1,
        bc = -1;
      for (const [c, n] of counts) if (n > bc || (n === bc && c < best)) [best, bc] = [c, n];
      purity = bc / m.length;
      majority = best;
    }
    let shown = m;
    if (m.length > per) {
      const perm = Prng.derive(o.seed ?? 0, 0xc1, k).permutation(m.length);
      shown = Array.from(perm.subarray(0, per), (p) => m[p]).sort((a, b) => a - b);
    }
    infos.push({ cluster: k, size: m.length, purity, majorityClass: majority, shown, file: m.length ? `cluster-${String(k).padStart(4, "0")}.png` : null });
  }
  // purity high to low (no labels: size), then size, then cluster id; empty clusters last
  infos.sort((a, b) => (b.size > 0 ? 1 : 0) - (a.size > 0 ? 1 : 0) || (b.purity ?? 0) - (a.purity ?? 0) || b.size - a.size || a.cluster - b.cluster);
  for (const c of infos) {
    if (!c.file) continue;
    const g = await drawGrid(ds, c.shown, numClasses, perRow);
    const png = await new Jimp(g).getBuffer("image/png");
    writeOrFail(path.join(outDir, c.file), png);
  }
  writeOrFail(path.join(outDir, "index.html"), page(ds, infos, numClasses, o.title ?? "clusters"));
  return infos;
}

function page(ds: Dataset, infos: ClusterInfo[], numClasses: number, title: string): string {
  const className = (c: number) => ds.classes[c] ?? `class ${c}`;
  const legend = ds.labels
    ? Array.from({ length: numClasses }, (_, c) => `<span class="key"><span class="sw" style="background:${hex(classColour(c, numClasses))}"></span>${esc(className(c))}</span>`).join("\n")
    : "<span>no true classes: frames are grey</span>";
  const cards = infos
    .map((c) => {
      const head =
        `<h2>cluster ${c.cluster}</h2><p>${c.size} image${c.size === 1 ? "" : "s"}` +
        (c.purity !== null ? `, purity ${(100 * c.purity).toFixed(1)}%, mostly <b>${esc(className(c.majorityClass as number))}</b>` : "") +
        (c.size > c.shown.length ? ` (${c.shown.length} shown)` : "") +
        `</p>`;
      const img = c.file ? `<img src="${c.file}" alt="cluster ${c.cluster}">` : `<p class="empty">empty</p>`;
      return `<section class="card">${head}${img}</section>`;
    })
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font-family:sans-serif;margin:16px;background:#f4f4f4;color:#222}
h1{font-size:20px;margin:0 0 8px}
.legend{margin:8px 0 16px;display:flex;flex-wrap:wrap;gap:6px 14px;font-size:13px}
.key{display:inline-flex;align-items:center;gap:4px}
.sw{display:inline-block;width:14px;height:14px;border-radius:2px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:16px}
.card{background:#fff;border-radius:6px;padding:8px 10px;box-shadow:0 1px 3px rgba(0,0,0,.15);min-width:0}
.card h2{font-size:15px;margin:0}
.card p{font-size:13px;margin:2px 0 6px}
.card img{display:block;max-width:100%;height:auto;image-rendering:pixelated}
</style></head>
<body>
<h1>${esc(title)}</h1>
<p>${infos.filter((c) => c.size > 0).length} non-empty clusters of ${ds.count} images of ${esc(ds.name)}, sorted by purity. Frame colour = true class:</p>
<div class="legend">${legend}</div>
<div class="grid">
${cards}
</div>
</body></html>
`;
}
