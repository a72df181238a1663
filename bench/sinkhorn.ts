// npm run bench -- sinkhorn [--quick] [--threads N] [--no-numpy] [--numpy-big] [--ref-iters N]
//
// Per size (N x K logits, lambda 25, tol 0.1): the fused solver with f64 and f32
// storage, the reference's two-pass algorithm in C++ (softmax, power, two
// matrix-vector passes per iteration: a fair "numpy-like" baseline), and the actual
// numpy reference (bench/sinkhorn_numpy.py via /usr/bin/python3) for the N=60000
// sizes (N=200000/K=3000 with --numpy-big: about 4 minutes and ~10 GB). Prints
// seconds per iteration, GB/s, the bandwidth floor (bytes of one pass over the
// matrix / this machine's measured bandwidth) and the per-solve speedups, all
// measured in this run. The default run stays under ~10 minutes on a quiet 2-core
// machine: the C++ two-pass baseline of the largest size is timed for --ref-iters
// iterations and its solve time extrapolated to the fused solver's iteration count
// (both run the same iterates, so they take the same number of iterations).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { packageRoot, native } from "../lib/binding";
import { sinkhorn, sinkhornTwoPassReference, SinkhornResult } from "../lib/sinkhorn";
import { memoryBandwidth } from "./probe";

interface Row {
  size: string;
  impl: string;
  iters: number;
  buildS: number;
  perIterS: number;
  gbs: number;
  xFloor: number | null;
  solveS: number;
  note: string;
}

/** Logits like a network head's: per-image offsets, cluster preferences and noise. Deterministic. */
function makeLogits(n: number, k: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  // Spread chosen so a solve takes ~100-200 iterations, like a trained head's logits
  // (random small logits converge in ~20 and would make the build dominate).
  const pref = new Float32Array(k);
  for (let q = 0; q < k; q++) pref[q] = (rnd() - 0.5) * 2;
  const z = new Float32Array(n * k);
  for (let j = 0; j < n; j++) {
    const base = (rnd() - 0.5) * 2;
    for (let q = 0; q < k; q++) {
      // 2 x (sum of 3 uniforms - 1.5): cheap, roughly normal, std ~1
      z[j * k + q] = scale * (base + pref[q] + 2 * (rnd() + rnd() + rnd() - 1.5));
    }
  }
  return z;
}

function fmt(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return "-";
  if (v !== 0 && Math.abs(v) < 0.01) return v.toExponential(2);
  return v.toFixed(digits);
}

function argVal(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? Number(args[i + 1]) : dflt;
}

function memAvailable(): number {
  try {
    const m = fs.readFileSync("/proc/meminfo", "utf8").match(/MemAvailable:\s+(\d+) kB/);
    if (m) return Number(m[1]) * 1024;
  } catch {
    /* fall through */
  }
  return os.freemem();
}

function agreement(a: Int32Array, b: Int32Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

export async function main(args: string[]): Promise<void> {
  const quick = args.includes("--quick");
  const threads = argVal(args, "--threads", native().info().threads);
  const refIters = argVal(args, "--ref-iters", 40);
  const withNumpy = !args.includes("--no-numpy");
  const numpyBig = args.includes("--numpy-big");
  const lambda = 25, tol = 0.1;
  // [N, K, logit scale]. Scale 1 makes the 200000x3000 solve converge in ~30
  // iterations, so its per-solve time is mostly building the matrix. Scale 4 makes
  // the logits more peaked (as a trained head's: the reference run on this
  // size takes 411 iterations), so the iterations dominate the solve; both are shown.
  const sizes: [number, number, number][] = quick
    ? [[60000, 10, 1], [60000, 128, 1], [50000, 1000, 1]]
    : [[60000, 10, 1], [60000, 128, 1], [200000, 3000, 1], [200000, 3000, 4]];

  console.log(`sinkhorn bench: ${threads} threads, lambda=${lambda}, tol=${tol}${quick ? " (--quick)" : ""}`);
  console.log(`cpu: ${native().info().cpu}; load average ${os.loadavg().map((v) => v.toFixed(2)).join(" ")}`);
  // Bandwidth: best of read-only sum, copy and triad over 3 x 512 MB arrays. The solver
  // only reads the matrix; taking the best of the three makes the floor strict.
  const bw = memoryBandwidth(quick ? 256 << 20 : 512 << 20, threads, 3);
  const bwBest = Math.max(bw.read, bw.copy, bw.triad);
  console.log(`memory bandwidth (GB/s): read ${fmt(bw.read, 1)}, copy ${fmt(bw.copy, 1)}, triad ${fmt(bw.triad, 1)} -> floor uses ${fmt(bwBest, 1)}`);

  // Warm-up: the first solve in a process also pays for starting OpenMP's threads and
  // first-use costs (measured: 0.09 s instead of 0.024 s to build 60000x128); each
  // implementation gets one tiny untimed solve first, so no timed row pays them.
  const warm = makeLogits(256, 16, 1);
  for (const dtype of ["f64", "f32"] as const) await sinkhorn(warm, 256, 16, { lambda, tol, dtype, threads });
  await sinkhornTwoPassReference(warm, 256, 16, { lambda, tol, threads });

  const rows: Row[] = [];
  const push = (r: Row) => {
    rows.push(r);
    console.log(`  ${r.size} ${r.impl}: ${r.iters} iters, build ${fmt(r.buildS)} s, ${fmt(r.perIterS, 4)} s/iter, solve ${fmt(r.solveS, 2)} s ${r.note}`);
  };
  const summary: string[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-sinkhorn-"));
  try {
    for (const [n, k, scale] of sizes) {
      const size = scale === 1 ? `${n}x${k}` : `${n}x${k} (logits x${scale})`;
      const z = makeLogits(n, k, n + k, scale);
      const entries = n * k;
      const fused: Record<string, SinkhornResult> = {};
      // Untimed: one build of this size's f64 matrix (the largest any row allocates).
      // The first time a process touches that much new memory costs seconds on the dev
      // VM (measured 6.8 s instead of 1.3 s to build 200000x3000 f64, nearly all in the
      // kernel clearing pages); without this the fused rows would pay it and the two-pass
      // baseline, run after them, would get the pages they freed.
      await sinkhorn(z, n, k, { lambda, tol, dtype: "f64", threads, maxIters: 1 });
      for (const dtype of ["f64", "f32"] as const) {
        let res: SinkhornResult;
        try {
          res = await sinkhorn(z, n, k, { lambda, tol, dtype, threads });
        } catch (e) {
          // e.g. f32 storage on very peaked logits: entries below f32's range are 0 and
          // the scaling can leave the float64 range; the solver refuses, the table says so
          console.log(`  ${size} fused ${dtype}: refused: ${(e as Error).message}`);
          summary.push(`${size} fused ${dtype}: refused: ${(e as Error).message}`);
          continue;
        }
        fused[dtype] = res;
        const bytes = entries * (dtype === "f64" ? 8 : 4);
        const per = res.medianIterSeconds;
        push({
          size,
          impl: `fused ${dtype}`,
          iters: res.iterations,
          buildS: res.buildSeconds,
          perIterS: per,
          gbs: bytes / per / 1e9,
          xFloor: per / (bytes / (bwBest * 1e9)),
          solveS: res.buildSeconds + res.solveSeconds,
          note: res.converged ? "" : "not converged",
        });
      }
      const iters = fused.f64.iterations;
      if (k === 128) {
        // warm start: the next label pass sees slightly moved logits (+ noise of std ~0.1)
        const z2 = new Float32Array(z.length);
        let s = 12345;
        for (let i = 0; i < z.length; i++) {
          s = (Math.imul(s, 1103515245) + 12345) >>> 0;
          z2[i] = z[i] + ((s / 4294967296) - 0.5) * 0.35;
        }
        const cold = await sinkhorn(z2, n, k, { lambda, tol, threads });
        const warmR = await sinkhorn(z2, n, k, { lambda, tol, threads, warmStart: fused.f64.scaling.logR });
        summary.push(
          `${size} next label pass (logits moved by noise of std 0.1): cold ${cold.iterations} iterations, ` +
            `warm-started from the previous scalings ${warmR.iterations} (saves ${cold.iterations - warmR.iterations}); ` +
            `labels agree ${fmt(100 * agreement(cold.labels, warmR.labels), 2)}%`,
        );
      }
      // C++ two-pass reference (f64 storage, as the reference)
      const capped = !quick && entries > 1e8;
      const tp = await sinkhornTwoPassReference(z, n, k, {
        lambda,
        tol,
        threads,
        maxIters: capped ? Math.min(refIters, iters) : 100000,
      });
      const tpPer = tp.medianIterSeconds;
      const tpSolve = capped ? tp.buildSeconds + tpPer * iters : tp.buildSeconds + tp.solveSeconds;
      push({
        size,
        impl: "C++ two-pass",
        iters: tp.iterations,
        buildS: tp.buildSeconds,
        perIterS: tpPer,
        gbs: (2 * entries * 8) / tpPer / 1e9,
        xFloor: tpPer / ((entries * 8) / (bwBest * 1e9)),
        solveS: tpSolve,
        note: capped ? `timed ${tp.iterations} iters, solve extrapolated to ${iters}` : `labels agree ${fmt(100 * agreement(tp.labels, fused.f64.labels), 2)}%`,
      });
      let npSolve = NaN;
      const bigOk = entries <= 1e7 || numpyBig;
      if (withNumpy && bigOk) {
        const need = entries * 8 + entries * 4 + (64 << 20);
        if (memAvailable() < need * 1.2) {
          console.log(`numpy ${size}: skipped, needs ~${(need / 1e9).toFixed(1)} GB and ${(memAvailable() / 1e9).toFixed(1)} GB is available`);
        } else {
          const zf = path.join(tmp, "z.f32"), lf = path.join(tmp, "labels.i32");
          // in 1 GiB pieces: a single write is limited to 2 GiB
          const fd = fs.openSync(zf, "w");
          const bytes = new Uint8Array(z.buffer, z.byteOffset, z.byteLength);
          for (let off = 0; off < bytes.length; off += 1 << 30) {
            const piece = bytes.subarray(off, Math.min(bytes.length, off + (1 << 30)));
            let done = 0;
            while (done < piece.length) done += fs.writeSync(fd, piece, done, piece.length - done);
          }
          fs.closeSync(fd);
          const out = execFileSync(
            "/usr/bin/python3",
            [path.join(packageRoot(), "bench/sinkhorn_numpy.py"), zf, String(n), String(k), String(lambda), String(tol), "100000", lf],
            { encoding: "utf8", maxBuffer: 1 << 20 },
          );
          const r = JSON.parse(out.trim().split("\n").pop()!);
          const labels = new Int32Array(new Uint8Array(fs.readFileSync(lf)).buffer);
          fs.rmSync(zf);
          fs.rmSync(lf);
          const per = r.median_iter_s;
          npSolve = r.softmax_s + r.solve_s;
          push({
            size,
            impl: "numpy reference",
            iters: r.iterations,
            buildS: r.softmax_s + r.power_s,
            perIterS: per,
            gbs: (2 * entries * 8) / per / 1e9,
            xFloor: per / ((entries * 8) / (bwBest * 1e9)),
            solveS: npSolve,
            note: `labels agree ${fmt(100 * agreement(labels, fused.f64.labels), 2)}%`,
          });
        }
      }
      const row = (impl: string) => rows.find((r) => r.size === size && r.impl === impl);
      const f64S = row("fused f64")?.solveS ?? NaN, f32S = row("fused f32")?.solveS ?? NaN;
      const f64I = row("fused f64")?.perIterS ?? NaN, f32I = row("fused f32")?.perIterS ?? NaN;
      summary.push(
        `${size}: per iteration (median), fused f64 ${fmt(tpPer / f64I, 2)}x and fused f32 ${fmt(tpPer / f32I, 2)}x faster than C++ two-pass`,
      );
      summary.push(
        `${size}: per solve, fused f64 ${fmt(tpSolve / f64S, 2)}x and fused f32 ${fmt(tpSolve / f32S, 2)}x faster than C++ two-pass` +
          (Number.isFinite(npSolve) ? `; ${fmt(npSolve / f64S, 2)}x and ${fmt(npSolve / f32S, 2)}x faster than numpy` : "") +
          (fused.f32 ? `; f32 labels agree with f64 on ${fmt(100 * agreement(fused.f32.labels, fused.f64.labels), 2)}%` : ""),
      );
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const header = ["size", "impl", "iters", "build s", "s/iter", "GB/s", "x floor", "solve s", "note"];
  const table = rows.map((r) => [
    r.size,
    r.impl,
    String(r.iters),
    fmt(r.buildS),
    fmt(r.perIterS, 4),
    fmt(r.gbs, 1),
    r.xFloor === null ? "-" : fmt(r.xFloor, 2),
    fmt(r.solveS, 2),
    r.note,
  ]);
  console.log("");
  console.log("| " + header.join(" | ") + " |");
  console.log("|" + header.map(() => "---").join("|") + "|");
  for (const t of table) console.log("| " + t.join(" | ") + " |");
  console.log("");
  console.log("s/iter = median time of one iteration in the solve (robust to other jobs on the machine); " +
    "x floor = s/iter / (bytes of ONE pass over the stored matrix / measured bandwidth); GB/s counts the bytes each");
  console.log("implementation streams per iteration (two passes for the two-pass ones). solve s = build (exp/softmax/power) + iterations.");
  for (const s of summary) console.log(s);
}
