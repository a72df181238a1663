// The install step in a git clone (`npm ci` runs scripts/install.js): an
// addon in build/Release built from other native sources than the checkout's
// (a pull changed native/) is rebuilt, not loaded; one built from these
// sources is used without a rebuild. The "build" here is a stand-in node-gyp
// (npm_config_node_gyp, which npm sets to its node-gyp) that logs the call and
// puts this checkout's addon in build/Release, so the test takes seconds.
import { test, before } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";

const root = packageRoot();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-install-stale-"));
const clone = path.join(tmp, "clone");
const log = path.join(tmp, "gyp.log");
const fakeGyp = path.join(tmp, "fake-node-gyp.js");
let addon = "";

before(() => {
  addon = (require("node-gyp-build") as { path(d: string): string }).path(root);
  fs.mkdirSync(path.join(clone, "scripts"), { recursive: true });
  for (const f of ["package.json", "binding.gyp", "scripts/install.js", "scripts/source-hash.js"]) fs.copyFileSync(path.join(root, f), path.join(clone, f));
  fs.cpSync(path.join(root, "native"), path.join(clone, "native"), { recursive: true });
  fs.symlinkSync(path.join(root, "node_modules"), path.join(clone, "node_modules"));
  fs.writeFileSync(
    fakeGyp,
    `const fs = require("fs"), path = require("path");
fs.appendFileSync(${JSON.stringify(log)}, process.argv.slice(2).join(" ") + "\\n");
fs.rmSync(path.join(process.cwd(), "build"), { recursive: true, force: true });
fs.mkdirSync(path.join(process.cwd(), "build", "Release"), { recursive: true });
fs.copyFileSync(${JSON.stringify(addon)}, path.join(process.cwd(), "build", "Release", "selflabel_native.node"));
`,
  );
});

function install(): { out: string; builds: number } {
  const before = fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").filter(Boolean).length : 0;
  const r = spawnSync(process.execPath, [path.join(clone, "scripts", "install.js")], {
    cwd: clone,
    encoding: "utf8",
    env: { ...process.env, npm_config_node_gyp: fakeGyp, SELFLABEL_BUILD_FROM_SOURCE: "" },
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const after = fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").filter(Boolean).length : 0;
  return { out: r.stdout + r.stderr, builds: after - before };
}

/** Put a built addon (this checkout's) in the clone's build/Release with the given mtime and no record. */
function builtByHand(mtime: Date): string {
  const dir = path.join(clone, "build", "Release");
  fs.rmSync(path.join(clone, "build"), { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const f = path.join(dir, "selflabel_native.node");
  fs.copyFileSync(addon, f);
  fs.utimesSync(f, mtime, mtime);
  return f;
}

function ageSources(to: Date): void {
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else fs.utimesSync(p, to, to);
    }
  };
  walk(path.join(clone, "native"));
  fs.utimesSync(path.join(clone, "binding.gyp"), to, to);
}

test("an addon built from these sources is used, and one built from other sources is rebuilt", () => {
  const stamp = path.join(clone, "build", "Release", "sources.sha256");
  // a build by hand (no record) newer than every source: used, and its sources recorded
  ageSources(new Date(Date.now() - 3600_000));
  builtByHand(new Date());
  let r = install();
  assert.equal(r.builds, 0, r.out);
  assert.match(r.out, /using build\/Release\/selflabel_native\.node/);
  const hash = spawnSync(process.execPath, [path.join(clone, "scripts", "source-hash.js"), clone], { encoding: "utf8" }).stdout.trim();
  assert.match(hash, /^[0-9a-f]{64}$/);
  assert.equal(fs.readFileSync(stamp, "utf8").trim(), hash);
  // nothing changed: no rebuild
  assert.equal(install().builds, 0);

  // a pull changed a native source (its mtime kept old, as a copy with preserved times would): rebuilt
  const src = path.join(clone, "native", "core", "metrics.cpp");
  const t = fs.statSync(src).mtime;
  fs.appendFileSync(src, "\n// changed upstream\n");
  fs.utimesSync(src, t, t);
  r = install();
  assert.equal(r.builds, 1, r.out);
  assert.match(r.out, /build\/Release\/selflabel_native\.node was built from other native sources than these/);
  assert.notEqual(fs.readFileSync(stamp, "utf8").trim(), hash, "the record follows the new sources");
  assert.equal(install().builds, 0, "and the next install uses the new build");

  // a header counts too
  const header = path.join(clone, "native", "include", "sln", fs.readdirSync(path.join(clone, "native", "include", "sln"))[0]);
  fs.appendFileSync(header, "\n// changed upstream\n");
  assert.equal(install().builds, 1);
  assert.equal(install().builds, 0);
});

test("an addon built by hand before a pull (no record, older than a source) is rebuilt", () => {
  ageSources(new Date(Date.now() - 3600_000));
  builtByHand(new Date(Date.now() - 1800_000));
  fs.appendFileSync(path.join(clone, "binding.gyp"), "\n");
  const r = install();
  assert.equal(r.builds, 1, r.out);
  assert.match(r.out, /build\/Release\/selflabel_native\.node is older than binding\.gyp/);
});

test("a prebuilt addon whose record differs from the sources is not loaded", () => {
  fs.rmSync(path.join(clone, "build"), { recursive: true, force: true });
  const dir = path.join(clone, "prebuilds", "linux-x64");
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(addon, path.join(dir, "node.napi.glibc.node"));
  fs.writeFileSync(path.join(dir, "sources.sha256"), "0".repeat(64) + "\n");
  let r = install();
  assert.equal(r.builds, 1, r.out);
  assert.match(r.out, /prebuilds\/linux-x64\/node\.napi\.glibc\.node was built from other native sources than these/);
  // the prebuilt one with the right record (as in the packed tarball): used
  fs.rmSync(path.join(clone, "build"), { recursive: true, force: true });
  const hash = spawnSync(process.execPath, [path.join(clone, "scripts", "source-hash.js"), clone], { encoding: "utf8" }).stdout.trim();
  fs.writeFileSync(path.join(dir, "sources.sha256"), hash + "\n");
  r = install();
  assert.equal(r.builds, 0, r.out);
  assert.match(r.out, /using prebuilds\/linux-x64\/node\.napi\.glibc\.node/);
});
