// Builds the fake CUDA libraries of test/fixtures/fake_cuda/fake_cuda.cpp (one
// per FAKE_* variant) with g++, cached under build/fake-cuda/ by a hash of the
// sources, so repeated test runs do not recompile.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { packageRoot } from "../../lib/binding";

export type FakeMode = "WRONG_ABI" | "MISSING" | "ABORT" | "NO_DEVICE" | "DEVICE";

const root = packageRoot();
const FAKE_SRC = "test/fixtures/fake_cuda/fake_cuda.cpp";
// what the DEVICE variant compiles in: the float64 reference ops, the dropout
// mask, the CPU Sinkhorn solver and the CPU augmentation
const DEVICE_SRCS = [
  "native/ref/batchnorm.cpp",
  "native/ref/conv2d.cpp",
  "native/ref/dropout.cpp",
  "native/ref/linear.cpp",
  "native/ref/loss.cpp",
  "native/ref/pool.cpp",
  "native/ref/relu.cpp",
  "native/ref/sgd.cpp",
  "native/core/dropout_mask.cpp",
  "native/core/sinkhorn.cpp",
  "native/core/sinkhorn_kernels.cpp",
  "native/cpu/augment.cpp",
];
const HEADERS = ["native/include/sln/cuda_api.h", "native/include/sln/ops.h", "native/include/sln/errors.h", "native/include/sln/augment.h"];

export function buildFakeCuda(mode: FakeMode): string {
  const srcs = mode === "DEVICE" ? [FAKE_SRC, ...DEVICE_SRCS] : [FAKE_SRC];
  const h = crypto.createHash("sha256");
  for (const f of [...srcs, ...HEADERS]) h.update(fs.readFileSync(path.join(root, f)));
  const dir = path.join(root, "build", "fake-cuda");
  const out = path.join(dir, `libfake_${mode.toLowerCase()}-${h.digest("hex").slice(0, 12)}.so`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  execFileSync(
    "g++",
    [
      "-std=c++17",
      "-O1",
      "-fPIC",
      "-shared",
      "-fvisibility=hidden",
      "-fopenmp",
      `-DFAKE_${mode}`,
      "-Inative/include",
      "-Inative",
      "-o",
      tmp,
      ...srcs,
    ],
    { cwd: root, stdio: ["ignore", "ignore", "pipe"] },
  );
  fs.renameSync(tmp, out);
  return out;
}
