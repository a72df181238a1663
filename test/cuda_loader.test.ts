// Loading the CUDA library without a GPU, with fake libraries built from
// test/fixtures/fake_cuda/fake_cuda.cpp: every failure path gives one clear
// reason (info reports it, --device cuda exits 2 with one line, auto falls back
// to the CPU), an abort() inside the library's probe kills only the probe's
// child process, and a working fake "device" (host memory behind PROT_NONE, so a
// missing upload/download in the Model crashes) trains, solves and augments
// through every host-side path of the CUDA backend; the GPU suites themselves
// run against it.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";
import { buildFakeCuda, FakeMode } from "./helpers/fake_cuda";
import * as safetensors from "../lib/safetensors";

const root = packageRoot();
const cli = path.join(root, ".build-ts/lib/cli.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-cuda-"));
const fakes = new Map<FakeMode, string>();
function fake(mode: FakeMode): string {
  if (!fakes.has(mode)) fakes.set(mode, buildFakeCuda(mode));
  return fakes.get(mode)!;
}

function node(args: string[], env: Record<string, string>) {
  // NODE_TEST_CONTEXT would make a nested `node --test` report to this runner instead of printing TAP
  const e: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete e.NODE_TEST_CONTEXT;
  return spawnSync(process.execPath, args, { encoding: "utf8", env: e, timeout: 600_000 });
}
function info(lib: string) {
  const r = node([cli, "info", "--json"], { SELFLABEL_CUDA_LIB: lib });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout).cuda as { available: boolean; state: string; reason: string; library: string; device?: string; cc?: string; cudnn?: string; cublas?: string; driver?: string };
}
const TRAIN = ["--synthetic-count", "300", "--batch-size", "100", "--epochs", "1", "--nopts", "2", "--eval-test", "false", "--threads", "2"];
function trainCuda(lib: string, device = "cuda", extra: string[] = []) {
  const exp = path.join(tmp, `exp-${path.basename(lib)}-${device}-${extra.join("")}`.replace(/[^\w.-]/g, ""));
  const r = node([cli, "train", "--exp", exp, "--device", device, ...TRAIN, ...extra], { SELFLABEL_CUDA_LIB: lib });
  return { ...r, exp };
}
function oneLineExit2(r: ReturnType<typeof trainCuda>, re: RegExp): void {
  assert.equal(r.status, 2, `status ${r.status}: ${r.stderr}`);
  assert.match(r.stderr, re);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.ok(!fs.existsSync(r.exp), "nothing written");
}

test("no library: info says so, --device cuda exits 2 with one line, auto trains on the CPU with a notice", () => {
  const missing = path.join(tmp, "nope", "libselflabel_cuda.so");
  const i = info(missing);
  assert.equal(i.available, false);
  assert.equal(i.state, "not-built");
  assert.match(i.reason, /SELFLABEL_CUDA_LIB=.*does not exist.*npm run build:cuda/);
  oneLineExit2(trainCuda(missing), /--device cuda: no CUDA backend: SELFLABEL_CUDA_LIB=.* does not exist/);
  const auto = trainCuda(missing, "auto");
  assert.equal(auto.status, 0, auto.stderr);
  assert.match(auto.stdout, /notice: --device auto: CUDA unavailable, training on the CPU/);
  // the library's file names, in the documented order, when nothing is set
  const r = node(["-e", `console.log(JSON.stringify(require(${JSON.stringify(path.join(root, ".build-ts/lib/cuda.js"))}).cudaLibraryCandidates()))`], { SELFLABEL_CUDA_LIB: "" });
  assert.deepEqual(JSON.parse(r.stdout).map((p: string) => path.relative(root, p)), [
    "build-cmake/Release/libselflabel_cuda.so",
    "build/Release/libselflabel_cuda.so",
    `prebuilds/${process.platform}-${process.arch}/libselflabel_cuda.so`,
  ]);
});

test("a library with another ABI version or a missing symbol is refused with the loader's message", () => {
  const abi = info(fake("WRONG_ABI"));
  assert.equal(abi.state, "load-failed");
  const want = /#define SLN_CUDA_ABI_VERSION (\d+)/.exec(fs.readFileSync(path.join(root, "native/include/sln/cuda_api.h"), "utf8"))![1];
  assert.match(abi.reason, new RegExp(`has ABI version 999, this addon needs ${want}: rebuild it with \`npm run build:cuda\``));
  oneLineExit2(trainCuda(fake("WRONG_ABI")), /--device cuda: .*ABI version 999/);
  const miss = info(fake("MISSING"));
  assert.equal(miss.state, "load-failed");
  assert.match(miss.reason, /lacks the symbol sln_cuda_augment \(.*undefined symbol: sln_cuda_augment\)/);
  const notElf = path.join(tmp, "not-a-library.so");
  fs.writeFileSync(notElf, "not an ELF file");
  const bad = info(notElf);
  assert.equal(bad.state, "load-failed");
  assert.match(bad.reason, /cannot load the CUDA library .*not-a-library\.so: .*(invalid ELF header|file too short).*LD_LIBRARY_PATH/);
});

test("a probe that aborts (an incomplete cuDNN) kills only the child: info reports it, auto falls back, cuda exits 2", () => {
  const lib = fake("ABORT");
  const i = info(lib);
  assert.equal(i.available, false);
  assert.equal(i.state, "probe-crashed");
  assert.match(i.reason, /probe process was killed by SIGABRT without an answer \(.*Cannot load symbol cudnnGetVersion.*\).*incomplete cuDNN/);
  oneLineExit2(trainCuda(lib), /--device cuda: probing .* crashed/);
  // in-process API: createModel('auto') survives, uses the CPU, says so once
  const script = `
    const { createModel } = require(${JSON.stringify(path.join(root, ".build-ts/lib/model.js"))});
    (async () => {
      const a = await createModel({ arch: "smallcnn", numClasses: [3], inputShape: [1, 8, 8] });
      const b = await createModel({ arch: "smallcnn", numClasses: [3], inputShape: [1, 8, 8], device: "auto" });
      let code = "";
      try { await createModel({ arch: "smallcnn", numClasses: [3], inputShape: [1, 8, 8], device: "cuda" }); } catch (e) { code = e.code; }
      console.log(a.device, b.device, code);
    })();`;
  const r = node(["-e", script], { SELFLABEL_CUDA_LIB: lib });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), "cpu cpu SLN_NO_DEVICE");
  assert.equal(r.stderr.trim().split("\n").length, 1, `one notice: ${r.stderr}`);
  assert.match(r.stderr, /selflabel-native: CUDA unavailable, using the CPU: probing .* crashed/);
});

test("a library that finds no device: info gives the CUDA error, auto uses the CPU", () => {
  const i = info(fake("NO_DEVICE"));
  assert.equal(i.state, "no-device");
  assert.match(i.reason, /no usable CUDA device: cudaGetDeviceCount: no CUDA-capable device is detected/);
  oneLineExit2(trainCuda(fake("NO_DEVICE")), /--device cuda: no usable CUDA device/);
});

test("a working fake device: info, createModel('cuda') matching the CPU, train --device cuda end to end", () => {
  const lib = fake("DEVICE");
  const i = info(lib);
  assert.equal(i.available, true, i.reason);
  assert.equal(i.library, lib);
  assert.match(i.device ?? "", /Fake Device/);
  assert.equal(i.cc, "9.0");
  assert.equal(i.cudnn, "9.24.0");
  assert.equal(i.cublas, "13.1.1");
  assert.equal(i.driver, "13.0");
  const text = node([cli, "info"], { SELFLABEL_CUDA_LIB: lib });
  assert.match(text.stdout, /CUDA backend: available: Fake Device .*compute capability 9\.0, 80\.0 GiB.*cuDNN 9\.24\.0, cuBLAS 13\.1\.1/);
  assert.match(text.stdout, /CUDA library: .*libfake_device/);
  const r = trainCuda(lib, "cuda", ["--tf32"]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /device: cuda, Fake Device/);
  assert.match(r.stdout, /label pass 2 /);
  assert.ok(fs.existsSync(path.join(r.exp, "model.safetensors")));
});

test("train --device cuda augments the training batches through sln_cuda_augment: same losses and weights as CPU augmentation", () => {
  const lib = fake("DEVICE");
  // the fake's sln_cuda_augment is the CPU's code, so the same sampled parameters
  // must give bit-identical batches, hence identical losses and weights; its
  // call log proves the GPU path ran (3 batches of 20, 3x32x32), and only for
  // training (label passes and evaluation use unaugmented images via forward)
  const logGpu = path.join(tmp, "augment-gpu.log");
  const logCpu = path.join(tmp, "augment-cpu.log");
  // small: the fake device computes every op in float64 (3 batches of 20, one label pass)
  const run = (name: string, extra: string[], log: string) => {
    const exp = path.join(tmp, name);
    const args = ["--synthetic-count", "60", "--batch-size", "20", "--epochs", "1", "--nopts", "1", "--eval-test", "false", "--threads", "2", "--log-iter", "1", "--augs", "3"];
    const r = node([cli, "train", "--exp", exp, "--device", "cuda", ...args, ...extra], { SELFLABEL_CUDA_LIB: lib, FAKE_CUDA_AUGMENT_LOG: log });
    assert.equal(r.status, 0, r.stderr);
    return { ...r, exp };
  };
  const gpu = run("exp-gpu-augment", [], logGpu);
  assert.match(gpu.stdout, /augmentation: on the GPU/);
  const cpu = run("exp-cpu-augment", ["--no-gpu-augment"], logCpu);
  assert.match(cpu.stdout, /augmentation: on the CPU \(--no-gpu-augment\)/);
  assert.deepEqual(fs.readFileSync(logGpu, "utf8").trim().split("\n"), ["20 3 32 32", "20 3 32 32", "20 3 32 32"]);
  assert.ok(!fs.existsSync(logCpu), "--no-gpu-augment must not call sln_cuda_augment");
  const losses = (exp: string) =>
    fs.readFileSync(path.join(exp, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => r.event === "batch").map((r) => [r.batch, r.loss]);
  const lg = losses(gpu.exp);
  assert.equal(lg.length, 3);
  assert.deepEqual(lg, losses(cpu.exp));
  const wg = safetensors.load(path.join(gpu.exp, "model.safetensors")).tensors;
  const wc = safetensors.load(path.join(cpu.exp, "model.safetensors")).tensors;
  assert.deepEqual(Object.keys(wg).sort(), Object.keys(wc).sort());
  for (const k of Object.keys(wc)) assert.deepEqual(Buffer.from(wg[k].data.buffer, wg[k].data.byteOffset, wg[k].data.byteLength), Buffer.from(wc[k].data.buffer, wc[k].data.byteOffset, wc[k].data.byteLength), `${k} differs`);
});

test("the GPU suites pass against the fake device (SELFLABEL_TEST_DEVICE=cuda: no device skips)", () => {
  const r = node(["--test", "--test-concurrency=1", path.join(root, ".build-ts/test/gpu/")], {
    SELFLABEL_CUDA_LIB: fake("DEVICE"),
    SELFLABEL_TEST_DEVICE: "cuda",
  });
  assert.equal(r.status, 0, r.stdout.slice(-4000) + r.stderr.slice(-2000));
  assert.match(r.stdout, /# fail 0/);
  assert.match(r.stdout, /# skipped 0/);
});

test("SELFLABEL_TEST_DEVICE=cuda turns a missing device into failures, not skips", () => {
  const r = node(["--test", path.join(root, ".build-ts/test/gpu/sinkhorn.test.js")], {
    SELFLABEL_CUDA_LIB: path.join(tmp, "missing.so"),
    SELFLABEL_TEST_DEVICE: "cuda",
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stdout, /SELFLABEL_TEST_DEVICE=cuda, but CUDA is unavailable/);
  const s = node(["--test", path.join(root, ".build-ts/test/gpu/sinkhorn.test.js")], { SELFLABEL_CUDA_LIB: path.join(tmp, "missing.so"), SELFLABEL_TEST_DEVICE: "" });
  assert.equal(s.status, 0);
  assert.match(s.stdout, /# SKIP skipped: no CUDA device/);
});
