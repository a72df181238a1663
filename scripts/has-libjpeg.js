#!/usr/bin/env node
// Prints 1 when a program that includes <jpeglib.h> links with -ljpeg here
// (libjpeg62-turbo-dev on Debian), else 0: binding.gyp's sln_jpeg, which builds
// the addon's JPEG decoder (native/addon/jpeg_binding.cpp) only where libjpeg
// is there. Without it the addon decodes no JPEG itself and ImageFolder uses
// sharp or jimp (lib/data/decoders.ts). SELFLABEL_NO_LIBJPEG=1 prints 0.
"use strict";
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

function hasLibjpeg() {
  if (process.env.SELFLABEL_NO_LIBJPEG === "1") return false;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sln-has-libjpeg-"));
  try {
    const src = path.join(dir, "t.cc");
    fs.writeFileSync(src, "#include <cstdio>\n#include <jpeglib.h>\nint main() { jpeg_decompress_struct c; jpeg_std_error(nullptr); return sizeof c > 0 ? 0 : 1; }\n");
    const cxx = (process.env.CXX || "c++").split(" ");
    const r = spawnSync(cxx[0], [...cxx.slice(1), src, "-o", path.join(dir, "t"), "-ljpeg"], { stdio: "ignore" });
    return r.status === 0;
  } catch {
    return false;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

process.stdout.write(hasLibjpeg() ? "1" : "0");
