// selflabel-native info: package version, CPU backend, CUDA availability.
import type { Argv } from "yargs";
import * as fs from "node:fs";
import * as path from "node:path";
import { native, packageRoot } from "../binding";

export const command = "info";
export const describe = "Show the package version, the CPU backend (oneDNN, ISA, threads) and CUDA availability";

export function builder(y: Argv): Argv {
  return y.option("json", { type: "boolean", default: false, describe: "print JSON" });
}

export function cudaStatus(): { available: boolean; reason: string } {
  return {
    available: false,
    reason: "not built: this installation has no CUDA backend library (libselflabel_cuda.so)",
  };
}

export async function handler(argv: { json?: boolean; [k: string]: unknown }): Promise<void> {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), "package.json"), "utf8"));
  const n = native().info();
  const cuda = cudaStatus();
  const report = {
    version: pkg.version as string,
    node: process.version,
    napi: n.napiVersion,
    cpu: n.cpu,
    threads: n.threads,
    cuda,
  };
  if (argv.json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  console.log(`selflabel-native ${report.version} (Node ${report.node}, N-API ${report.napi})`);
  console.log(`CPU backend: ${report.cpu}`);
  console.log(`CUDA backend: ${cuda.available ? "available" : "unavailable: " + cuda.reason}`);
}
