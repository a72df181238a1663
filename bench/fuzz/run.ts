// Fuzz driver: every parser (IDX, CIFAR, safetensors, .pth, checkpoints,
// images) gets N seeded mutated inputs, each parser in its own child process.
//   npm run fuzz -- --n 100000 [--seed S] [--parsers idx,pth] [--hang-ms 5000]
// Counts accepted inputs, clean errors (exit-code-2 errors naming the file),
// internal errors, unnamed errors, hangs, and the peak memory over the
// process's baseline; fails (exit 1) on any internal/unnamed error, hang,
// refused seed, memory over the bound, or a child that dies.
import * as path from "node:path";
import { spawn } from "node:child_process";
import type { FuzzSummary } from "./child";
import { TARGETS } from "./targets";

export interface FuzzOptions {
  n: number;
  seed?: number;
  parsers?: string[];
  hangMs?: number;
  /** Watchdog (ms): a child that reports no progress (a line every 500 inputs) for this long is killed as hung; default 10 min. */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface FuzzResult {
  summaries: (FuzzSummary & { seconds: number })[];
  failures: string[];
}

function runChild(parser: string, n: number, seed: number, hangMs: number, timeoutMs: number): Promise<{ summary: FuzzSummary | null; why: string; seconds: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [path.join(__dirname, "child.js"), parser, String(n), String(seed), String(hangMs)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "",
      err = "";
    child.stdout.on("data", (d) => (out += d));
    let stalled = false;
    const watchdog = () => setTimeout(() => ((stalled = true), child.kill("SIGKILL")), timeoutMs);
    let timer = watchdog();
    child.stderr.on("data", (d) => {
      err += d;
      if (/at \d+\n/.test(String(d))) clearTimeout(timer), (timer = watchdog()); // progress: rearm
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      const seconds = (Date.now() - t0) / 1000;
      const last = (err.match(/at (\d+)\n(?![\s\S]*at \d+\n)/) ?? [])[1] ?? "0";
      if (code === 0) {
        try {
          return resolve({ summary: JSON.parse(out.trim().split("\n").pop()!), why: "", seconds });
        } catch {
          /* fall through */
        }
      }
      const why = stalled ? `made no progress for ${(timeoutMs / 1000).toFixed(0)} s (hang) after input ${last}` : `died (code ${code}, signal ${signal}) after input ${last}: ${err.trim().split("\n").slice(-3).join(" | ")}`;
      resolve({ summary: null, why, seconds });
    });
  });
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzResult> {
  const parsers = o.parsers ?? Object.keys(TARGETS);
  const seed = o.seed ?? 19;
  const hangMs = o.hangMs ?? 5000;
  const log = o.log ?? (() => {});
  const res: FuzzResult = { summaries: [], failures: [] };
  for (const p of parsers) {
    if (!TARGETS[p]) throw new Error(`unknown parser ${p} (known: ${Object.keys(TARGETS).join(", ")})`);
    const r = await runChild(p, o.n, seed, hangMs, o.timeoutMs ?? 600_000);
    if (!r.summary) {
      res.failures.push(`${p}: the fuzz process ${r.why}`);
      log(`${p}: ${r.why}`);
      continue;
    }
    const s = { ...r.summary, seconds: r.seconds };
    res.summaries.push(s);
    const f = (what: string, list: unknown[]) => list.length && res.failures.push(`${p}: ${list.length} ${what}, first ${JSON.stringify(list[0])}`);
    if (s.internalCount) res.failures.push(`${p}: ${s.internalCount} internal errors, first ${JSON.stringify(s.internal[0])}`);
    if (s.unnamedCount) res.failures.push(`${p}: ${s.unnamedCount} errors not naming the file, first ${JSON.stringify(s.unnamed[0])}`);
    f("hangs", s.hangs);
    f("seeds refused", s.seedsRefused);
    f("inputs over the memory bound", s.overMemory);
    log(
      `${p.padEnd(11)} ${String(s.inputs).padStart(7)} inputs: ${String(s.accepted).padStart(6)} accepted, ${String(s.clean).padStart(7)} clean errors, ` +
        `${s.internalCount} internal, ${s.unnamedCount} unnamed, ${s.hangs.length} hangs; slowest ${s.maxCpuMs.toFixed(0)} ms CPU (${s.maxMs.toFixed(0)} ms wall); ` +
        `peak memory +${(s.peakGrowth / 2 ** 20).toFixed(1)} MiB (bound ${(s.memoryBound / 2 ** 20).toFixed(0)} MiB); ${s.seconds.toFixed(1)} s`,
    );
  }
  return res;
}

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const n = Number(arg(args, "--n") ?? 5000);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`--n must be a positive integer, got ${arg(args, "--n")}\n`);
    process.exit(2);
  }
  runFuzz({
    n,
    seed: Number(arg(args, "--seed") ?? 19),
    parsers: arg(args, "--parsers")?.split(","),
    hangMs: Number(arg(args, "--hang-ms") ?? 5000),
    log: (l) => console.log(l),
  }).then((r) => {
    for (const f of r.failures) console.log(`FAIL ${f}`);
    console.log(r.failures.length ? `${r.failures.length} failures` : "no crashes, hangs, unnamed errors or memory over the bound");
    process.exit(r.failures.length ? 1 : 0);
  });
}
