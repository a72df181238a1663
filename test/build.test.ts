// The two build files must compile the same sources: native/sources.json.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { packageRoot, native } from "../lib/binding";

const root = packageRoot();
const sources = JSON.parse(fs.readFileSync(path.join(root, "native/sources.json"), "utf8"));

test("sources.json lists existing files, no duplicates", () => {
  for (const list of [sources.addon, sources.cuda] as string[][]) {
    assert.equal(new Set(list).size, list.length);
    for (const f of list) assert.ok(fs.existsSync(path.join(root, f)), `missing source ${f}`);
  }
  // every C++ file under native/{addon,core,cpu,ref} is in the list: nothing is silently left out
  for (const dir of ["native/addon", "native/core", "native/cpu", "native/ref"]) {
    for (const f of fs.readdirSync(path.join(root, dir))) {
      if (f.endsWith(".cpp")) assert.ok(sources.addon.includes(`${dir}/${f}`), `${dir}/${f} is not in sources.json`);
    }
  }
});

test("binding.gyp expands to exactly sources.json's addon list", () => {
  const gyp = fs.readFileSync(path.join(root, "binding.gyp"), "utf8");
  const m = gyp.match(/"<!@\((.*)\)"/);
  assert.ok(m, "binding.gyp must take its sources from a <!@(...) command");
  const cmd = m![1].replace(/\\"/g, '"');
  const out = execFileSync("sh", ["-c", cmd], { cwd: root, encoding: "utf8" }).trim().split(/\s+/);
  assert.deepEqual(out, sources.addon);
});

test("CMakeLists.txt reads sources.json's addon list", () => {
  const cm = fs.readFileSync(path.join(root, "CMakeLists.txt"), "utf8");
  assert.match(cm, /file\(READ "\$\{CMAKE_CURRENT_SOURCE_DIR\}\/native\/sources\.json"/);
  // sln_sources(<key> <var>) expands one list of sources.json; the addon is built from its "addon" list
  assert.match(cm, /string\(JSON src GET "\$\{SLN_SOURCES_JSON\}" \$\{key\} \$\{i\}\)/);
  assert.match(cm, /sln_sources\(addon SLN_ADDON_SOURCES\)/);
  assert.match(cm, /add_library\(\$\{PROJECT_NAME\} SHARED \$\{SLN_ADDON_SOURCES\}/);
  assert.doesNotMatch(cm, /native\/(core|cpu|addon|ref)\/[a-z_]+\.cpp/, "CMakeLists.txt must not list sources by hand");
});

test("no -march=native in shipped build flags", () => {
  for (const f of ["binding.gyp", "CMakeLists.txt"]) {
    assert.doesNotMatch(fs.readFileSync(path.join(root, f), "utf8"), /march=native/);
  }
});

test("the addon loads and reports the CPU backend", () => {
  const info = native().info();
  assert.match(info.cpu, /^oneDNN \d+\.\d+/);
  assert.ok(info.threads >= 1);
});

test("the CPU addon has no dynamic dependency on CUDA libraries", () => {
  const addon = path.join(root, "build/Release/selflabel_native.node");
  if (!fs.existsSync(addon)) return; // prebuild in use; covered by the prebuild's own check
  const dyn = execFileSync("readelf", ["-d", addon], { encoding: "utf8" });
  assert.doesNotMatch(dyn, /cuda|cudnn|cublas/i);
  assert.match(dyn, /libdnnl/);
});
