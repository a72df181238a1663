// The report of a run: one static HTML page (inline SVG plots, no scripts, no
// network) with NMI / ARI / cluster accuracy of every label pass and the loss
// of every epoch from log.jsonl, the confusion matrix of clusters against the
// true classes, the cluster grids over the full width, the run's flags and the
// versions it ran with. The grids are PNG files beside the page.
import * as fs from "node:fs";
import * as path from "node:path";
import { Experiment } from "./experiment";
import { writeClusterPages, classColour, esc, hex, ClusterInfo } from "./clusters";
import { clusterAccuracy, clusteringScores } from "../metrics";
import type { Dataset } from "../data";
import { InputError } from "../errors";

export interface ReportOptions {
  head?: number;
  title?: string;
}

interface Point {
  x: number;
  y: number;
}
interface Series {
  name: string;
  colour: string;
  points: Point[];
}

/** The records of log.jsonl (unreadable lines skipped: a run killed mid-write leaves one). */
export function readLog(exp: string): Record<string, unknown>[] {
  const file = path.join(exp, "log.jsonl");
  if (!fs.existsSync(file)) return [];
  const out: Record<string, unknown>[] = [];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      /* a torn last line */
    }
  }
  return out;
}

const niceStep = (span: number, ticks: number) => {
  const raw = span / Math.max(1, ticks);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? raw;
};
const num = (v: number) => (Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01) ? v.toExponential(1) : String(+v.toFixed(3)));

/** A line plot with axes, ticks and a legend, as inline SVG. */
export function lineChart(id: string, series: Series[], o: { xLabel: string; yLabel: string; yMin?: number; yMax?: number; width?: number; height?: number }): string {
  const W = o.width ?? 560,
    H = o.height ?? 300,
    L = 56,
    R = 12,
    T = 28,
    B = 40;
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (pts.length === 0) return `<svg id="${id}" class="plot empty" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}"><text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text></svg>`;
  let x0 = Math.min(...pts.map((p) => p.x)),
    x1 = Math.max(...pts.map((p) => p.x));
  let y0 = o.yMin ?? Math.min(...pts.map((p) => p.y)),
    y1 = o.yMax ?? Math.max(...pts.map((p) => p.y));
  if (x1 === x0) (x0 -= 1), (x1 += 1);
  if (y1 === y0) (y0 -= 0.5), (y1 += 0.5);
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const parts: string[] = [];
  const ys = niceStep(y1 - y0, 5);
  for (let v = Math.ceil(y0 / ys) * ys; v <= y1 + 1e-9; v += ys)
    parts.push(`<line class="grid" x1="${L}" x2="${W - R}" y1="${sy(v).toFixed(1)}" y2="${sy(v).toFixed(1)}"/><text x="${L - 6}" y="${(sy(v) + 4).toFixed(1)}" text-anchor="end">${num(v)}</text>`);
  const xs = Math.max(1, niceStep(x1 - x0, 8));
  for (let v = Math.ceil(x0 / xs) * xs; v <= x1 + 1e-9; v += xs)
    parts.push(`<line class="tick" x1="${sx(v).toFixed(1)}" x2="${sx(v).toFixed(1)}" y1="${H - B}" y2="${H - B + 4}"/><text x="${sx(v).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${num(v)}</text>`);
  parts.push(`<line class="axis" x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/><line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${H - B}"/>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  series.forEach((s, i) => {
    const p = s.points.filter((q) => Number.isFinite(q.x) && Number.isFinite(q.y));
    if (p.length === 0) return;
    const d = p.map((q) => `${sx(q.x).toFixed(1)},${sy(q.y).toFixed(1)}`).join(" ");
    parts.push(`<polyline class="series" data-name="${esc(s.name)}" fill="none" stroke="${s.colour}" stroke-width="2" points="${d}"/>`);
    for (const q of p) parts.push(`<circle cx="${sx(q.x).toFixed(1)}" cy="${sy(q.y).toFixed(1)}" r="2.5" fill="${s.colour}"><title>${esc(s.name)}: ${num(q.y)} at ${num(q.x)}</title></circle>`);
    parts.push(`<rect x="${L + 8 + i * 110}" y="8" width="12" height="12" fill="${s.colour}"/><text x="${L + 24 + i * 110}" y="18">${esc(s.name)}</text>`);
  });
  return `<svg id="${id}" class="plot" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img">${parts.join("")}</svg>`;
}

/** Clusters (rows, ordered by the class they were matched to) against true classes (columns). */
async function confusionTable(labels: Int32Array, truth: Int32Array, K: number, classes: string[]): Promise<string> {
  let C = classes.length;
  for (const t of truth) C = Math.max(C, t + 1);
  const m = Array.from({ length: K }, () => new Int32Array(C));
  for (let i = 0; i < labels.length; i++) m[labels[i]][truth[i]]++;
  const acc = await clusterAccuracy(labels, truth);
  const order = Array.from({ length: K }, (_, k) => k).sort((a, b) => (acc.mapping.get(a) ?? C + (acc.majority.get(a) ?? 0)) - (acc.mapping.get(b) ?? C + (acc.majority.get(b) ?? 0)) || a - b);
  const name = (c: number) => classes[c] ?? `class ${c}`;
  const head = `<tr><th>cluster \\ class</th>${Array.from({ length: C }, (_, c) => `<th><span class="sw" style="background:${hex(classColour(c, C))}"></span>${esc(name(c))}</th>`).join("")}<th>size</th></tr>`;
  const rows = order.map((k) => {
    const row = m[k];
    const n = row.reduce((a, b) => a + b, 0);
    const cells = Array.from(row, (v, c) => {
      const f = n ? v / n : 0;
      const matched = acc.mapping.get(k) === c;
      return `<td class="${matched ? "matched" : ""}" style="background:rgba(31,119,180,${f.toFixed(3)});color:${f > 0.5 ? "#fff" : "#222"}" title="${v} of ${n}">${v}</td>`;
    }).join("");
    return `<tr><th>${k}</th>${cells}<td>${n}</td></tr>`;
  });
  return `<table id="confusion" class="confusion">${head}${rows.join("")}</table>
<p class="note">Row = cluster, column = true class, shade = share of the cluster; outlined: the class the cluster is matched to (Hungarian matching, accuracy ${(100 * acc.accuracy).toFixed(1)}%).</p>`;
}

function kv(o: Record<string, unknown>): string {
  return Object.entries(o)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(typeof v === "object" && v !== null ? JSON.stringify(v) : String(v))}</td></tr>`)
    .join("");
}

/**
 * Write report.html and its cluster grids into outDir; returns the page's path.
 * `ds` is the run's training data (its labels, when known, give the matrix).
 */
export async function writeReport(e: Experiment, ds: Dataset, outDir: string, o: ReportOptions = {}): Promise<string> {
  const head = o.head ?? 0;
  const K = e.meta.numClasses[head];
  const labels = e.labels[head];
  const log = readLog(e.exp);
  const infos: ClusterInfo[] = await writeClusterPages(ds, labels, K, outDir, { title: o.title });
  // plots from log.jsonl (the last run's records: a rerun with --no-resume starts a new history)
  let from = 0;
  log.forEach((r, i) => {
    if (r.event === "start") from = i;
  });
  const rec = log.slice(from);
  const passes = rec.filter((r) => r.event === "labels");
  const epochs = rec.filter((r) => r.event === "epoch");
  const q = (r: Record<string, unknown>, key: "nmi" | "ari" | "accuracy") => {
    const s = (r.quality as { nmi: number; ari: number; accuracy: number }[] | null)?.[head];
    if (s) return s[key];
    return key === "nmi" ? ((r.heads as { nmi: number | null }[] | undefined)?.[head]?.nmi ?? NaN) : NaN;
  };
  const xPass = (r: Record<string, unknown>) => Number(r.pass);
  const qualityPlot = lineChart(
    "plot-quality",
    [
      { name: "NMI", colour: "#1f77b4", points: passes.map((r) => ({ x: xPass(r), y: q(r, "nmi") })) },
      { name: "ARI", colour: "#ff7f0e", points: passes.map((r) => ({ x: xPass(r), y: q(r, "ari") })) },
      { name: "accuracy", colour: "#2ca02c", points: passes.map((r) => ({ x: xPass(r), y: q(r, "accuracy") })) },
    ],
    { xLabel: "label pass", yLabel: `head ${head} vs true classes`, yMin: 0, yMax: 1 },
  );
  const lossPlot = lineChart("plot-loss", [{ name: "training loss", colour: "#d62728", points: epochs.map((r) => ({ x: Number(r.epoch), y: Number(r.loss) })) }], {
    xLabel: "epoch",
    yLabel: "mean cross-entropy",
  });
  let summary = `${ds.count} images of ${esc(ds.name)}, ${esc(e.meta.arch)}, ${e.meta.numClasses.length} head${e.meta.numClasses.length > 1 ? "s" : ""}, head ${head}: ${K} clusters, epoch ${e.meta.epoch}`;
  let matrix = `<p class="note">The data has no true classes: no confusion matrix.</p>`;
  if (ds.labels) {
    const s = await clusteringScores(labels, ds.labels);
    const a = await clusterAccuracy(labels, ds.labels);
    summary += `; NMI ${s.nmi.toFixed(3)}, ARI ${s.ari.toFixed(3)}, accuracy ${(100 * a.accuracy).toFixed(1)}%`;
    matrix = await confusionTable(labels, ds.labels, K, ds.classes);
  }
  const start = rec.find((r) => r.event === "start") ?? {};
  const resume = [...rec].reverse().find((r) => r.event === "resume");
  const versions = ((resume?.versions ?? start.versions) as Record<string, unknown> | undefined) ?? { note: "not recorded (a run made before versions were logged)" };
  const title = o.title ?? `${path.basename(path.resolve(e.exp))}: self-labelling report`;
  const grids = infos
    .map((c) => {
      const cls = c.majorityClass !== null ? ds.classes[c.majorityClass] ?? `class ${c.majorityClass}` : null;
      const cap = `cluster ${c.cluster}: ${c.size} image${c.size === 1 ? "" : "s"}` + (c.purity !== null ? `, ${(100 * c.purity).toFixed(1)}% ${esc(String(cls))}` : "");
      return `<figure class="card">${c.file ? `<img src="${c.file}" alt="cluster ${c.cluster}">` : `<p>empty</p>`}<figcaption>${cap}</figcaption></figure>`;
    })
    .join("\n");
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${esc(title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;padding:16px 20px;background:#f4f4f4;color:#222}
h1{font-size:21px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:16px}
.panel{background:#fff;border-radius:6px;padding:10px;box-shadow:0 1px 3px rgba(0,0,0,.15);overflow-x:auto}
svg.plot{width:100%;height:auto;font-size:11px}svg .grid{stroke:#e3e3e3}svg .axis,svg .tick{stroke:#555}
table{border-collapse:collapse;font-size:12px}th,td{padding:3px 6px;border:1px solid #ddd;text-align:right}
.confusion td.matched{outline:2px solid #d62728;outline-offset:-2px}.sw{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.note{font-size:12px;color:#555}
.grids{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:12px}
.card{margin:0;background:#fff;border-radius:6px;padding:6px;box-shadow:0 1px 3px rgba(0,0,0,.15);min-width:0}
.card img{display:block;width:100%;height:auto;image-rendering:pixelated}.card figcaption{font-size:12px;margin-top:4px}
.meta{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}.meta td{text-align:left;word-break:break-all}
</style></head>
<body>
<h1>${esc(title)}</h1>
<p id="summary">${summary}</p>
<div class="plots">
<div class="panel"><h2>Self-labels against the true classes, per label pass</h2>${qualityPlot}</div>
<div class="panel"><h2>Training loss per epoch</h2>${lossPlot}</div>
</div>
<h2>Clusters against classes</h2>
<div class="panel">${matrix}</div>
<h2>Clusters (frame colour = true class; up to 64 images each)</h2>
<div class="grids" id="grids">
${grids}
</div>
<div class="meta">
<div><h2>Flags</h2><table id="flags">${kv(e.meta.flags)}</table></div>
<div><h2>Versions</h2><table id="versions">${kv(versions)}</table></div>
</div>
</body></html>
`;
  const file = path.join(outDir, "report.html");
  try {
    fs.writeFileSync(file, html);
  } catch (err) {
    throw new InputError(`--out ${outDir}: cannot write report.html (${(err as Error).message.split("\n")[0]})`);
  }
  return file;
}
