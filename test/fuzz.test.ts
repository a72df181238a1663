// Fuzzing kept in the test suite (issue 19): every parser gets seeded,
// deterministic mutated inputs (bench/fuzz/: the same driver as
// `npm run fuzz -- --n 100000`), each parser in its own child process. Fails
// on an internal error, an error that does not name its file, a hang, a
// refused valid seed, memory over the bound, or a child that dies. The counts
// are smaller than the standalone run's so the suite stays quick; the
// parsers that go through async file reads (IDX, CIFAR) and the image
// decoders cost the most per input.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { runFuzz } from "../bench/fuzz/run";

const COUNTS: Record<string, number> = { safetensors: 2000, pth: 2000, checkpoint: 1000, idx: 500, cifar: 500, image: 300, jpeg: 2000 };

for (const [parser, n] of Object.entries(COUNTS)) {
  test(`fuzz ${parser}: ${n} mutated inputs, no crash, hang, unnamed error or memory over the bound`, async () => {
    const lines: string[] = [];
    // hang = one input slower than 15 s (the slowest seen, a 1 MP BMP under a loaded machine, took 7 s)
    const r = await runFuzz({ n, parsers: [parser], seed: 19, hangMs: 15000, log: (l) => lines.push(l) });
    assert.deepEqual(r.failures, [], lines.join("\n"));
    const s = r.summaries[0];
    assert.equal(s.inputs, n);
    assert.ok(s.clean > 0 && s.accepted > 0, `both accepted and refused inputs: ${lines.join("\n")}`);
  });
}
