// npm run bench -- gpu_sinkhorn [--n N] [--k K] [--iters I] [--dtype f64|f32]
// Seconds per Sinkhorn iteration on the GPU (sln_cuda_sinkhorn) for ImageNet's
// label problem (N = 1,281,167 images, K = 3000 clusters by default), against
// the card's bandwidth floor: one fused iteration streams the N x K matrix once
// (8 or 4 bytes per entry) plus the vectors, so floor = bytes / copy bandwidth
// (device-to-device copy, read + write bytes per second, measured with torch on
// the same card in the same run). Without a CUDA device it says so and exits 0.
import { spawnSync } from "node:child_process";
import { arg, findTorchPython } from "./_torch";
import { loadCuda } from "../lib/cuda";
import { sinkhornCuda } from "../lib/sinkhorn";

export async function main(args: string[]): Promise<void> {
  const n = arg(args, "--n", 1281167);
  const k = arg(args, "--k", 3000);
  const iters = arg(args, "--iters", 30);
  const dtype = args.includes("--dtype") && args[args.indexOf("--dtype") + 1] === "f32" ? "f32" : "f64";
  const st = await loadCuda();
  if (!st.available) {
    console.log(`# gpu_sinkhorn: skipped: no CUDA device (${st.reason})`);
    return;
  }
  console.log(`# gpu_sinkhorn: N=${n} K=${k} ${dtype}, ${iters} iterations (tol 0), ${st.reason}`);
  // Logits from a random table of prime size indexed by (row, column): cheap to
  // fill for 3.8e9 entries, no two rows equal, no structure the solver exploits.
  const T = 1048573;
  const table = new Float32Array(T);
  for (let i = 0; i < T; i++) table[i] = Math.sin(i * 12.9898) * 2;
  const z = new Float32Array(n * k);
  for (let j = 0; j < n; j++) {
    const base = (j * 1237) % T;
    const row = j * k;
    for (let c = 0; c < k; c++) z[row + c] = table[(base + c * 7) % T];
  }
  const t0 = Date.now();
  const r = await sinkhornCuda(z, n, k, { lambda: 25, tol: 0, maxIters: iters, dtype });
  const wall = (Date.now() - t0) / 1000;
  const bytes = n * k * (dtype === "f64" ? 8 : 4) + n * 8 * 2 + k * 8 * 2;
  let bw = NaN;
  const py = findTorchPython();
  if (py) {
    const p = spawnSync(py, [__dirname + "/../../bench/torch_gpu_trainstep.py", "1", "bandwidth-only"], { encoding: "utf8" });
    for (const line of p.stdout.split("\n").filter(Boolean)) {
      const j = JSON.parse(line);
      if (j.case === "copy bandwidth GB/s") bw = j.value;
    }
  }
  const floor = bytes / (bw * 1e9);
  const res = {
    case: `sinkhorn N=${n} K=${k} ${dtype}`,
    iterations: r.iterations,
    median_iter_s: r.medianIterSeconds,
    build_s: r.buildSeconds,
    solve_s: r.solveSeconds,
    wall_s: wall,
    bytes_per_iter: bytes,
    copy_gbs: bw,
    floor_iter_s: floor,
    ratio_to_floor: r.medianIterSeconds / floor,
  };
  console.log(JSON.stringify(res));
  console.log(
    `sinkhorn N=${n} K=${k} ${dtype}: ${(r.medianIterSeconds * 1e3).toFixed(2)} ms/iteration (median of ${r.iterations}), ` +
      `floor ${(floor * 1e3).toFixed(2)} ms at ${bw.toFixed(0)} GB/s copy bandwidth: ${res.ratio_to_floor.toFixed(2)}x the floor; ` +
      `build ${r.buildSeconds.toFixed(2)} s, wall ${wall.toFixed(1)} s (incl. upload)`,
  );
}
