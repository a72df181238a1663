// A batch of random uint8 RGB sources (HWC) of the given sizes with level-3
// augmentation parameters for a 3 x size x size model: what Loader.sourceBatch hands
// Model.trainStep. Pixels and parameters are drawn from rng, in that order.
import { AugmentInput, augmentConfig, augmentInput, sampleBatchParams, IMAGENET_MEAN, IMAGENET_STD } from "../../lib/data/augment";
import { Prng } from "../../lib/prng";

export function randomSourceInput(rng: Prng, heights: Int32Array, widths: Int32Array, size: number): AugmentInput {
  const n = heights.length;
  const offsets = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    offsets[i] = total;
    total += heights[i] * widths[i] * 3;
  }
  const data = new Uint8Array(total).map(() => Math.floor(rng.random() * 256));
  const params = sampleBatchParams(augmentConfig(3, size, 3), heights, widths, rng);
  return augmentInput({ data, offsets, heights, widths }, params, { channels: 3, layout: "HWC", size, outChannels: 3, mean: IMAGENET_MEAN, std: IMAGENET_STD });
}
