// Row-sharded Sinkhorn over MPI (lib/distributed/sinkhorn.ts): R ranks each
// holding N/R rows give the single-process solver's labels, scalings, err and
// iteration count bit for bit in the exact (block-order) mode, and the same
// labels in the all-reduce mode. Runs `mpirun -np 2` and `-np 3` (uneven split);
// skipped with a message where MPI is absent.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { packageRoot } from "../lib/binding";
import { lines, mpirun, skipReason } from "./helpers/mpi";

const worker = path.join(packageRoot(), ".build-ts/test/helpers/dist_sinkhorn_worker.js");

interface Cmp {
  labels: boolean;
  logC: boolean;
  logR: boolean;
  counts: boolean;
  iterations: [number, number];
  error: [number, number];
  cost: [number, number];
  labelsDiffer: number;
  rows: number;
}
type Out = Record<string, Cmp> & { rank: number; size: number; rows: [number, number]; gathered: boolean; nan: string };

for (const ranks of [2, 3]) {
  test(`sharded sinkhorn over ${ranks} ranks equals the single-process solve`, { skip: skipReason() }, () => {
    const r = mpirun(ranks, [worker], { SLN_N: "2000", SLN_K: "24" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const outs = lines<Out>(r.stdout, "SLN_DIST_SINKHORN");
    assert.equal(outs.length, ranks, r.stdout);
    let covered = 0;
    for (const o of outs) {
      assert.equal(o.size, ranks);
      assert.equal(o.rows[0], covered, "rows are contiguous in rank order");
      covered = o.rows[1];
      for (const name of ["f64", "f32", "maxIters", "warm", "features"]) {
        const c = o[name];
        assert.ok(c.rows > 0, `${name}: rank ${o.rank} holds rows`);
        assert.ok(c.labels && c.logC && c.logR && c.counts, `${name} rank ${o.rank}: not bit-identical: ${JSON.stringify(c)}`);
        assert.equal(c.iterations[1], c.iterations[0], name);
        assert.equal(c.error[1], c.error[0], name);
        assert.equal(c.cost[1], c.cost[0], name);
      }
      assert.ok(o.f64.iterations[0] > 20, "a solve of many iterations");
      assert.equal(o.maxIters.iterations[0], 25);
      assert.ok(o.gathered, "gathered labels equal the full label vector");
      // all-reduce mode: same labels and counts, iterates equal up to reassociation
      const x = o.inexact;
      assert.equal(x.labelsDiffer, 0, `inexact rank ${o.rank}: ${JSON.stringify(x)}`);
      assert.ok(x.counts);
      assert.equal(x.iterations[1], x.iterations[0]);
      assert.ok(Math.abs(x.cost[1] - x.cost[0]) <= 1e-12 * x.cost[0], `cost ${x.cost}`);
      assert.match(o.nan, /logits row 1999 \(image 1999.*(NaN at column 3|held by another rank)/);
    }
    assert.equal(covered, 2000);
  });
}
