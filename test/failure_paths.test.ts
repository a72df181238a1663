// Failure paths a user meets first: a closed pipe (`labels | head`), a --subset
// run evaluated/clustered/labelled afterwards, CSV with CRLF and quoted line
// breaks, and the one-line error when the addon cannot load.
import "./helpers/cpu_only";
import { test, before } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";
import { openExperiment } from "../lib/eval/experiment";
import { parseCsv } from "../lib/csv";

const root = packageRoot();
const cli = path.join(root, ".build-ts/lib/cli.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-fail-"));
const exp = path.join(tmp, "subset-run");

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  return spawnSync(process.execPath, [cli, cmd, ...args], { encoding: "utf8", env });
}

before(() => {
  // 300 of 600 synthetic images (--subset), one epoch, 2 label passes
  const r = run("train", ["--exp", exp, "--synthetic-count", "600", "--subset", "300", "--batch-size", "100", "--epochs", "1", "--nopts", "2", "--eval-test", "false", "--threads", "2"]);
  assert.equal(r.status, 0, r.stderr);
});

test("labels into a reader that has gone (labels | head): exit 0, nothing on stderr", async () => {
  const child = spawn(process.execPath, [cli, "labels", "--exp", exp], { stdio: ["ignore", "pipe", "pipe"] });
  // close the read end before the program writes: its write fails with EPIPE
  child.stdout.destroy();
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const code = await new Promise<number | null>((res) => child.on("close", (c) => res(c)));
  assert.equal(stderr, "");
  assert.equal(code, 0);
});

test("a --subset run: labels, eval and clusters rebuild the subset from the checkpoint", () => {
  const e = openExperiment(exp);
  assert.equal(e.meta.flags.subset, 300);
  const l = run("labels", ["--exp", exp]);
  assert.equal(l.status, 0, l.stderr);
  assert.equal(l.stdout.trim().split("\n").length, 301);
  const ev = run("eval", ["--exp", exp, "--json", "--probe-layers", "none"]);
  assert.equal(ev.status, 0, ev.stderr);
  const c = run("clusters", ["--exp", exp, "--out", path.join(tmp, "pages")]);
  assert.equal(c.status, 0, c.stderr);
  assert.ok(fs.existsSync(path.join(tmp, "pages", "index.html")));
});

test("CSV: CRLF rows, quoted commas, quotes and line breaks; labels.csv written that way is read back", () => {
  assert.deepEqual(parseCsv('a,b\r\n"x\r\ny","q""z"\r\n1,\r\n'), [
    ["a", "b"],
    ["x\r\ny", 'q"z'],
    ["1", ""],
  ]);
  assert.deepEqual(parseCsv("\ufeffh\n1"), [["h"], ["1"]]);
  assert.throws(() => parseCsv('a,"b\n'), /unterminated quoted field/);
  // an exported labels.csv saved by a Windows tool (CRLF) with a path holding a line break
  const copy = path.join(tmp, "crlf-run");
  fs.cpSync(exp, copy, { recursive: true });
  const csv = path.join(copy, "labels.csv");
  const rows = fs.readFileSync(csv, "utf8").trimEnd().split("\n");
  rows[1] = rows[1].replace(/^0,,/, '0,"dir/a\r\nb,""c"".png",');
  fs.writeFileSync(csv, rows.join("\r\n") + "\r\n");
  const e = openExperiment(copy);
  assert.equal(e.source.labels, "labels.csv", e.notes.join("; "));
  assert.equal(e.paths![0], 'dir/a\r\nb,"c".png');
  assert.equal(e.labels[0].length, 300);
  assert.equal(e.labels[0][5], Number(rows[6].split(",")[2]));
});

test("addon-load failure: one line naming the missing library and `npm rebuild selflabel-native`, exit 1", () => {
  // a copy of the addon whose DT_NEEDED entry names a library that does not exist
  const load = require("node-gyp-build") as { path(dir: string): string };
  const bytes = fs.readFileSync(load.path(root));
  const at = bytes.indexOf(Buffer.from("libdnnl.so.2\0"));
  assert.ok(at > 0, "the addon names libdnnl.so.2");
  bytes.write("libdnnX", at, "latin1");
  const broken = path.join(tmp, "broken.node");
  fs.writeFileSync(broken, bytes);
  const r = run("info", [], { ...process.env, SELFLABEL_ADDON: broken });
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^selflabel-native: the native addon \(.*broken\.node\) needs libdnnX\.so\.2, which the dynamic loader cannot find; reinstall it with `npm rebuild selflabel-native`/);
  assert.equal(lines[0].split("selflabel-native:").length, 2, "one prefix");
  // the API's error carries its code and the library
  const probe = spawnSync(
    process.execPath,
    ["-e", `try { require(${JSON.stringify(path.join(root, ".build-ts/lib/binding.js"))}).native() } catch (e) { console.log(JSON.stringify({ code: e.code, name: e.name, missing: e.missingLibrary })) }`],
    { encoding: "utf8", env: { ...process.env, SELFLABEL_ADDON: broken } },
  );
  assert.deepEqual(JSON.parse(probe.stdout), { code: "SLN_ADDON_LOAD", name: "AddonLoadError", missing: "libdnnX.so.2" });
});
