#!/usr/bin/env node
// The hash of what the Node-API addon is compiled from: binding.gyp,
// native/sources.json, the addon's sources listed there and every header
// under native/ except the test-only addon's (native/ref, native/harness: not
// in the npm tarball). A build records it in sources.sha256 beside the addon
// (scripts/install.js for build/Release, scripts/prebuilds.sh for
// prebuilds/linux-x64), and the install step rebuilds an addon whose record
// differs from the sources it is installed with (a git pull that changed
// native code, then `npm ci`). The optional CUDA/MPI libraries' own sources
// are not in it: they are built separately. `node scripts/source-hash.js [ROOT]`
// prints the hash.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const STAMP = "sources.sha256";

const TEST_ONLY = ["native/ref", "native/harness"];

/** The files the addon is compiled from, relative to root ('/'-separated). */
function addonSourceFiles(root) {
  const list = JSON.parse(fs.readFileSync(path.join(root, "native", "sources.json"), "utf8")).addon;
  const headers = [];
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) {
        if (!TEST_ONLY.includes(r)) walk(r);
      }
      else if (/\.(h|hh|hpp|inc|inl)$/.test(e.name)) headers.push(r);
    }
  };
  walk("native");
  return ["binding.gyp", "native/sources.json", ...[...new Set([...list, ...headers])].sort()];
}

/** sha256 (hex) of the addon's sources under root; throws when one is missing. */
function sourceHash(root) {
  const h = crypto.createHash("sha256");
  for (const rel of addonSourceFiles(root)) {
    const data = fs.readFileSync(path.join(root, rel));
    h.update(`${rel}\0${data.length}\0`);
    h.update(data);
  }
  return h.digest("hex");
}

/** The newest of the addon's sources: { file, mtimeMs }. */
function newestSource(root) {
  let best = { file: "", mtimeMs: -Infinity };
  for (const rel of addonSourceFiles(root)) {
    const m = fs.statSync(path.join(root, rel)).mtimeMs;
    if (m > best.mtimeMs) best = { file: rel, mtimeMs: m };
  }
  return best;
}

module.exports = { STAMP, addonSourceFiles, sourceHash, newestSource };

if (require.main === module) {
  process.stdout.write(`${sourceHash(path.resolve(process.argv[2] ?? path.join(__dirname, "..")))}\n`);
}
