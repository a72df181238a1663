// Machine probes for the benchmarks: memory bandwidth and oneDNN's float32 GEMM
// rate, from bench/native/probe.cpp. That program is bench-only (not in the addon
// users install): it is compiled here on first use, into build/bench-probe, and
// recompiled when the source is newer than the binary.
import * as fs from "node:fs";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { packageRoot } from "../lib/binding";

function probeBinary(): string {
  const root = packageRoot();
  const src = path.join(root, "bench/native/probe.cpp");
  const bin = path.join(root, "build/bench-probe");
  if (!fs.existsSync(bin) || fs.statSync(bin).mtimeMs < fs.statSync(src).mtimeMs) {
    fs.mkdirSync(path.dirname(bin), { recursive: true });
    // CXX may carry a launcher ("ccache g++")
    const [cxx, ...pre] = (process.env.CXX || "g++").trim().split(/\s+/);
    execFileSync(cxx, [...pre, "-O3", "-std=c++17", "-fopenmp", src, "-o", bin, "-ldnnl"], { stdio: "inherit" });
  }
  return bin;
}

function probe(args: (string | number)[]): unknown {
  return JSON.parse(execFileSync(probeBinary(), args.map(String), { encoding: "utf8" }));
}

/** Memory bandwidth in GB/s (best of `reps`: read-only sum, copy, triad over `bytes` per array). */
export function memoryBandwidth(bytes: number, threads: number, reps = 3): { read: number; copy: number; triad: number } {
  return probe(["bandwidth", bytes, threads, reps]) as { read: number; copy: number; triad: number };
}

/** oneDNN's float32 GEMM of two n x n matrices on `threads` threads: GFLOP/s (median of `reps`). */
export function sgemmGflops(n: number, threads: number, reps = 5): { gflops: number; seconds: number } {
  return probe(["sgemm", n, threads, reps]) as { gflops: number; seconds: number };
}
