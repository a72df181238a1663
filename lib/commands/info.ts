// selflabel-native info: package version, CPU backend, CUDA availability.
import type { Argv } from "yargs";
import * as fs from "node:fs";
import * as path from "node:path";
import { native, packageRoot } from "../binding";
import { cudaStatus as probeCuda, formatCudaVersion, CudaStatus } from "../cuda";
import { distributedStatus } from "../distributed/status";

export const command = "info";
export const describe = "Show the package version, the CPU backend (oneDNN, ISA, threads), CUDA, MPI and NCCL availability";

export function builder(y: Argv): Argv {
  return y.option("json", { type: "boolean", default: false, describe: "print JSON" });
}

/** The CUDA part of the report: library, device and versions, or why it is unavailable. */
export interface CudaReport {
  available: boolean;
  state: CudaStatus["state"];
  library: string | null;
  reason: string;
  device?: string;
  cc?: string;
  memoryBytes?: number;
  driver?: string;
  runtime?: string;
  cudnn?: string;
  cublas?: string;
}

/** Probe CUDA (in a child process; see lib/cuda.ts) and summarise it. */
export async function cudaStatus(): Promise<CudaReport> {
  const st = await probeCuda();
  const r: CudaReport = { available: st.available, state: st.state, library: st.library, reason: st.reason };
  const p = st.probe;
  if (p && p.ok) {
    r.device = p.device;
    r.cc = p.cc;
    r.memoryBytes = p.memoryBytes;
    r.driver = formatCudaVersion("driver", p.driver);
    r.runtime = formatCudaVersion("runtime", p.runtime);
    r.cudnn = formatCudaVersion("cudnn", p.cudnn);
    r.cublas = formatCudaVersion("cublas", p.cublas);
  }
  return r;
}

export async function handler(argv: { json?: boolean; [k: string]: unknown }): Promise<void> {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), "package.json"), "utf8"));
  const n = native().info();
  const cuda = await cudaStatus();
  const report = {
    version: pkg.version as string,
    node: process.version,
    napi: n.napiVersion,
    cpu: n.cpu,
    threads: n.threads,
    cuda,
    distributed: distributedStatus(),
  };
  if (argv.json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  console.log(`selflabel-native ${report.version} (Node ${report.node}, N-API ${report.napi})`);
  console.log(`CPU backend: ${report.cpu}`);
  if (cuda.available) {
    console.log(`CUDA backend: available: ${cuda.reason}`);
    console.log(`CUDA library: ${cuda.library}`);
  } else {
    console.log(`CUDA backend: unavailable: ${cuda.reason}`);
    if (cuda.library) console.log(`CUDA library: ${cuda.library}`);
  }
  const d = report.distributed;
  console.log(`MPI (--distributed): ${d.mpi.available ? "available" : "unavailable"}: ${d.mpi.reason}`);
  console.log(`NCCL (--distributed --device cuda): ${d.nccl.available ? "available" : "unavailable"}: ${d.nccl.reason}`);
}
