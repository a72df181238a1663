// The cmake-js build: the same addon from the same source list, plus the CUDA
// library when nvcc is present (compile and link only; nothing runs on a GPU
// here). Slow (a full second build), so it runs once, in its own directory.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";

const root = packageRoot();

function hasNvcc(): boolean {
  return spawnSync("sh", ["-c", "command -v nvcc || test -x /usr/local/cuda/bin/nvcc"], { stdio: "ignore" }).status === 0;
}

test("cmake-js builds the addon (and the CUDA library when nvcc is present)", { timeout: 900_000 }, () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "sln-cmake-"));
  const cmakeJs = path.join(root, "node_modules", "cmake-js", "bin", "cmake-js");
  const env = { ...process.env };
  const onPath = spawnSync("sh", ["-c", "command -v nvcc"], { stdio: "ignore" }).status === 0;
  if (!onPath && !env.CUDACXX && fs.existsSync("/usr/local/cuda/bin/nvcc")) env.CUDACXX = "/usr/local/cuda/bin/nvcc";
  const r = spawnSync(process.execPath, [cmakeJs, "compile", "-O", out, "--CDSELFLABEL_CUDA=AUTO"], {
    cwd: root,
    env,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, (r.stdout + r.stderr).slice(-3000));
  const addon = path.join(out, "Release", "selflabel_native.node");
  assert.ok(fs.existsSync(addon), "the cmake-js build made the addon");
  const probe = spawnSync(process.execPath, ["-e", `console.log(require(${JSON.stringify(addon)}).info().cpu)`], { encoding: "utf8" });
  assert.equal(probe.status, 0, probe.stderr);
  assert.match(probe.stdout, /^oneDNN/);
  assert.doesNotMatch(execFileSync("readelf", ["-d", addon], { encoding: "utf8" }), /cuda|cudnn|cublas/i);
  if (hasNvcc()) {
    const lib = path.join(out, "Release", "libselflabel_cuda.so");
    assert.ok(fs.existsSync(lib), `nvcc is present, so ${lib} must be built`);
    assert.match(execFileSync("readelf", ["-h", lib], { encoding: "utf8" }), /Type:\s+DYN/);
  }
  fs.rmSync(out, { recursive: true, force: true });
});
