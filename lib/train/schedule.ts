// Label re-optimisation times and the learning-rate schedule.
//
// The reference (main.py) spaces `nopts` solves quadratically over
// (epochs + 1.0001) * N images, denser early, and pops one whenever the image
// counter passes it. Its last time lies beyond the end of training, so the
// last scheduled solve never happens. Ours spaces them over exactly
// epochs * N images: time_i = epochs * N * (i / (nopts - 1))^2, i = 0..nopts-1.
// The first (0) runs before the first batch, and the last (epochs * N) runs
// after the final batch, so the exported labels come from the final network.

/** Times (in images seen) at which labels are re-optimised, ascending. */
export function labelTimes(epochs: number, n: number, nopts: number): number[] {
  if (!(Number.isInteger(nopts) && nopts >= 1)) throw new RangeError(`--nopts must be an integer >= 1, got ${nopts}`);
  const total = epochs * n;
  if (nopts === 1) return [0];
  const out: number[] = [];
  for (let i = 0; i < nopts; i++) out.push(Math.round(total * (i / (nopts - 1)) ** 2));
  return out;
}

/** How many of `times` are due when `seen` images have been trained on (times ascending). */
export function dueCount(times: number[], seen: number): number {
  let k = 0;
  while (k < times.length && times[k] <= seen) k++;
  return k;
}

/** The reference's step schedule: lr * 0.1^floor(epoch / lrdrop). */
export function learningRate(base: number, epoch: number, lrdrop: number): number {
  if (!(lrdrop > 0)) return base;
  return base * Math.pow(0.1, Math.floor(epoch / lrdrop));
}

/** True when `epoch` is the last epoch before a learning-rate drop. */
export function isBeforeLrDrop(epoch: number, lrdrop: number, epochs: number): boolean {
  return lrdrop > 0 && (epoch + 1) % lrdrop === 0 && epoch + 1 < epochs;
}
