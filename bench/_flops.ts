// Multiply-add counts for the benchmarks' GFLOP/s figures: conv2d and linear
// layers only (batch norm, ReLU and pooling are a few percent of the arithmetic
// and are left out, so the figure is a slight undercount). Read from the model's
// own trunk layers (output shapes) and tensors (weight shapes).
import type { Model } from "../lib/model";

/** FLOPs per image of one forward pass: 2 x multiply-adds of every conv2d in the trunk and every 2-D weight (linear). */
export function forwardFlops(m: Model): { total: number; firstConv: number } {
  const weights = new Map(m.tensors().map((t) => [t.name, t.shape]));
  let total = 0,
    firstConv = -1;
  for (const l of m.trunkLayers()) {
    if (l.kind === "residual") throw new Error(`forwardFlops: ${l.name} is a residual block (its convs are not listed); smallcnn/alexnet only`);
    if (l.kind !== "conv2d") continue;
    const w = weights.get(l.name + ".weight");
    if (!w || w.length !== 4) throw new Error(`forwardFlops: no 4-D weight for ${l.name}`);
    const f = 2 * w[0] * w[1] * w[2] * w[3] * l.shape[1] * l.shape[2];
    if (firstConv < 0) firstConv = f;
    total += f;
  }
  for (const [, shape] of weights) if (shape.length === 2) total += 2 * shape[0] * shape[1];
  return { total, firstConv: Math.max(firstConv, 0) };
}

/**
 * FLOPs per image of one training step: the forward, the backward to the data
 * (the same products, except for the first layer, whose input gradient is not
 * computed) and the backward to the weights (the same products again).
 */
export function trainStepFlops(m: Model): number {
  const f = forwardFlops(m);
  return 3 * f.total - f.firstConv;
}
