#!/usr/bin/env node
// Builds the test-only addon, build/Release/test/selflabel_native_test.node
// (binding.gyp's second target: the float64 reference and the op harness,
// native/sources.json's test_addon list), and prints its path. The addon that
// users install does not contain them; the tests load this one through
// test/helpers/test_addon.ts, which runs this script on first use.
// The first run configures build/ with -Dsln_test_addon=1 (node-gyp configure;
// the built addon is kept), later runs are an incremental make of this target.
// node-gyp's and the compiler's output go to stderr.
"use strict";
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

const root = path.join(__dirname, "..");
const out = path.join(root, "build", "Release", "test", "selflabel_native_test.node");

function nodeGyp(args) {
  let gyp;
  try {
    gyp = require.resolve("node-gyp/bin/node-gyp.js", { paths: [root] });
  } catch {
    process.stderr.write("build-test-addon: node-gyp is not installed (a devDependency: run `npm ci`)\n");
    process.exit(2);
  }
  const r = spawnSync(process.execPath, [gyp, ...args], { cwd: root, stdio: ["ignore", 2, 2] });
  if (r.status !== 0) {
    process.stderr.write(`build-test-addon: node-gyp ${args.join(" ")} failed (exit ${r.status ?? r.signal})\n`);
    process.exit(1);
  }
}

if (!fs.existsSync(path.join(root, "build", "selflabel_native_test.target.mk"))) {
  // the Node.js headers of the addon's own build (npm's nodedir setting reaches node-gyp only under npm)
  const args = ["configure"];
  const config = path.join(root, "build", "config.gypi");
  const nodedir = fs.existsSync(config) ? /"nodedir": "([^"]+)"/.exec(fs.readFileSync(config, "utf8"))?.[1] : undefined;
  if (nodedir && !process.env.npm_config_nodedir) args.push(`--nodedir=${nodedir}`);
  nodeGyp([...args, "--", "-Dsln_test_addon=1"]);
}
nodeGyp(["build", `--jobs=${os.availableParallelism()}`, "--", "selflabel_native_test"]);
// gyp also copies a loadable module to build/Release/; node-gyp-build (lib/binding.ts) takes the first
// .node file there for the addon, so only build/Release/test/ keeps this one
fs.rmSync(path.join(root, "build", "Release", path.basename(out)), { force: true });
if (!fs.existsSync(out)) {
  process.stderr.write(`build-test-addon: the build finished but made no ${path.relative(root, out)}\n`);
  process.exit(1);
}
process.stdout.write(out + "\n");
