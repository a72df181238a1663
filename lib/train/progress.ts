// Progress of a training run, for people and programs: the events train()
// hands to onProgress, and the clock that turns them into one fraction and one
// ETA for the whole run. Label passes count in the ETA: their cost is learned
// from the first pass of the run (until then, estimated as a forward pass over
// the training set at three times the training throughput).
import type { Loader, Batch, SourceBatchJob } from "../data";

/** The run is set up: what it will do from here. */
export interface StartEvent {
  type: "start";
  epochs: number;
  /** First epoch this call trains (0-based; > 0 when resuming). */
  startEpoch: number;
  /** Batches already trained in startEpoch (a resumed mid-epoch checkpoint). */
  startBatch: number;
  batchesPerEpoch: number;
  images: number;
  /** Label passes still to run. */
  labelPasses: number;
}
/** One training batch done. */
export interface BatchEvent {
  type: "batch";
  epoch: number; // 0-based
  epochs: number;
  batch: number; // 1-based within the epoch
  batches: number;
  loss: number;
  imagesPerSec: number;
  /** Whole run: fraction done (0..1) and seconds left, label passes included. */
  fraction: number;
  etaSec: number;
}
/** A label pass: its forward over the data, then the Sinkhorn solve ("solve"), then "end". */
export interface LabelPassEvent {
  type: "labelPass";
  pass: number; // 1-based
  phase: "forward" | "solve" | "end";
  /** Images through the network so far, of `images`. */
  done: number;
  images: number;
  /** "end": seconds of the pass and head 0's NMI against the true classes (null without them). */
  seconds?: number;
  nmi?: number | null;
}
export interface EpochEvent {
  type: "epoch";
  epoch: number; // 1-based: epochs completed
  epochs: number;
  loss: number;
  seconds: number;
  checkpoint: string;
}
/**
 * Images decoded into the decode cache before training (an ImageFolder seen
 * for the first time or changed): the test split's come before the evaluation.
 */
export interface DecodeEvent {
  type: "decode";
  split: "train" | "test";
  done: number;
  images: number;
}
/** Final evaluation on the test split. */
export interface EvalEvent {
  type: "eval";
  done: number;
  images: number;
}
export type TrainProgress = DecodeEvent | StartEvent | BatchEvent | LabelPassEvent | EpochEvent | EvalEvent;

/** Fraction done and ETA of the whole run from the work left and the costs seen so far. */
export class RunClock {
  private batchSec = NaN; // exponential mean of seconds per training batch
  private passSec = NaN; // measured seconds of a label pass (the first one)
  private readonly totalBatches: number;
  private readonly totalPasses: number;
  private doneBatches: number;
  private donePasses = 0;
  constructor(
    readonly batchesPerEpoch: number,
    epochs: number,
    startEpoch: number,
    startBatch: number,
    passesLeft: number,
    private readonly images: number,
    private readonly batchSize: number,
  ) {
    this.totalBatches = (epochs - startEpoch) * batchesPerEpoch - startBatch;
    this.doneBatches = 0;
    this.totalPasses = passesLeft;
  }
  batchDone(seconds: number): void {
    this.doneBatches++;
    this.batchSec = Number.isNaN(this.batchSec) ? seconds : 0.9 * this.batchSec + 0.1 * seconds;
  }
  passDone(seconds: number): void {
    this.donePasses++;
    if (Number.isNaN(this.passSec)) this.passSec = seconds; // learned from the first pass
  }
  private passCost(): number {
    if (!Number.isNaN(this.passSec)) return this.passSec;
    if (Number.isNaN(this.batchSec)) return 0;
    return ((this.images / this.batchSize) * this.batchSec) / 3;
  }
  /** Seconds left, label passes included (NaN before the first batch). */
  eta(): number {
    if (Number.isNaN(this.batchSec)) return NaN;
    return (this.totalBatches - this.doneBatches) * this.batchSec + (this.totalPasses - this.donePasses) * this.passCost();
  }
  /** Work done of this call's work, weighting passes by their cost. */
  fraction(): number {
    const pc = this.passCost();
    const b = Number.isNaN(this.batchSec) ? 1 : this.batchSec;
    const total = this.totalBatches * b + this.totalPasses * pc;
    if (total <= 0) return 1;
    return Math.min(1, (this.doneBatches * b + this.donePasses * pc) / total);
  }
}

type AnyLoader = Pick<Loader, "epoch" | "sourceEpoch" | "batchesPerEpoch">;

/**
 * The loader of a label pass, reporting the images it hands out: the label
 * pass itself stays unaware of progress.
 */
export function reportingLoader<L extends AnyLoader>(loader: L, report: (done: number) => void): L {
  const count = async function* <T extends Batch | SourceBatchJob>(it: AsyncGenerator<T, void, undefined>): AsyncGenerator<T, void, undefined> {
    let done = 0;
    for await (const b of it) {
      yield b;
      done += b.size;
      report(done);
    }
  };
  return new Proxy(loader, {
    get(target, prop, receiver) {
      if (prop === "epoch") return (e: number, o?: { startBatch?: number }) => count(target.epoch(e, o));
      if (prop === "sourceEpoch") return (e: number, o?: { startBatch?: number }) => count(target.sourceEpoch(e, o));
      const v = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}
