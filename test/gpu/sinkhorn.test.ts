// The GPU Sinkhorn (sln_cuda_sinkhorn) against the CPU solver on random
// problems. Both iterate in float64 from the same cold start with the same
// stopping rule, so the iteration counts must be equal (the error checked every
// 10 iterations is a float64 sum over N rows; the two orders of summation differ
// by ~N*eps64 ~ 1e-10 relative, far from the tolerance unless err lands within
// that of tol, which random problems do not). Labels must be equal except near
// ties: rows whose best and second-best log(B r) scores differ by less than 1e-9
// (relative to lambda*range), where the GPU's different summation order of r
// may legitimately flip the argmax. Those rows are counted and must be rare.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { sinkhorn, sinkhornCuda } from "../../lib/sinkhorn";
import { Rng } from "../helpers/opcheck";
import { cudaOrSkip } from "./_device";

test("cudaSinkhorn equals the CPU solver: iterations, error, labels (except near-ties)", async (t) => {
  if (!(await cudaOrSkip(t))) return;
  const rng = new Rng(31);
  for (const [n, k, lambda, scale, dtype] of [
    [1000, 10, 25, 1, "f64"],
    [5003, 50, 25, 0.3, "f64"],
    [20000, 300, 10, 1, "f64"],
    [4096, 64, 25, 1, "f32"],
  ] as [number, number, number, number, "f64" | "f32"][]) {
    const z = Float32Array.from(rng.tensor(n * k, scale));
    const opts = { lambda, tol: 0.1, maxIters: 2000, dtype };
    const c = await sinkhorn(z, n, k, opts);
    const g = await sinkhornCuda(z, n, k, opts);
    const what = `N=${n} K=${k} lambda=${lambda} ${dtype}`;
    assert.equal(g.iterations, c.iterations, `${what}: iterations`);
    assert.equal(g.converged, c.converged, `${what}: converged`);
    assert.ok(Math.abs(g.error - c.error) <= 1e-6 * Math.max(1, c.error), `${what}: error ${g.error} vs ${c.error}`);
    let ties = 0;
    for (let j = 0; j < n; j++) {
      if (g.labels[j] === c.labels[j]) continue;
      // near-tie check with the CPU's scaling: score_k = lambda*z[j,k] + logR[k]
      const s = (kk: number) => lambda * z[j * k + kk] + c.scaling.logR[kk];
      const gap = Math.abs(s(g.labels[j]) - s(c.labels[j]));
      assert.ok(gap <= 1e-9 * lambda * Math.max(1, scale * 10), `${what}: row ${j} label ${g.labels[j]} vs ${c.labels[j]} is not a near-tie (gap ${gap})`);
      ties++;
    }
    assert.ok(ties <= Math.max(1, n * 1e-4), `${what}: ${ties} near-tie label differences`);
    assert.equal(g.counts.reduce((a, b) => a + b, 0), n);
    t.diagnostic(`${what}: ${c.iterations} iterations, median iteration cpu ${(c.medianIterSeconds * 1e3).toFixed(3)} ms, cuda ${(g.medianIterSeconds * 1e3).toFixed(3)} ms, ${ties} near-ties`);
  }
});
