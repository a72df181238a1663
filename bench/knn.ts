// npm run bench -- knn [N M D]: the eval command's kNN (cosine top-200 of M
// queries in a bank of N, D-dim features), end to end, with its GFLOP/s
// (2*N*M*D flops). Default 60000 x 10000 x 128 (Fashion-MNIST, smallcnn).
import { knnClassify } from "../lib/eval/knn";
import { native } from "../lib/binding";
import { Prng } from "../lib/prng";

export async function main(args: string[]): Promise<void> {
  const [N, M, D] = [Number(args[0] ?? 60000), Number(args[1] ?? 10000), Number(args[2] ?? 128)];
  const p = new Prng(1);
  const bank = Float32Array.from({ length: N * D }, () => p.uniform(-1, 1));
  const q = Float32Array.from({ length: M * D }, () => p.uniform(-1, 1));
  const labels = Int32Array.from({ length: N }, (_, i) => i % 10);
  const t = process.hrtime.bigint();
  await knnClassify(bank, labels, q, D, 10, { ks: [10, 200] });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  console.log(
    `knn ${N} x ${M} x ${D}, k=200: ${s.toFixed(2)} s, ${((2 * N * M * D) / s / 1e9).toFixed(1)} GFLOP/s, ${native().info().threads} threads`,
  );
}
