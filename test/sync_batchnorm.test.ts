// Synchronised batch norm (--sync-bn, native/core/sync_batchnorm.cpp) with one
// rank (its all-reduce is the identity) against the float64 reference
// (ref/batchnorm.cpp), forward and backward, on random shapes. The sums are
// float64, so only the float32 rounding of the inputs' products and of the
// outputs remains: a few EPS32 relative (2^-24 = 6e-8) of each output's
// magnitude. The multi-rank sums are tested by test/distributed_train.test.ts.
import { test } from "node:test";
import { Rng, runOp, assertClose, bnInputs } from "./helpers/opcheck";

test("sync batchnorm (one rank) matches the float64 reference, forward and backward", () => {
  const rng = new Rng(171);
  const shapes = [{ N: 2, C: 3, H: 5, W: 7 }, { N: 7, C: 4, H: 1, W: 1 }, { N: 1, C: 2, H: 3, W: 1 }, { N: 16, C: 8, H: 9, W: 9 }];
  for (let t = 0; t < 8; t++) {
    const p = { N: rng.int(1, 6), C: rng.int(1, 5), H: rng.int(1, 9), W: rng.int(1, 9) };
    if (p.N * p.H * p.W >= 2) shapes.push(p);
  }
  for (const s of shapes) {
    const inp = bnInputs(rng, s, true);
    const ref = runOp("batchnorm2d", "ref", s, inp);
    const sync = runOp("batchnorm2d", "cpu", { ...s, sync: 1 }, inp);
    const what = (k: string) => `sync batchnorm ${k} ${JSON.stringify(s)}`;
    // y = xhat*gamma + beta with |xhat| <= sqrt(M): one float32 rounding of the result (observed < 5e-7 abs)
    assertClose(sync.y, ref.y, { atol: 2e-6, rtol: 3e-7 }, what("y"));
    assertClose(sync.running_mean, ref.running_mean, { atol: 1e-7, rtol: 2e-7 }, what("running_mean"));
    assertClose(sync.running_var, ref.running_var, { atol: 1e-7, rtol: 2e-7 }, what("running_var"));
    // float64 sums rounded once to float32 (the reference's own sums are float64 too)
    assertClose(sync.dbeta, ref.dbeta, { atol: 1e-6, rtol: 2e-7 }, what("dbeta"));
    assertClose(sync.dgamma, ref.dgamma, { atol: 1e-6, rtol: 2e-7 }, what("dgamma"));
    assertClose(sync.dx, ref.dx, { atol: 1e-6, rtol: 3e-7 }, what("dx"));
  }
});
