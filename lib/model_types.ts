// Plain data types shared by the model, the binding and the weight readers
// (lib/model.ts re-exports them): kept apart so lib/binding.ts and lib/pth do not
// import lib/model.ts.

export interface StepOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  /**
   * This batch's first image's position in a larger batch (a data-parallel rank's
   * part of the global batch): dropout draws the masks of those positions, so the
   * parts together drop what the whole batch drops. Default 0.
   */
  rowOffset?: number;
}

export interface StepResult {
  /** Mean of the heads' cross-entropy losses. */
  loss: number;
  headLosses: number[];
}

/** A named tensor as in a PyTorch state_dict: shape and float32 data. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}
export type StateDict = Record<string, Tensor>;

export interface TensorInfo {
  name: string;
  shape: number[];
  kind: "param" | "buffer";
}

/** A trunk layer: PyTorch module name, kind ("conv2d", "relu", "residual", ...), output [C, H, W]. */
export interface TrunkLayer {
  name: string;
  kind: string;
  shape: [number, number, number];
}

/**
 * Where and how forwardTaps reads a trunk activation: after trunk layer
 * `layer` (an index into trunkLayers()), downsampled natively with PyTorch's
 * semantics: max / avg = MaxPool2d / AvgPool2d(kernel, stride, pad),
 * adaptive-max / adaptive-avg = AdaptiveMax/AvgPool2d((outHeight, outWidth)),
 * none = the whole map. See native/core/probe_pool.h.
 */
export type TapPool =
  | { pool: "none" }
  | { pool: "max" | "avg"; kernel: number; stride?: number; pad?: number }
  | { pool: "adaptive-max" | "adaptive-avg"; outHeight: number; outWidth?: number };
export type Tap = { layer: number } & TapPool;
