// One label pass: the whole training set through the network (unshuffled,
// --paugs augmentation, --label-mode BN mode), then every head's labels
// re-solved by Sinkhorn. CPU: the penultimate features are gathered and the
// solver computes the logits block by block (solve_features). CUDA: the heads'
// logits come from the GPU forward and sln_cuda_sinkhorn solves them on the GPU
// (hc*N*K floats on the host instead of N*D).
import { Model } from "../model";
import { Loader } from "../data";
import { sinkhornFromFeatures, sinkhornCuda, SinkhornOptions } from "../sinkhorn";
import { nmi } from "../metrics";
import type { ResolvedOptions } from "./options";

export function headName(hc: number, h: number): string {
  return hc === 1 ? "top_layer" : `top_layer${h}`;
}

export interface HeadPassSummary {
  head: number;
  iterations: number;
  error: number;
  cost: number;
  /** Smallest and largest cluster. */
  min: number;
  max: number;
  /** NMI against the ground truth (when the data has labels). */
  nmi: number | null;
  warning?: string;
}

export interface LabelPassState {
  /** Per head, N labels (replaced by the pass). */
  labels: Int32Array[];
  /** Per head, the last pass's log row scaling (Sinkhorn warm start). */
  warm: (Float64Array | undefined)[];
}

export interface LabelPassResult {
  heads: HeadPassSummary[];
  /** Seconds of the whole pass and of its forward part. */
  seconds: number;
  featureSeconds: number;
}

/** Run pass number `pass` (0-based: it seeds the loader) over `loader`'s images; updates `state` in place. */
export async function labelPass(
  model: Model,
  loader: Loader,
  o: ResolvedOptions,
  state: LabelPassState,
  pass: number,
  truth: Int32Array | null,
): Promise<LabelPassResult> {
  const tp = Date.now();
  const N = loader.dataset.count;
  const D = model.featureDim;
  const numClasses = o.ncl;
  const onGpu = model.device === "cuda";
  const feats = onGpu ? new Float32Array(0) : new Float32Array(N * D);
  const logits = onGpu ? numClasses.map((k) => new Float32Array(N * k)) : [];
  for await (const b of loader.epoch(pass)) {
    if (onGpu) {
      const out = await model.forward(b.data, { mode: o.labelMode, output: "logits" });
      out.forEach((lg, h) => {
        const k = numClasses[h];
        for (let i = 0; i < b.size; i++) logits[h].set(lg.subarray(i * k, (i + 1) * k), b.indices[i] * k);
      });
    } else {
      const f = await model.forward(b.data, { mode: o.labelMode, output: "features" });
      for (let i = 0; i < b.size; i++) feats.set(f.subarray(i * D, (i + 1) * D), b.indices[i] * D);
    }
  }
  const featureSeconds = (Date.now() - tp) / 1000;
  const sd = onGpu ? null : await model.stateDict();
  const heads: HeadPassSummary[] = [];
  for (let h = 0; h < o.hc; h++) {
    const name = headName(o.hc, h);
    const skOpts: SinkhornOptions = {
      lambda: o.lamb,
      tol: o.skTol,
      maxIters: o.skMaxIters,
      dtype: o.dtype,
      warmStart: o.skWarm ? state.warm[h] : undefined,
    };
    const res = sd
      ? await sinkhornFromFeatures(feats, N, D, sd[`${name}.weight`].data, sd[`${name}.bias`].data, numClasses[h], skOpts)
      : await sinkhornCuda(logits[h], N, numClasses[h], skOpts);
    state.labels[h] = res.labels;
    state.warm[h] = res.scaling.logR;
    let mn = Infinity,
      mx = 0;
    for (const c of res.counts) {
      mn = Math.min(mn, c);
      mx = Math.max(mx, c);
    }
    const q = truth ? await nmi(res.labels, truth) : null;
    heads.push({ head: h, iterations: res.iterations, error: res.error, cost: res.cost, min: mn, max: mx, nmi: q, warning: res.warning });
  }
  return { heads, seconds: (Date.now() - tp) / 1000, featureSeconds };
}
