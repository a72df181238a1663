// Models: the typed wrapper over the addon's NativeModel. Validation of
// options happens here and in the addon; every heavy call returns a Promise
// and runs on the libuv pool, so data loading overlaps with compute.
import { native, NativeModel } from "./binding";
import type { AugmentInput } from "./data/augment";
import { loadCuda, cudaNoticeOnce } from "./cuda";
import { loadWeightsAsync, checkAgainst, renameReferenceResnet, PthWeights } from "./pth";
import type { SinkhornOptions, SinkhornResult } from "./sinkhorn_types";
import type { StepOptions, StepResult, Tensor, StateDict, TensorInfo, TrunkLayer, Tap } from "./model_types";
export type { StepOptions, StepResult, Tensor, StateDict, TensorInfo, TrunkLayer, Tap, TapPool } from "./model_types";

export type Arch = "smallcnn" | "alexnet" | "resnet18" | "resnet50";
export type ArchSpec = "big" | "small";
export type Device = "cpu" | "cuda" | "auto";

export interface ModelOptions {
  arch: Arch | string;
  /** Clusters per head: one entry per head. */
  numClasses: number[];
  /** Input shape [C, H, W]. */
  inputShape: [number, number, number];
  /** alexnet only: the reference's --archspec (default "big"). */
  archSpec?: ArchSpec;
  /**
   * resnets only: 3x3 stride-1 stem without max pool (for 32 px images).
   * Default: true when H and W are at most 64.
   */
  smallInput?: boolean;
  device?: Device;
  seed?: number;
  /**
   * Training precision. "bf16": mixed precision, the convolutions round their
   * inputs, weights and gradients to bfloat16 and accumulate in float32 (forward,
   * training step and evaluation alike); the weights SGD updates, batch norm,
   * pooling, the linear layers and the loss stay float32. CPU only; fast where
   * the CPU computes bfloat16 natively (`native().info().bf16`). Default "f32".
   */
  precision?: "f32" | "bf16";
}

export interface ForwardOptions {
  mode?: "eval" | "train";
  output?: "logits" | "probs" | "features" | "features+logits" | "argmax" | "features+argmax";
  /** "bf16": the features from the fused bfloat16 trunk (output "features", mode "eval"; see fusedTrunk). */
  precision?: "f32" | "bf16";
}

export class DeviceUnavailableError extends Error {
  code = "SLN_NO_DEVICE";
}

export class Model {
  readonly arch: string;
  readonly numClasses: number[];
  readonly inputShape: [number, number, number];
  readonly device: "cpu" | "cuda";
  readonly seed: number;
  /** The training precision (ModelOptions.precision). */
  readonly precision: "f32" | "bf16";
  /** alexnet: "big" | "small"; other archs: undefined. */
  readonly archSpec?: ArchSpec;
  /** resnets: whether the small-input stem is used. */
  readonly smallInput: boolean;
  private readonly m: NativeModel;
  private readonly info: TensorInfo[];

  /** Use createModel(). */
  constructor(opts: ModelOptions, m: NativeModel, device: "cpu" | "cuda") {
    this.arch = opts.arch;
    this.numClasses = [...opts.numClasses];
    this.inputShape = [...opts.inputShape] as [number, number, number];
    this.seed = opts.seed ?? 0;
    this.precision = opts.precision ?? "f32";
    this.device = device;
    this.m = m;
    if (opts.arch === "alexnet") this.archSpec = opts.archSpec ?? "big";
    this.smallInput = m.smallInput;
    this.info = m.tensors();
  }

  /** Width of the penultimate feature vector the heads read. */
  get featureDim(): number {
    return this.m.featureDim;
  }
  /** Training steps taken (seeds dropout); restore it when resuming. */
  get step(): number {
    return this.m.step;
  }
  set step(s: number) {
    this.m.step = s;
  }
  get disposed(): boolean {
    return this.m.disposed;
  }
  /** Names, shapes and kinds of every tensor, in state_dict order. */
  tensors(): TensorInfo[] {
    return this.info.map((t) => ({ ...t, shape: [...t.shape] }));
  }
  get numParameters(): number {
    return this.info.filter((t) => t.kind === "param").reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  }

  /**
   * One SGD step on a batch: forward in training mode, cross-entropy per head
   * (mean over the batch, mean over heads), backward, torch.optim.SGD update.
   * images: N*C*H*W float32 NCHW, or an AugmentInput (uint8 source pixels +
   * augmentation parameters, e.g. from Loader.sourceEpoch) that is augmented
   * where the model lives, straight into its input buffer: on the GPU
   * (sln_cuda_augment) for a CUDA model, on the CPU otherwise; the same
   * parameters give the same images as the CPU's augmentBatch.
   * labels: one Int32Array of N per head, or an Int32Array of the N images'
   * dataset indices: the labels are then gathered natively from the model's
   * label state (setLabels / relabel).
   */
  async trainStep(images: Float32Array | AugmentInput, labels: Int32Array[] | Int32Array, opts: StepOptions): Promise<StepResult> {
    if (!opts || typeof opts.lr !== "number") throw new TypeError("trainStep: options { lr } are required");
    if (images instanceof Float32Array) return this.m.trainStep(images, labels, opts);
    if (!images || typeof images !== "object" || !(images.src instanceof Uint8Array) || !images.desc) {
      throw new TypeError("trainStep: images must be a Float32Array (N*C*H*W) or an AugmentInput { src: Uint8Array, desc }");
    }
    return this.m.trainStepAugment(images.src, images.desc, labels, opts);
  }

  /**
   * Forward pass. output "features": one Float32Array (N*D); "logits"/"probs":
   * one Float32Array (N*K_h) per head; "features+logits": the features, then the
   * heads' logits, from one pass through the trunk; "argmax": one Int32Array (N) per
   * head, each image's most likely cluster (first maximum wins), computed natively;
   * "features+argmax": the features, then the heads' argmaxes, from one pass.
   * mode "eval" (default) uses running BN statistics; "train" batch statistics (and
   * updates the running ones, as torch).
   */
  async forward(images: Float32Array, opts: ForwardOptions & { output: "features" }): Promise<Float32Array>;
  async forward(images: Float32Array, opts: ForwardOptions & { output: "argmax" }): Promise<Int32Array[]>;
  async forward(images: Float32Array, opts: ForwardOptions & { output: "features+argmax" }): Promise<[Float32Array, ...Int32Array[]]>;
  async forward(images: Float32Array, opts?: ForwardOptions): Promise<Float32Array[]>;
  async forward(images: Float32Array, opts: ForwardOptions = {}): Promise<Float32Array | Float32Array[] | Int32Array[] | [Float32Array, ...Int32Array[]]> {
    return this.m.forward(images, trainingMode("forward", opts.mode), opts.output ?? "logits", opts.precision ?? "f32");
  }

  /**
   * The label state: per head, the current label of each of the N training
   * images (kept natively; trainStep(images, indices, ...) gathers from it).
   * Checked: one array per head, all of the same length, labels in [0, K_h).
   */
  async setLabels(labels: Int32Array[]): Promise<void> {
    return this.m.setLabels(labels);
  }
  /** A copy of the label state (per head, N labels). */
  async labels(): Promise<Int32Array[]> {
    return this.m.labels();
  }

  /**
   * One batch of a label pass: runs the images (dataset indices `indices`)
   * through the network and keeps, natively, what relabel() needs: the
   * penultimate features on the CPU, every head's logits in device memory on
   * CUDA. Every image of the label state must be collected before relabel().
   * precision "bf16" (eval mode, CPU, trunks with fusedTrunk === ""): the fused
   * trunk in bfloat16 with float32 accumulation (AVX512-BF16/AMX speed), the
   * features and the solve stay float32/float64.
   */
  async collect(images: Float32Array, indices: Int32Array, opts: { mode?: "eval" | "train"; precision?: "f32" | "bf16" } = {}): Promise<void> {
    const p = opts.precision ?? "f32";
    if (p !== "f32" && p !== "bf16") throw new TypeError(`collect: precision must be 'f32' or 'bf16', got '${String(p)}'`);
    return this.m.collect(images, indices, trainingMode("collect", opts.mode), p);
  }

  /**
   * A row-sharded label pass (lib/distributed/label_pass.ts): collect() then
   * takes only dataset rows [begin, end) (their dataset indices), and relabel()
   * needs every head's options to carry a shard; it returns this rank's labels
   * and leaves the label state alone (the caller gathers every rank's and calls
   * setLabels). (0, 0): all rows, the default.
   */
  async setLabelRows(begin: number, end: number): Promise<void> {
    return this.m.setLabelRows(begin, end);
  }

  /**
   * Whether collect({ precision: "bf16" }) can run: "" when the trunk has the
   * fused inference form (conv + batch norm + ReLU folded into one bfloat16
   * convolution, pooling; eval mode, CPU), else the reason it has not.
   */
  get fusedTrunk(): string {
    return this.m.fusedTrunk;
  }

  /**
   * Solve every head's labels by Sinkhorn from what collect() gathered (the
   * heads' weights read from the model's own parameters; on CUDA the solve runs
   * on the GPU from the stored logits). The labels replace the label state (all
   * heads or, on an error, none) and are returned with each head's result.
   * options: one object for every head, or one per head (warm starts differ).
   */
  async relabel(options: SinkhornOptions | SinkhornOptions[] = {}): Promise<SinkhornResult[]> {
    const per = Array.isArray(options) ? options : this.numClasses.map(() => options);
    return this.m.relabel(per);
  }

  /** The trunk's layers in execution order (what forwardTaps' `layer` indexes). */
  trunkLayers(): TrunkLayer[] {
    return this.m.trunkLayers();
  }

  /**
   * Eval-mode activations for linear probes: one Float32Array (N x pooled
   * C*H*W, channel-major) per tap, pooled in the addon while the trunk runs
   * (which stops after the deepest tap).
   */
  async forwardTaps(images: Float32Array, taps: Tap[]): Promise<Float32Array[]> {
    return this.m.forwardTaps(images, taps);
  }

  /** Parameters and buffers (BN running statistics), PyTorch names and shapes. */
  async stateDict(): Promise<StateDict> {
    return this.toDict(await this.m.exportState("model"));
  }

  /**
   * Load parameters and buffers. Every tensor of the model must be present with
   * its exact size; otherwise nothing changes and the error lists missing,
   * unexpected and wrong-shaped keys.
   */
  async loadStateDict(sd: StateDict | Record<string, Float32Array>): Promise<void> {
    await this.m.importState("model", this.fromDict(sd));
  }

  /**
   * Load weights from a PyTorch checkpoint (.pth, torch.save's zip format,
   * read without executing anything), a safetensors file written by
   * `convert`, or one of our checkpoints. Accepts a plain state_dict, the
   * reference's { state_dict, L } and `module.` prefixes; BN
   * `num_batches_tracked` counters are ignored. On a mismatch nothing changes
   * and the error lists missing, unexpected and wrong-shaped keys. Returns
   * what was read (pseudo-labels included when the file has them).
   */
  async loadPth(file: string): Promise<PthWeights> {
    const w = await loadWeightsAsync(file); // a worker thread: the event loop stays free
    const sd = this.arch.startsWith("resnet") ? renameReferenceResnet(w.stateDict) : w.stateDict;
    const label = this.arch === "alexnet" ? `alexnet (${this.archSpec})` : this.arch;
    checkAgainst(sd, this.info, `${label} with heads [${this.numClasses}]`, file);
    const flat: Record<string, Float32Array> = {};
    for (const [k, t] of Object.entries(sd)) flat[k] = t.data;
    await this.loadStateDict(flat);
    return { ...w, stateDict: sd };
  }

  /** SGD momentum buffers ({} before the first step). */
  async optimizerState(): Promise<StateDict> {
    return this.toDict(await this.m.exportState("momentum"));
  }
  async loadOptimizerState(sd: StateDict | Record<string, Float32Array>): Promise<void> {
    await this.m.importState("momentum", this.fromDict(sd));
  }

  /** Free native memory now. Further calls throw; a running step finishes first. */
  dispose(): void {
    this.m.dispose();
  }
  /** `using model = await createModel(...)` frees it at the end of the block. */
  [Symbol.dispose](): void {
    if (!this.disposed) this.dispose();
  }

  private toDict(raw: Record<string, Float32Array>): StateDict {
    const shapes = new Map(this.info.map((t) => [t.name, t.shape]));
    const out: StateDict = {};
    for (const t of this.info) if (raw[t.name]) out[t.name] = { shape: [...shapes.get(t.name)!], data: raw[t.name] };
    return out;
  }

  private fromDict(sd: StateDict | Record<string, Float32Array>): Record<string, Float32Array> {
    if (sd === null || typeof sd !== "object") throw new TypeError("loadStateDict: expected an object of tensors");
    const shapes = new Map(this.info.map((t) => [t.name, t.shape]));
    const out: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(sd)) {
      if (v instanceof Float32Array) {
        out[k] = v;
      } else if (v && typeof v === "object" && (v as Tensor).data instanceof Float32Array) {
        const want = shapes.get(k);
        if (want && Array.isArray((v as Tensor).shape) && (v as Tensor).shape.join(",") !== want.join(",")) {
          throw new RangeError(`loadStateDict: ${k} has shape [${(v as Tensor).shape}], this model expects [${want}]`);
        }
        out[k] = (v as Tensor).data;
      } else {
        throw new TypeError(`loadStateDict: ${k} must be a Float32Array or { shape, data: Float32Array }`);
      }
    }
    return out;
  }
}

function trainingMode(fn: string, mode: string | undefined): boolean {
  const m = mode ?? "eval";
  if (m !== "eval" && m !== "train") throw new TypeError(`${fn}: mode must be 'eval' or 'train', got '${m}'`);
  return m === "train";
}

function isIntArray(a: unknown, len?: number): a is number[] {
  return Array.isArray(a) && (len === undefined || a.length === len) && a.every((x) => Number.isInteger(x) && x >= 1);
}

/**
 * Create a model. device "cpu", "cuda" (the
 * CUDA backend: rejects with code SLN_NO_DEVICE and the reason when it cannot be
 * used), or "auto" (the default: CUDA when lib/cuda.ts's probe says so, else the
 * CPU; one notice on stderr when a CUDA library exists but cannot be used, none
 * when there is no CUDA library at all, the normal CPU-only install).
 */
export async function createModel(opts: ModelOptions): Promise<Model> {
  if (!opts || typeof opts !== "object") throw new TypeError("createModel: options object required");
  const archs = native().archs;
  if (typeof opts.arch !== "string" || !archs.includes(opts.arch)) {
    throw new TypeError(`createModel: unknown arch '${String(opts.arch)}' (known: ${archs.join(", ")})`);
  }
  if (!isIntArray(opts.numClasses) || opts.numClasses.length === 0) {
    throw new TypeError("createModel: numClasses must be a non-empty array of positive integers, one per head");
  }
  if (!isIntArray(opts.inputShape, 3)) throw new TypeError("createModel: inputShape must be [C, H, W] of positive integers");
  if (opts.seed !== undefined && !(Number.isSafeInteger(opts.seed) && opts.seed >= 0)) {
    throw new TypeError("createModel: seed must be a non-negative integer");
  }
  if (opts.archSpec !== undefined) {
    if (opts.archSpec !== "big" && opts.archSpec !== "small") {
      throw new TypeError(`createModel: archSpec must be 'big' or 'small', got '${String(opts.archSpec)}'`);
    }
    if (opts.arch !== "alexnet" && opts.archSpec !== "big") {
      throw new TypeError(`createModel: archSpec '${opts.archSpec}' applies only to alexnet`);
    }
  }
  if (opts.smallInput !== undefined) {
    if (typeof opts.smallInput !== "boolean") throw new TypeError("createModel: smallInput must be a boolean");
    if (opts.smallInput && !opts.arch.startsWith("resnet")) {
      throw new TypeError(`createModel: smallInput applies only to the resnets, not ${opts.arch}`);
    }
  }
  if (opts.precision !== undefined && opts.precision !== "f32" && opts.precision !== "bf16") {
    throw new TypeError(`createModel: precision must be 'f32' or 'bf16', got '${String(opts.precision)}'`);
  }
  const asked = opts.device ?? "auto";
  if (asked !== "cpu" && asked !== "auto" && asked !== "cuda") throw new TypeError(`createModel: device must be cpu, cuda or auto, got '${asked}'`);
  let device: "cpu" | "cuda" = "cpu";
  if (asked !== "cpu") {
    const st = await loadCuda();
    if (st.available) device = "cuda";
    else if (asked === "cuda") throw new DeviceUnavailableError(`createModel: device 'cuda' is unavailable: ${st.reason}; use device 'cpu' or 'auto'`);
    else if (st.state !== "not-built" && st.state !== "disabled") cudaNoticeOnce(`CUDA unavailable, using the CPU: ${st.reason}`);
  }
  if (device === "cuda" && opts.precision === "bf16") {
    throw new TypeError("createModel: precision 'bf16' (mixed-precision training) is CPU-only; use precision 'f32' on CUDA");
  }
  const m = new (native().NativeModel)({
    arch: opts.arch,
    numClasses: opts.numClasses,
    inputShape: opts.inputShape,
    seed: opts.seed ?? 0,
    archSpec: opts.archSpec,
    smallInput: opts.arch.startsWith("resnet") ? opts.smallInput : undefined,
    precision: opts.precision,
    device,
  });
  return new Model(opts, m, device);
}
