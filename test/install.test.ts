// The packed tarball as a user gets it: `npm pack`, the prebuilt addon with
// oneDNN and its runtime bundled (scripts/prebuilds.sh), installed into a
// fresh project offline with no compiler, make or python3 on PATH. The bundled
// libraries must be the ones the dynamic loader resolves, and the installed
// copy must run `info` and a tiny training. Without a prebuilt addon and
// without a compiler, the install stops with one line naming what is missing.
import "./helpers/cpu_only";
import { test, before } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { native, packageRoot } from "../lib/binding";

const root = packageRoot();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-install-"));
const bin = path.join(tmp, "bin"); // PATH for the user: node, npm and sh only
let plain = ""; // tarball without prebuilds
let full = ""; // tarball with prebuilds

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env) {
  return spawnSync("npm", args, { cwd, encoding: "utf8", env: { ...env, npm_config_update_notifier: "false" } });
}

/** A project whose node_modules already holds the runtime dependencies (copied: the test runs offline). */
function project(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  // npm 11 runs a dependency's install script only when the project allows it
  fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name, private: true, allowScripts: { "selflabel-native": true } }));
  const deps = execFileSync("npm", ["ls", "--omit=dev", "--all", "--parseable"], { cwd: root, encoding: "utf8" })
    .trim()
    .split("\n")
    .map((p) => path.relative(root, p))
    .filter((p) => p.startsWith("node_modules"));
  for (const p of deps) fs.cpSync(path.join(root, p), path.join(dir, p), { recursive: true });
  return dir;
}

before(() => {
  fs.mkdirSync(bin);
  for (const t of ["node", "npm", "sh"]) {
    const p = execFileSync("sh", ["-c", `command -v ${t}`], { encoding: "utf8" }).trim();
    fs.symlinkSync(fs.realpathSync(p), path.join(bin, t));
  }
  // dist/ afresh: a stale file of a moved module (pth.js beside pth/) would shadow the new one in the tarball
  fs.rmSync(path.join(root, "dist"), { recursive: true, force: true });
  execFileSync(path.join(root, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], { cwd: root });
  const a = path.join(tmp, "a");
  fs.mkdirSync(a);
  const p1 = npm(["pack", "--ignore-scripts", "--pack-destination", a], root);
  assert.equal(p1.status, 0, p1.stderr);
  // unpack; without prebuilds (a developer's prebuilds/ may be in the first tarball) it is `plain`
  const stage = path.join(tmp, "stage");
  fs.mkdirSync(stage);
  execFileSync("tar", ["xzf", path.join(a, fs.readdirSync(a).find((f) => f.endsWith(".tgz"))!), "-C", stage]);
  const pkg = path.join(stage, "package");
  fs.rmSync(path.join(pkg, "prebuilds"), { recursive: true, force: true });
  const a2 = path.join(tmp, "a2");
  fs.mkdirSync(a2);
  assert.equal(npm(["pack", "--ignore-scripts", "--pack-destination", a2], pkg).status, 0);
  plain = path.join(a2, fs.readdirSync(a2).find((f) => f.endsWith(".tgz"))!);
  // add the prebuilt addon made from this build, pack again
  const addon = (require("node-gyp-build") as { path(d: string): string }).path(root);
  const r = spawnSync("sh", [path.join(root, "scripts/prebuilds.sh"), "--addon", addon, "--out", path.join(pkg, "prebuilds")], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const b = path.join(tmp, "b");
  fs.mkdirSync(b);
  const p2 = npm(["pack", "--ignore-scripts", "--pack-destination", b], pkg);
  assert.equal(p2.status, 0, p2.stderr);
  full = path.join(b, fs.readdirSync(b).find((f) => f.endsWith(".tgz"))!);
});

test("the tarball ships what users need and nothing else", () => {
  const files = execFileSync("tar", ["tzf", full], { encoding: "utf8" }).trim().split("\n").map((f) => f.replace(/^package\//, ""));
  for (const f of [
    "package.json",
    "LICENSE",
    "README.md",
    "dist/index.js",
    "dist/index.d.ts",
    "dist/cli.js",
    "binding.gyp",
    "native/sources.json",
    "scripts/install.js",
    "scripts/source-hash.js",
    // binding.gyp asks it whether to build the addon's JPEG decoder
    "scripts/has-libjpeg.js",
    // the optional libraries' build scripts, which the load errors name (`npm run build:cuda` etc.)
    "scripts/build-cuda.sh",
    "scripts/build-mpi.sh",
    "scripts/build-nccl.sh",
    "prebuilds/linux-x64/node.napi.glibc.node",
    // the native sources it was built from: the install step uses it only when they match (install_stale.test.ts)
    "prebuilds/linux-x64/sources.sha256",
    "prebuilds/linux-x64/libdnnl.so.2",
    "prebuilds/linux-x64/libgomp.so.1",
    "prebuilds/linux-x64/licenses/BUNDLED.txt",
    // the addon's JPEG decoder (native/addon/jpeg_binding.cpp), where this build has it
    ...(native().jpegDecode ? ["prebuilds/linux-x64/libjpeg.so.62"] : []),
  ])
    assert.ok(files.includes(f), `missing ${f}`);
  for (const f of files) assert.doesNotMatch(f, /^(test|bench|lib|\.build-ts|build|docs)\/|\.map$|\.py$|\.tgz$/, f);
  // the float64 reference and the op harness are the test-only addon's (scripts/build-test-addon.js)
  for (const f of files) assert.doesNotMatch(f, /^native\/(ref|harness)\/|build-test-addon/, f);
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
  assert.equal(pkg.license, "MIT");
  assert.equal(pkg.scripts.prebuild, undefined, "`prebuild` is npm's pre-hook of `build`");
});

test("installs offline without a compiler, resolves the bundled oneDNN, runs info and a tiny training", () => {
  const proj = project("user");
  const env = { ...process.env, PATH: bin };
  const inst = npm(["install", "--offline", "--no-audit", "--no-fund", "--foreground-scripts", full], proj, env);
  assert.equal(inst.status, 0, inst.stdout + inst.stderr);
  const installed = path.join(proj, "node_modules", "selflabel-native");
  assert.ok(!fs.existsSync(path.join(installed, "build")), "nothing was compiled");
  const dir = path.join(installed, "prebuilds", "linux-x64");
  const ldd = execFileSync("ldd", [path.join(dir, "node.napi.glibc.node")], { encoding: "utf8" });
  for (const lib of ["libdnnl.so.2", "libgomp.so.1", ...(native().jpegDecode ? ["libjpeg.so.62"] : [])]) assert.match(ldd, new RegExp(`${lib.replace(/\./g, "\\.")} => ${dir}/${lib.replace(/\./g, "\\.")} `), ldd);
  const cli = path.join(proj, "node_modules", ".bin", "selflabel-native");
  const info = spawnSync(cli, ["info"], { cwd: proj, encoding: "utf8", env });
  assert.equal(info.status, 0, info.stderr);
  assert.match(info.stdout, /CPU backend: oneDNN \d+\.\d+/);
  // the prebuilt addon has no harness entry points (nor, stripped, their code: test/build.test.ts checks the built one's symbols)
  const exported = spawnSync(path.join(bin, "node"), ["-e", "console.log(Object.keys(require(process.argv[1])).join(' '))", path.join(dir, "node.napi.glibc.node")], { encoding: "utf8", env });
  assert.equal(exported.status, 0, exported.stderr);
  assert.match(exported.stdout, /\binfo\b/);
  if (native().jpegDecode) assert.match(exported.stdout, /\bjpegDecode\b/);
  assert.doesNotMatch(exported.stdout, /harness/i);
  // the libraries the running process mapped: the bundled ones
  const maps = spawnSync(
    path.join(bin, "node"),
    ["-e", "require('selflabel-native').createModel; require('selflabel-native/package.json'); const b = require(require.resolve('selflabel-native').replace(/index\\.js$/, 'binding.js')); b.native().info(); console.log(require('fs').readFileSync('/proc/self/maps', 'utf8'))"],
    { cwd: proj, encoding: "utf8", env },
  );
  assert.equal(maps.status, 0, maps.stderr);
  const dnnl = [...new Set(maps.stdout.split("\n").filter((l) => /libdnnl/.test(l)).map((l) => l.trim().split(/\s+/).pop()))];
  assert.deepEqual(dnnl, [path.join(dir, "libdnnl.so.2")]);
  const exp = path.join(proj, "exp");
  const tr = spawnSync(cli, ["train", "--exp", exp, "--synthetic-count", "300", "--batch-size", "100", "--epochs", "1", "--nopts", "1", "--eval-test", "false", "--threads", "2"], {
    cwd: proj,
    encoding: "utf8",
    env,
  });
  assert.equal(tr.status, 0, tr.stderr);
  assert.match(tr.stdout, /done in .* 1 label passes/);
  assert.ok(fs.existsSync(path.join(exp, "model.safetensors")));
});

test("no prebuilt addon and no compiler: the install stops with one line naming what is missing", () => {
  const proj = project("nocompiler");
  const inst = npm(["install", "--offline", "--no-audit", "--no-fund", "--foreground-scripts", plain], proj, { ...process.env, PATH: bin, CXX: "" });
  assert.notEqual(inst.status, 0);
  const line = (inst.stdout + inst.stderr).split("\n").find((l) => l.startsWith("selflabel-native:"));
  assert.ok(line, inst.stdout + inst.stderr);
  assert.match(line!, /no prebuilt binary for this platform, and building from source needs a C\+\+ compiler \(g\+\+\), make, python3\b.*apt-get update && apt-get install -y g\+\+ make python3 libdnnl-dev.*`npm rebuild selflabel-native`/);
});
