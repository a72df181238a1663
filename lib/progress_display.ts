// Training progress for a person: on a terminal, one status line redrawn in
// place (a bar for the whole run with its ETA, label passes and evaluation
// included; before it, the decoding of a new ImageFolder into its cache);
// elsewhere (a log file, CI) the same line every few seconds.
import type { TrainProgress } from "./train/progress";

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec)) return "?";
  const s = Math.max(0, Math.round(sec));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function bar(fraction: number, width = 20): string {
  const f = Math.max(0, Math.min(1, fraction));
  const fill = Math.round(width * f);
  return `[${"#".repeat(fill)}${".".repeat(width - fill)}] ${String(Math.floor(100 * f)).padStart(3)}%`;
}

export interface ProgressDisplayOptions {
  /** Redraw in place (a terminal) or print a line every `intervalSec`. */
  tty: boolean;
  intervalSec?: number;
  write?: (s: string) => void;
  now?: () => number;
}

/** Turns train()'s progress events into a status line. `log` prints a line above it. */
export class ProgressDisplay {
  private shown = false;
  private started = false;
  private last = 0;
  private fraction = 0;
  private eta = NaN;
  private passes = 0;
  private epochText = "";
  private decodeStart: { t: number; done: number; split: string } | null = null;
  private readonly write: (s: string) => void;
  private readonly now: () => number;
  private readonly interval: number;
  constructor(private readonly o: ProgressDisplayOptions) {
    this.write = o.write ?? ((s) => process.stderr.write(s));
    this.now = o.now ?? Date.now;
    this.interval = 1000 * (o.intervalSec ?? 30);
  }

  /** The status line for an event (null for events that change nothing shown). */
  line(p: TrainProgress): string | null {
    const whole = () => `${bar(this.fraction)} ETA ${formatDuration(this.eta)}`;
    switch (p.type) {
      case "decode": {
        const t = this.now();
        if (!this.decodeStart || p.split !== this.decodeStart.split || p.done < this.decodeStart.done) this.decodeStart = { t, done: p.done, split: p.split };
        const sec = (t - this.decodeStart.t) / 1000;
        const rate = sec > 0 ? (p.done - this.decodeStart.done) / sec : NaN;
        const eta = rate > 0 ? (p.images - p.done) / rate : NaN;
        const r = Number.isFinite(rate) ? `${rate.toFixed(0)} img/s` : "? img/s";
        return `decoding ${p.split} images into the cache ${p.done}/${p.images} ${bar(p.done / p.images, 10)} | ${r} ETA ${formatDuration(eta)}`;
      }
      case "start":
        this.passes = p.labelPasses;
        return null;
      case "batch":
        this.fraction = p.fraction;
        this.eta = p.etaSec;
        this.epochText = `epoch ${p.epoch + 1}/${p.epochs}`;
        return `${whole()} | ${this.epochText} batch ${p.batch}/${p.batches} ${bar(p.batch / p.batches, 10)} | ${p.imagesPerSec.toFixed(0)} img/s loss ${p.loss.toFixed(3)}`;
      case "labelPass": {
        if (p.phase === "end") return null;
        const what = p.phase === "solve" ? "Sinkhorn" : `forward ${p.done}/${p.images} ${bar(p.done / p.images, 10)}`;
        return `${whole()} | label pass ${p.pass}${this.passes ? ` (${this.passes} this run)` : ""}: ${what}`;
      }
      case "eval":
        return `${whole()} | test set ${p.done}/${p.images} ${bar(p.done / p.images, 10)}`;
      case "epoch":
        return null;
    }
  }

  update(p: TrainProgress): void {
    const text = this.line(p);
    if (text === null) return;
    const t = this.now();
    const last = (p.type === "batch" && p.batch === p.batches) || (p.type !== "batch" && "done" in p && p.done === p.images);
    if (this.o.tty) {
      if (t - this.last < 100 && !last) return;
      this.last = t;
      this.write(`\r${text}\x1b[K`);
      this.shown = true;
    } else {
      if (!this.started) {
        this.started = true; // the first line after one interval, not at once
        this.last = t;
        return;
      }
      if (t - this.last < this.interval) return;
      this.last = t;
      this.write(text + "\n");
    }
  }

  /** Remove the status line (before printing other output on a terminal). */
  clear(): void {
    if (this.shown) this.write("\r\x1b[K");
    this.shown = false;
  }
}
