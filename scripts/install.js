#!/usr/bin/env node
// npm install hook. The prebuilt addon (prebuilds/linux-x64, oneDNN inside)
// when it loads here; otherwise a source build with node-gyp, after checking
// for what that needs so that a missing tool is named in one line rather than
// in a page of compiler output. SELFLABEL_BUILD_FROM_SOURCE=1 skips the prebuilt addon.
// An addon built from other native sources than the ones here is rebuilt, not
// loaded: in a git clone, `npm ci` after a pull that changed native/ would
// otherwise keep the old build/Release (scripts/source-hash.js; sources.sha256
// beside the addon records what it was built from, else its mtime must be
// newer than every source's).
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { spawnSync } = require("node:child_process");
const { STAMP, sourceHash, newestSource } = require("./source-hash");

const root = path.join(__dirname, "..");
const say = (m) => process.stderr.write(`selflabel-native: ${m}\n`);

function loads(file) {
  // in a child: a failed dlopen must not leave this process half-initialised
  const r = spawnSync(process.execPath, ["-e", "require(process.argv[1]).info()", file], { encoding: "utf8" });
  return r.status === 0 ? null : (r.stderr.trim().split("\n").find((l) => /Error|cannot/.test(l)) ?? `exit ${r.status}`);
}

function onPath(cmd) {
  for (const d of (process.env.PATH ?? "").split(path.delimiter)) {
    if (d && fs.existsSync(path.join(d, cmd))) return true;
  }
  return false;
}

let hash = null;
try {
  hash = sourceHash(root);
} catch (e) {
  say(`cannot hash the native sources (${e.message.split("\n")[0]})`);
}

/** Why the addon is not built from the sources here (null: it is), and whether its record is missing. */
function staleness(file) {
  const rel = path.relative(root, file);
  const stamp = path.join(path.dirname(file), STAMP);
  if (fs.existsSync(stamp)) {
    const built = fs.readFileSync(stamp, "utf8").trim();
    return { why: built === hash ? null : `${rel} was built from other native sources than these (${STAMP} differs)`, record: false };
  }
  // no record (built by hand with node-gyp, or before records): make's rule
  const newest = newestSource(root);
  if (newest.mtimeMs > fs.statSync(file).mtimeMs) return { why: `${rel} is older than ${newest.file}`, record: false };
  return { why: null, record: true };
}

let why = "no prebuilt binary for this platform";
if (!process.env.SELFLABEL_BUILD_FROM_SOURCE) {
  let file = null;
  try {
    file = require("node-gyp-build").path(root);
  } catch {
    /* none found */
  }
  if (file) {
    const st = hash === null ? { why: "the native sources cannot be read", record: false } : staleness(file);
    const err = st.why ?? loads(file);
    if (!err) {
      if (st.record && path.relative(root, file).startsWith("build")) fs.writeFileSync(path.join(path.dirname(file), STAMP), `${hash}\n`);
      say(`using ${path.relative(root, file)}`);
      process.exit(0);
    }
    why = st.why ?? `${path.relative(root, file)} does not load (${err})`;
  }
}

const missing = [];
const cxx = process.env.CXX || "g++";
if (!onPath(cxx.split(" ")[0])) missing.push(`a C++ compiler (${cxx})`);
if (!onPath("make")) missing.push("make");
if (!onPath("python3")) missing.push("python3");
const headers = ["/usr/include/oneapi/dnnl/dnnl.hpp", "/usr/include/dnnl.hpp", "/usr/local/include/oneapi/dnnl/dnnl.hpp"];
if (!headers.some((h) => fs.existsSync(h)) && !process.env.CPLUS_INCLUDE_PATH) missing.push("oneDNN's headers (libdnnl-dev)");
if (missing.length) {
  say(
    `${why}, and building from source needs ${missing.join(", ")}. ` +
      "Install them (Debian/Ubuntu: apt-get update && apt-get install -y g++ make python3 libdnnl-dev; prefix sudo when not root), " +
      "then run `npm rebuild selflabel-native`.",
  );
  process.exit(1);
}
say(`${why}; building the addon from source (about 2 minutes)`);
const gyp = process.env.npm_config_node_gyp;
// every core: one compile at a time took 57 files' worth of minutes on a 2-core machine
const r = gyp
  ? spawnSync(process.execPath, [gyp, "rebuild", "--jobs=max"], { cwd: root, stdio: "inherit" })
  : spawnSync("node-gyp", ["rebuild", "--jobs=max"], { cwd: root, stdio: "inherit", shell: true });
if (r.status !== 0) {
  say("the source build failed (see above); the usual cause is a missing package: apt-get install -y g++ make python3 libdnnl-dev");
  process.exit(r.status ?? 1);
}
// what this build was made from (node-gyp rebuild wrote build/Release afresh)
const built = path.join(root, "build", "Release");
if (hash !== null && fs.existsSync(built)) fs.writeFileSync(path.join(built, STAMP), `${hash}\n`);
