// The cmake-js build: the same addon from the same source list, plus the CUDA
// library when nvcc is present (compile and link only; nothing runs on a GPU
// here). Slow (a full second build), so it runs once, in its own directory.
//
// With nvcc and NVIDIA's cuDNN/cuBLAS wheels on disk (CI: /opt/pypi-more/files),
// scripts/cuda-deps.sh unpacks them and the build runs with SELFLABEL_CUDA=ON,
// so a .cu/.cpp file of native/cuda that does not compile or link fails here.
// The library is then checked from outside: its exports, its NEEDED list, that
// it needs no symbol from the addon, and, in a child process (a crash must not
// take the test runner with it), that it loads and reports "no GPU" cleanly.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";

const root = packageRoot();

const CUDA_API = [
  "sln_cuda_abi_version",
  "sln_cuda_probe",
  "sln_cuda_backend_create",
  "sln_cuda_backend_destroy",
  "sln_cuda_set_tf32",
  "sln_cuda_sinkhorn",
  "sln_cuda_augment",
];

function hasNvcc(): boolean {
  return spawnSync("sh", ["-c", "command -v nvcc || test -x /usr/local/cuda/bin/nvcc"], { stdio: "ignore" }).status === 0;
}

// scripts/cuda-deps.sh: { CUDNN_ROOT, CUBLAS_ROOT } or null when no wheels are found.
function cudaDeps(): Record<string, string> | null {
  const r = spawnSync("sh", [path.join(root, "scripts", "cuda-deps.sh")], { cwd: root, encoding: "utf8" });
  if (r.status !== 0) return null;
  const out: Record<string, string> = {};
  for (const line of r.stdout.trim().split("\n")) {
    const m = line.match(/^(CUDNN_ROOT|CUBLAS_ROOT)=(.+)$/);
    if (m) out[m[1]] = m[2];
  }
  return out.CUDNN_ROOT && out.CUBLAS_ROOT ? out : null;
}

// Load the library with python3's ctypes in a child process and call the C ABI.
const PROBE_PY = `
import ctypes, json, sys
lib = ctypes.CDLL(sys.argv[1])
out = {"abi": lib.sln_cuda_abi_version()}
buf = ctypes.create_string_buffer(4096)
out["rc"] = lib.sln_cuda_probe(0, buf, ctypes.c_size_t(len(buf)))
out["probe"] = buf.value.decode()
lib.sln_cuda_backend_create.restype = ctypes.c_void_p
lib.sln_cuda_backend_destroy.argtypes = [ctypes.c_void_p]
err = ctypes.create_string_buffer(1024)
be = lib.sln_cuda_backend_create(0, err, ctypes.c_size_t(len(err)))
out["created"] = bool(be)
out["createError"] = err.value.decode()
if be:
    lib.sln_cuda_backend_destroy(be)
print(json.dumps(out))
`;

function checkCudaLibrary(lib: string, addon: string, cudnnRoot: string) {
  assert.ok(fs.existsSync(lib), `${lib} must be built`);
  assert.match(execFileSync("readelf", ["-h", lib], { encoding: "utf8" }), /Type:\s+DYN/);

  // every function of sln/cuda_api.h is exported
  const defined = execFileSync("nm", ["-D", "--defined-only", lib], { encoding: "utf8" });
  for (const sym of CUDA_API) assert.match(defined, new RegExp(`\\sT ${sym}$`, "m"), `${sym} is not exported`);

  // NEEDED: cuDNN's dispatcher and cuBLAS; the CUDA runtime is linked statically
  const dyn = execFileSync("readelf", ["-d", lib], { encoding: "utf8" });
  const needed = [...dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  assert.ok(needed.includes("libcudnn.so.9"), `NEEDED ${needed.join(", ")} lacks libcudnn.so.9`);
  assert.ok(needed.includes("libcublas.so.13"), `NEEDED ${needed.join(", ")} lacks libcublas.so.13`);
  assert.ok(!needed.some((n) => /cudart/.test(n)), `cudart should be static, NEEDED: ${needed.join(", ")}`);
  assert.match(dyn, /R(UN)?PATH.*\S+/, "the library carries the folders cuDNN/cuBLAS were found in");

  // nothing undefined comes from the addon (it is linked with --no-undefined too)
  const undef = execFileSync("nm", ["-D", "--undefined-only", lib], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.trim().split(/\s+/).pop() ?? "")
    .filter(Boolean);
  const foreign = undef.filter((s) => /^_ZN3sln|^_ZNK3sln|^_ZTIN3sln|^napi_|^node_|^dnnl/.test(s));
  assert.deepEqual(foreign, [], "libselflabel_cuda.so must not need symbols of the addon");

  // the addon never links CUDA
  assert.doesNotMatch(execFileSync("readelf", ["-d", addon], { encoding: "utf8" }), /cuda|cudnn|cublas/i);

  // load it and call the C ABI in a child process
  const py = spawnSync("python3", ["-c", PROBE_PY, lib], { encoding: "utf8", timeout: 120_000 });
  assert.equal(py.status, 0, `loading ${lib} in a child process failed (signal ${py.signal}): ${py.stderr}`);
  const r = JSON.parse(py.stdout.trim());
  // the ABI version the sources declare (9e7ee92 bumped it to 2 and left this check at 1)
  const abi = Number(/#define SLN_CUDA_ABI_VERSION (\d+)/.exec(fs.readFileSync(path.join(root, "native/include/sln/cuda_api.h"), "utf8"))![1]);
  assert.equal(r.abi, abi);
  const probe = JSON.parse(r.probe);
  if (r.rc === 0) {
    // a machine with a usable GPU and a complete cuDNN
    assert.equal(probe.ok, true);
    assert.match(probe.device, /\S/);
    assert.equal(r.created, true, r.createError);
    return;
  }
  assert.equal(probe.ok, false);
  assert.equal(typeof probe.error, "string");
  assert.equal(r.created, false, "no usable GPU, so no backend");
  assert.match(r.createError, /^SLN_[A-Z_]+: /, "errors carry their code");
  if (!fs.existsSync("/dev/nvidia0")) {
    // this machine kind: no driver, no device
    assert.match(probe.error, /cudaGetDeviceCount/);
    assert.match(probe.error, /driver|device/i);
    assert.match(r.createError, /cudaGetDeviceCount/);
  }
  // cuDNN's sub-libraries are reported by name when missing beside the dispatcher
  // (cuda-deps.sh unpacks only the dispatcher unless --full)
  const sub = "libcudnn_graph.so.9";
  if (!fs.existsSync(path.join(cudnnRoot, "lib", sub)) && probe.cudnnDir === path.join(cudnnRoot, "lib")) {
    assert.ok(probe.cudnnMissing.includes(sub), `cudnnMissing ${JSON.stringify(probe.cudnnMissing)} lacks ${sub}`);
  }
}

test("cmake-js builds the addon (and the CUDA library when nvcc is present)", { timeout: 1_200_000 }, (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "sln-cmake-"));
  const cmakeJs = path.join(root, "node_modules", "cmake-js", "bin", "cmake-js");
  const env = { ...process.env };
  const onPath = spawnSync("sh", ["-c", "command -v nvcc"], { stdio: "ignore" }).status === 0;
  if (!onPath && !env.CUDACXX && fs.existsSync("/usr/local/cuda/bin/nvcc")) env.CUDACXX = "/usr/local/cuda/bin/nvcc";
  const nvcc = hasNvcc();
  const deps = nvcc ? cudaDeps() : null;
  if (deps) Object.assign(env, deps);
  const mode = deps ? "ON" : "AUTO";
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [cmakeJs, "compile", "-O", out, `--CDSELFLABEL_CUDA=${mode}`], {
    cwd: root,
    env,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, (r.stdout + r.stderr).slice(-3000));
  t.diagnostic(`cmake-js build (SELFLABEL_CUDA=${mode}) took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const addon = path.join(out, "Release", "selflabel_native.node");
  assert.ok(fs.existsSync(addon), "the cmake-js build made the addon");
  const probe = spawnSync(process.execPath, ["-e", `console.log(require(${JSON.stringify(addon)}).info().cpu)`], { encoding: "utf8" });
  assert.equal(probe.status, 0, probe.stderr);
  assert.match(probe.stdout, /^oneDNN/);
  assert.doesNotMatch(execFileSync("readelf", ["-d", addon], { encoding: "utf8" }), /cuda|cudnn|cublas/i);
  const lib = path.join(out, "Release", "libselflabel_cuda.so");
  if (deps) {
    checkCudaLibrary(lib, addon, deps.CUDNN_ROOT);
  } else if (nvcc && !fs.existsSync(lib)) {
    // AUTO without cuDNN/cuBLAS: the configure step says what is missing
    assert.match(r.stdout + r.stderr, /CUDA library is not built \(SELFLABEL_CUDA=AUTO\), missing: /);
  }
  fs.rmSync(out, { recursive: true, force: true });
});
