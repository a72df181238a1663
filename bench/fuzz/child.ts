// One parser's fuzz run, in its own process (so a native crash, an abort or
// running out of memory is seen by the parent as this process dying):
//   node child.js PARSER N SEED HANG_MS
// Input i is seed i (unmutated) for the first seeds, else a mutation of seed
// i mod seeds drawn from Prng.derive(SEED, i): any input can be rebuilt from
// (parser, SEED, i). Prints one JSON summary line on stdout; progress on
// stderr ("at i") every 500 inputs.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Prng } from "../../lib/prng";
import { TARGETS } from "./targets";
import { mutate } from "./mutate";

export interface FuzzSummary {
  parser: string;
  inputs: number;
  accepted: number;
  clean: number;
  /** Errors that are not bad-input errors (exit code 1 class): TypeError, RangeError, ... */
  internal: { i: number; error: string }[];
  /** Bad-input errors that do not name the file. */
  unnamed: { i: number; error: string }[];
  /** Inputs that took more than HANG_MS of CPU time (all threads), or 10 x HANG_MS of wall time (blocked). */
  hangs: { i: number; ms: number; cpuMs: number }[];
  /** A seed (valid input) that was refused. */
  seedsRefused: { i: number; error: string }[];
  /** Counts (the lists above keep the first 20). */
  internalCount: number;
  unnamedCount: number;
  maxMs: number;
  /** The most CPU time one input took (ms), and the inputs that took the most. */
  maxCpuMs: number;
  slowest: { i: number; cpuMs: number; ms: number }[];
  maxInputBytes: number;
  /** Peak resident memory over the process's baseline (bytes), and the bound it must stay under. */
  peakGrowth: number;
  memoryBound: number;
  overMemory: { i: number; growth: number }[];
}

/** The memory bound per parser: 256 MiB over the baseline plus 40x the largest input (see lib/pth/torch.ts for the .pth bound). */
export function memoryBound(maxInputBytes: number): number {
  return 256 * 2 ** 20 + 40 * maxInputBytes;
}

async function main(): Promise<void> {
  const [parser, nArg, seedArg, hangArg] = process.argv.slice(2);
  const t = TARGETS[parser];
  if (!t) throw new Error(`unknown parser ${parser}`);
  const n = Number(nArg),
    seed = Number(seedArg),
    hangMs = Number(hangArg);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sln-fuzz-${parser}-`));
  const seeds = await t.seeds();
  const s: FuzzSummary = {
    parser, inputs: 0, accepted: 0, clean: 0, internal: [], unnamed: [], hangs: [], seedsRefused: [],
    internalCount: 0, unnamedCount: 0, maxMs: 0, maxCpuMs: 0, slowest: [], maxInputBytes: 0, peakGrowth: 0, memoryBound: 0, overMemory: [],
  };
  const rss = () => process.resourceUsage().maxRSS * 1024;
  // warm up: parse every seed once, then take the baseline
  for (const x of seeds) await t.run(x, dir).catch(() => {});
  const base = rss();
  try {
    for (let i = 0; i < n; i++) {
      const sd = seeds[i % seeds.length];
      const rng = Prng.derive(seed, i);
      const input = i < seeds.length ? sd : t.mutate ? t.mutate(sd, rng) : mutate(sd, rng);
      s.maxInputBytes = Math.max(s.maxInputBytes, input.length);
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      try {
        await t.run(input, dir);
        s.accepted++;
      } catch (e) {
        const x = e as Error & { exitCode?: number };
        const msg = `${x?.name}: ${String(x?.message).split("\n")[0].slice(0, 300)}`;
        if (i < seeds.length) s.seedsRefused.push({ i, error: msg });
        else if (t.namesFile ? x?.exitCode === 2 : x instanceof Error) {
          const named = !t.namesFile || x.message.includes(dir) || x.message.includes("/fuzz/");
          if (named) s.clean++;
          else s.unnamed.push({ i, error: msg });
        } else s.internal.push({ i, error: msg });
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const cu = process.cpuUsage(c0);
      const cpuMs = (cu.user + cu.system) / 1e3;
      s.maxMs = Math.max(s.maxMs, ms);
      s.maxCpuMs = Math.max(s.maxCpuMs, cpuMs);
      if (s.slowest.length < 5 || cpuMs > s.slowest[s.slowest.length - 1].cpuMs) {
        s.slowest.push({ i, cpuMs: Math.round(cpuMs), ms: Math.round(ms) });
        s.slowest.sort((a, b) => b.cpuMs - a.cpuMs);
        s.slowest.length = Math.min(s.slowest.length, 5);
      }
      // a hang is CPU time (a busy loop): on a loaded machine, wall time also
      // counts the time the scheduler gave to others; an input blocked without
      // using the CPU shows as 10 x HANG_MS of wall time, or stops the progress
      // lines (the parent's watchdog)
      if (cpuMs > hangMs || ms > 10 * hangMs) s.hangs.push({ i, ms: Math.round(ms), cpuMs: Math.round(cpuMs) });
      const grow = rss() - base;
      if (grow > s.peakGrowth) {
        s.peakGrowth = grow;
        if (grow > memoryBound(s.maxInputBytes) && s.overMemory.length < 10) s.overMemory.push({ i, growth: grow });
      }
      s.inputs++;
      if ((i + 1) % 500 === 0) process.stderr.write(`at ${i + 1}\n`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  s.memoryBound = memoryBound(s.maxInputBytes);
  s.internalCount = s.internal.length;
  s.unnamedCount = s.unnamed.length;
  s.internal = s.internal.slice(0, 20);
  s.unnamed = s.unnamed.slice(0, 20);
  process.stdout.write(JSON.stringify(s) + "\n");
}

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`fuzz child failed: ${(e as Error).stack}\n`);
    process.exit(1);
  });
}
