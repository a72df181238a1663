// The test-only addon (native/harness/addon.cpp): the float64 reference of
// every op and the op harness, which the addon users install does not
// contain. SELFLABEL_TEST_ADDON (an explicit .node path, as on a lent GPU
// machine: scripts/device-prepare.sh carries one) first, else
// scripts/build-test-addon.js builds it on first use (incremental: make of its
// one target) and says where. It runs a case on the float64 reference (backend
// null) or on a backend of the loaded addon (lib/binding.ts's backendHandle).
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { native, packageRoot } from "../../lib/binding";

export type HarnessTensors = Record<string, Float64Array>;
export type HarnessBackend = "ref" | "cpu" | "cuda";

interface TestAddon {
  harnessRun(op: string, backend: unknown, params: Record<string, number>, inputs: HarnessTensors): HarnessTensors;
  harnessOps(): string[];
}

let cached: TestAddon | undefined;
let built = "";

/** The test addon's file: SELFLABEL_TEST_ADDON, else built (or brought up to date) here once per process. */
export function testAddonPath(): string {
  if (process.env.SELFLABEL_TEST_ADDON) return path.resolve(process.env.SELFLABEL_TEST_ADDON);
  if (!built) {
    const r = spawnSync(process.execPath, [path.join(packageRoot(), "scripts", "build-test-addon.js")], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`scripts/build-test-addon.js failed (exit ${r.status ?? r.signal}):\n${(r.stderr ?? "").slice(-4000)}`);
    built = r.stdout.trim();
  }
  return built;
}

export function testAddon(): TestAddon {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  if (!cached) cached = require(testAddonPath()) as TestAddon;
  return cached;
}

/** One harness case on the float64 reference or on the addon's CPU or CUDA backend. */
export function harnessRun(op: string, backend: HarnessBackend, params: Record<string, number>, inputs: HarnessTensors): HarnessTensors {
  const handle = backend === "ref" ? null : native().backendHandle(backend);
  return testAddon().harnessRun(op, handle, params, inputs);
}

export function harnessOps(): string[] {
  return testAddon().harnessOps();
}
