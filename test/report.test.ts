// The report page of a run: written by `report --exp`, rendered by headless
// Chromium (screenshot: the plot lines in their colours are on screen) and its
// DOM checked after rendering: one polyline per score with a point per label
// pass, the loss with a point per epoch, the confusion matrix equal to the
// counts of the run's labels against the true classes, a grid per cluster,
// flags and versions. Bad input: exit 2, one line.
import "./helpers/cpu_only";
import { test, before } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { Jimp } from "jimp";
import { packageRoot } from "../lib/binding";
import { openExperiment } from "../lib/eval/experiment";
import { loadSynthetic } from "../lib/data";

const cli = path.join(packageRoot(), ".build-ts/lib/cli.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-report-"));
const exp = path.join(tmp, "run");
const chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => fs.existsSync(p));

function run(cmd: string, args: string[]) {
  return spawnSync(process.execPath, [cli, cmd, ...args], { encoding: "utf8" });
}
function browser(args: string[]) {
  return spawnSync(
    chromium!,
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${path.join(tmp, "profile")}`,
      "--hide-scrollbars",
      ...args,
    ],
    { encoding: "utf8", timeout: 90000, maxBuffer: 64 << 20 },
  );
}

before(() => {
  // 600 synthetic images, 2 epochs, 3 label passes
  const r = run("train", ["--exp", exp, "--synthetic-count", "600", "--batch-size", "100", "--epochs", "2", "--nopts", "3", "--eval-test", "false", "--threads", "2"]);
  assert.equal(r.status, 0, r.stderr);
  const rep = run("report", ["--exp", exp]);
  assert.equal(rep.status, 0, rep.stderr);
  assert.match(rep.stdout, /wrote .*report\/report\.html/);
});

test("report: the rendered DOM has the plots, the confusion matrix of the run's labels, grids, flags and versions", async (t) => {
  if (!chromium) return t.skip("chromium is not installed (apt-get install chromium)");
  const page = path.join(exp, "report", "report.html");
  const r = browser(["--dump-dom", "file://" + page]);
  assert.equal(r.status, 0, r.stderr);
  const dom = r.stdout;
  const svg = (id: string) => new RegExp(`<svg id="${id}"[^]*?</svg>`).exec(dom)?.[0] ?? "";
  const quality = svg("plot-quality");
  const lines = [...quality.matchAll(/<polyline class="series" data-name="([^"]+)"[^>]* points="([^"]+)"/g)];
  assert.deepEqual(
    lines.map((m) => m[1]),
    ["NMI", "ARI", "accuracy"],
  );
  for (const m of lines) assert.equal(m[2].trim().split(" ").length, 3, `${m[1]}: a point per label pass`);
  const loss = [...svg("plot-loss").matchAll(/<polyline class="series"[^>]* points="([^"]+)"/g)];
  assert.equal(loss.length, 1);
  assert.equal(loss[0][1].trim().split(" ").length, 2, "a point per epoch");
  // the matrix: every cluster's row equals the counts of its images' true classes
  const e = openExperiment(exp);
  const ds = await loadSynthetic("train", { count: 600 });
  const table = /<table id="confusion"[^]*?<\/table>/.exec(dom)![0];
  const rows = [...table.matchAll(/<tr><th>(\d+)<\/th>((?:<td[^>]*>\d+<\/td>)+)<\/tr>/g)];
  assert.equal(rows.length, 10);
  for (const row of rows) {
    const k = Number(row[1]);
    const cells = [...row[2].matchAll(/>(\d+)<\/td>/g)].map((m) => Number(m[1]));
    const want = new Array(ds.classes.length).fill(0);
    for (let i = 0; i < 600; i++) if (e.labels[0][i] === k) want[ds.labels![i]]++;
    assert.deepEqual(cells, [...want, want.reduce((a, b) => a + b, 0)], `cluster ${k}`);
  }
  assert.equal((table.match(/class="matched"/g) ?? []).length, 10, "one matched class per cluster (10 clusters, 10 classes)");
  assert.equal((dom.match(/<figure class="card"><img src="cluster-\d{4}\.png"/g) ?? []).length, 10);
  for (const f of fs.readdirSync(path.join(exp, "report")).filter((f) => f.endsWith(".png"))) assert.ok(dom.includes(`src="${f}"`), f);
  const flags = /<table id="flags">[^]*?<\/table>/.exec(dom)![0];
  assert.match(flags, /<th>epochs<\/th><td>2<\/td>/);
  const versions = /<table id="versions">[^]*?<\/table>/.exec(dom)![0];
  assert.match(versions, new RegExp(`<th>node</th><td>${process.version}</td>`));
  assert.match(versions, /<th>cpu<\/th><td>oneDNN \d/);
  assert.doesNotMatch(dom, /<script|https?:\/\//, "static, no network");
});

test("report: screenshot at 1200 px shows both plots' lines and fills the width with grids", async (t) => {
  if (!chromium) return t.skip("chromium is not installed (apt-get install chromium)");
  const shot = path.join(tmp, "report.png");
  browser(["--window-size=1200,1400", `--screenshot=${shot}`, "file://" + path.join(exp, "report", "report.html")]);
  assert.ok(fs.existsSync(shot), "no screenshot");
  const img = await Jimp.read(shot);
  assert.equal(img.bitmap.width, 1200);
  const d = img.bitmap.data;
  const W = img.bitmap.width;
  const count = (rgb: number, x0: number, x1: number, y0: number, y1: number) => {
    let n = 0;
    for (let y = y0; y < y1; y++)
      for (let x = x0; x < x1; x++) {
        const i = 4 * (y * W + x);
        if (((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]) === rgb) n++;
      }
    return n;
  };
  // the quality plot (left half) draws NMI in #1f77b4 and accuracy in #2ca02c; the loss plot (right half) in #d62728
  assert.ok(count(0x1f77b4, 0, 600, 0, 500) > 50, "NMI line");
  assert.ok(count(0x2ca02c, 0, 600, 0, 500) > 50, "accuracy line");
  assert.ok(count(0xd62728, 600, 1200, 0, 500) > 50, "loss line");
  // the grids use the right part of the page too: image pixels (many colours) beyond x = 900 below the matrix
  const seen = new Set<number>();
  for (let y = 900; y < img.bitmap.height; y += 2)
    for (let x = 900; x < 1190; x += 2) {
      const i = 4 * (y * W + x);
      seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
  assert.ok(seen.size > 200, `${seen.size} colours in the right quarter`);
});

test("report: no checkpoints or a bad head: exit 2, one line", () => {
  const empty = path.join(tmp, "empty");
  fs.mkdirSync(empty);
  const a = run("report", ["--exp", empty]);
  assert.equal(a.status, 2);
  assert.match(a.stderr.trim(), /^selflabel-native: --exp .*empty: no checkpoints in/);
  const b = run("report", ["--exp", exp, "--head", "3"]);
  assert.equal(b.status, 2);
  assert.equal(b.stderr.trim().split("\n").length, 1);
});
