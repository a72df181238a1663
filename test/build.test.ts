// The two build files must compile the same sources: native/sources.json; the
// float64 reference and the op harness only in the test-only addon.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { packageRoot, native } from "../lib/binding";
import { harnessOps, testAddonPath } from "./helpers/test_addon";

const root = packageRoot();
const sources = JSON.parse(fs.readFileSync(path.join(root, "native/sources.json"), "utf8"));

test("sources.json lists existing files, no duplicates", () => {
  for (const list of [sources.addon, sources.cuda, sources.test_addon] as string[][]) {
    assert.equal(new Set(list).size, list.length);
    for (const f of list) assert.ok(fs.existsSync(path.join(root, f)), `missing source ${f}`);
  }
  // every C++ file under native/{addon,core,cpu} is in the addon's list, every one under
  // native/{ref,harness} (the float64 reference, the op harness) in the test addon's only:
  // nothing is silently left out
  for (const [dir, list, other] of [
    ["native/addon", sources.addon, null],
    ["native/core", sources.addon, null],
    ["native/cpu", sources.addon, null],
    ["native/ref", sources.test_addon, sources.addon],
    ["native/harness", sources.test_addon, sources.addon],
  ] as [string, string[], string[] | null][]) {
    for (const f of fs.readdirSync(path.join(root, dir))) {
      if (!f.endsWith(".cpp")) continue;
      assert.ok(list.includes(`${dir}/${f}`), `${dir}/${f} is not in its sources.json list`);
      if (other) assert.ok(!other.includes(`${dir}/${f}`), `${dir}/${f} is test-only but in the shipped addon's list`);
    }
  }
});

test("binding.gyp's two targets expand to exactly sources.json's addon and test_addon lists", () => {
  const gyp = fs.readFileSync(path.join(root, "binding.gyp"), "utf8");
  const cmds = [...gyp.matchAll(/"target_name": "(\w+)",[^]*?"<!@\((.*)\)"/g)];
  assert.deepEqual(cmds.map((m) => m[1]), ["selflabel_native", "selflabel_native_test"], "binding.gyp must take each target's sources from a <!@(...) command");
  for (const [m, list] of [[cmds[0], sources.addon], [cmds[1], sources.test_addon]] as [RegExpMatchArray, string[]][]) {
    const cmd = m[2].replace(/\\"/g, '"');
    const out = execFileSync("sh", ["-c", cmd], { cwd: root, encoding: "utf8" }).trim().split(/\s+/);
    assert.deepEqual(out, list, m[1]);
  }
  // the test addon is built only when asked for (scripts/build-test-addon.js), never at install
  assert.match(gyp, /"sln_test_addon%": 0/);
  assert.match(gyp, /\["sln_test_addon==1", \{\s*"targets": \[\s*\{[^{}]*"target_name": "selflabel_native_test"/);
});

test("CMakeLists.txt reads sources.json's addon list", () => {
  const cm = fs.readFileSync(path.join(root, "CMakeLists.txt"), "utf8");
  assert.match(cm, /file\(READ "\$\{CMAKE_CURRENT_SOURCE_DIR\}\/native\/sources\.json"/);
  // sln_sources(<key> <var>) expands one list of sources.json; the addon is built from its "addon" list
  assert.match(cm, /string\(JSON src GET "\$\{SLN_SOURCES_JSON\}" \$\{key\} \$\{i\}\)/);
  assert.match(cm, /sln_sources\(addon SLN_ADDON_SOURCES\)/);
  assert.match(cm, /add_library\(\$\{PROJECT_NAME\} SHARED \$\{SLN_ADDON_SOURCES\}/);
  assert.doesNotMatch(cm, /native\/(core|cpu|addon|ref|harness)\/[a-z_]+\.cpp/, "CMakeLists.txt must not list sources by hand");
  assert.doesNotMatch(cm, /test_addon/, "the cmake-js build is the shipped addon's only");
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

test("the shipped addon holds neither the float64 reference nor the op harness; the test addon does", () => {
  // the binding users load exports no harness entry points
  const exported = Object.keys(native());
  for (const name of ["harnessRun", "harnessOps"]) assert.ok(!exported.includes(name), `the addon exports ${name}`);
  const addon = path.join(root, "build/Release/selflabel_native.node");
  if (!fs.existsSync(addon)) return; // prebuild in use (stripped): test/install.test.ts checks its exports
  // nor does it contain their code (local symbols included: node-gyp does not strip)
  const symbols = (file: string) => execFileSync("nm", ["-C", file], { encoding: "utf8", maxBuffer: 256 << 20 });
  const testOnly = /sln::ref::|sln::HarnessRegistrar|sln::harness_cases/;
  const shipped = symbols(addon).split("\n").filter((l) => testOnly.test(l));
  assert.deepEqual(shipped, [], "reference / harness symbols in the shipped addon");
  // the same pattern finds them in the test addon: the check above can fail
  const testSyms = symbols(testAddonPath());
  for (const s of ["sln::ref::conv2d_forward", "sln::HarnessRegistrar::HarnessRegistrar", "sln::harness_cases"]) assert.ok(testSyms.includes(s), `test addon lacks ${s}`);
  assert.ok(harnessOps().includes("conv2d"));
});
