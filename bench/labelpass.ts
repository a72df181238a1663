// npm run bench -- labelpass [--data DIR] [--model FILE] [--threads N] [--count N] [--batch N]
//
// One label pass over a training set (default: Fashion-MNIST's 60000 images at
// /usr/share/datasets/fashion-mnist, smallcnn, 10 clusters, lambda 25, tol 0.1,
// 2 threads), three ways in this run, one after the other:
//   before   the explicit path the trainer used until the label state moved into
//            the model: forward("features") per batch, a row scatter in JS, a
//            state-dict export for the head, sinkhornFromFeatures;
//   f32      model.collect + model.relabel (float32 trunk, layer by layer);
//   bf16     model.collect({ precision: "bf16" }) + relabel: the fused trunk
//            (conv + batch norm + ReLU folded, one layout) in bfloat16.
// Prints the forward and solve seconds of each, images/s, the speedups against
// "before", and how many labels bf16 agrees with f32 on. --model: trained weights
// (model.safetensors of a train run on the same data; without it the network is
// at its initialisation and the agreement says little).
import { createModel, Model } from "../lib/model";
import { native } from "../lib/binding";
import { openDataset, Loader } from "../lib/data";
import { sinkhornFromFeatures, SinkhornResult } from "../lib/sinkhorn";

function arg(args: string[], name: string, dflt: string): string {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}

export async function main(args: string[]): Promise<void> {
  const data = arg(args, "--data", "/usr/share/datasets/fashion-mnist");
  const modelFile = arg(args, "--model", "");
  const threads = Number(arg(args, "--threads", "2"));
  const count = Number(arg(args, "--count", "0"));
  const batch = Number(arg(args, "--batch", "512"));
  native().setThreads(threads);
  const full = await openDataset({ data, split: "train" });
  const N = count > 0 ? Math.min(count, full.count) : full.count;
  const sk = { lambda: 25, tol: 0.1, maxIters: 10000 };
  const m: Model = await createModel({ arch: "smallcnn", numClasses: [10], inputShape: [full.channels, full.height, full.width], device: "cpu" });
  if (modelFile) await m.loadPth(modelFile);
  const info = native().info();
  console.log(`label pass over ${N} images of ${full.name} (${full.channels}x${full.height}x${full.width}), batch ${batch}, ${threads} threads`);
  console.log(`CPU: ${info.cpu}; native bfloat16: ${info.bf16}; weights: ${modelFile || "initialisation (no --model)"}`);
  const loader = new Loader(full, { batchSize: batch, size: full.height, level: 0, seed: 1, shuffle: false });
  async function* batches() {
    for await (const b of loader.epoch(0)) {
      if (b.indices[0] >= N) break;
      if (b.indices[b.size - 1] < N) {
        yield b;
        continue;
      }
      const keep = N - b.indices[0];
      yield { ...b, size: keep, data: b.data.subarray(0, (keep * b.data.length) / b.size), indices: b.indices.subarray(0, keep) };
    }
  }
  await m.setLabels([Int32Array.from({ length: N }, (_, i) => i % 10)]);
  // warm-up: primitive creation for both paths (one batch each)
  for await (const b of batches()) {
    await m.forward(b.data, { output: "features" });
    await m.forward(b.data, { output: "features", precision: "bf16" });
    break;
  }
  const rows: { name: string; fwd: number; solve: number; res: SinkhornResult }[] = [];
  {
    const t0 = Date.now();
    const D = m.featureDim;
    const feats = new Float32Array(N * D);
    for await (const b of batches()) {
      const f = await m.forward(b.data, { output: "features" });
      for (let i = 0; i < b.size; i++) feats.set(f.subarray(i * D, (i + 1) * D), b.indices[i] * D);
    }
    const t1 = Date.now();
    const sd = await m.stateDict();
    const res = await sinkhornFromFeatures(feats, N, D, sd["top_layer.weight"].data, sd["top_layer.bias"].data, 10, sk);
    rows.push({ name: "before (forward + JS scatter + stateDict + sinkhornFromFeatures)", fwd: (t1 - t0) / 1000, solve: (Date.now() - t1) / 1000, res });
  }
  for (const precision of ["f32", "bf16"] as const) {
    const t0 = Date.now();
    for await (const b of batches()) await m.collect(b.data, b.indices, { precision });
    const t1 = Date.now();
    const [res] = await m.relabel(sk);
    rows.push({ name: `collect + relabel, ${precision}`, fwd: (t1 - t0) / 1000, solve: (Date.now() - t1) / 1000, res });
  }
  const base = rows[0].fwd + rows[0].solve;
  for (const r of rows) {
    const tot = r.fwd + r.solve;
    console.log(
      `${r.name.padEnd(66)} forward ${r.fwd.toFixed(1).padStart(6)} s (${(N / r.fwd).toFixed(0).padStart(5)} img/s), ` +
        `solve ${r.solve.toFixed(1).padStart(5)} s (${r.res.iterations} it), total ${tot.toFixed(1).padStart(6)} s, ${(base / tot).toFixed(2)}x`,
    );
  }
  const eq = (a: Int32Array, b: Int32Array) => a.reduce((s, v, i) => s + (v === b[i] ? 1 : 0), 0);
  console.log(`labels: f32 collect/relabel vs before: ${eq(rows[1].res.labels, rows[0].res.labels)} of ${N} equal`);
  const agree = eq(rows[2].res.labels, rows[1].res.labels);
  console.log(`labels: bf16 vs f32 agree on ${agree} of ${N} (${((100 * agree) / N).toFixed(2)}%)`);
  m.dispose();
  await full.close();
}
