// The ImageFolder decode pool (imagefolder.ts builds the cache with it): which
// decoder takes a file, where it runs, and the time limit per file.
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import type { DecodeReply } from "./decode_worker";
import { PixelBuffers, decodeFile, decodeFileNative, decoderName, fallbackDecoder } from "./decoders";

interface PoolWorker {
  worker: Worker;
  /** The job it decodes now and the timer that stops it. */
  job?: { id: number; timer: NodeJS.Timeout };
}

/**
 * A pool of image decoders (decoders.ts): the addon's JPEG decoder and sharp
 * in this thread, n files at a time (running: their work runs on libuv's
 * threads; decode threads only added their start and a message and a copy per
 * image), jimp on n worker_threads, started when the first file needs one (a
 * file the addon's decoder leaves to jimp, or every file with
 * SELFLABEL_DECODER=jimp). A file that fails to decode is a reply
 * with ok: false. A file that is still
 * decoding after `timeoutMs` (a corrupt file on which a decoder loops: no
 * header check can rule out every such case) is too: its thread is
 * terminated and replaced. A decoder thread that dies otherwise is an
 * internal failure and rejects every pending and later request (never a
 * silently shorter dataset). A thread gets work only once it has loaded its
 * decoder (its first message), so the limit times the decode alone.
 */
export class DecodePool {
  private workers = new Set<PoolWorker>();
  private idle: PoolWorker[] = [];
  /** Files for this thread (libjpeg, sharp) and for the jimp threads. */
  private queue: { id: number; file: string }[] = [];
  private workQueue: { id: number; file: string }[] = [];
  private pending = new Map<number, { resolve: (r: DecodeReply) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private failure: Error | null = null;
  private closing = false;
  private spawned = false;
  private readonly script = path.join(__dirname, "decode_worker.js");
  private readonly decoder = decoderName(); // loads sharp here first, when it is installed (see decoders.ts)
  /** What decodes the files the addon's JPEG decoder leaves. */
  private readonly fallback = fallbackDecoder();
  /** libjpeg or sharp: decodes in this thread, at most `size` files at once (running), each with its timer. */
  private readonly inThread = this.decoder !== "jimp";
  private running = 0;
  private timers = new Set<NodeJS.Timeout>();
  /**
   * The decodes in this thread and the cache's file writes share libuv's
   * thread pool (4 threads unless UV_THREADPOOL_SIZE): one is left for the
   * writes, which would otherwise queue behind the decodes (--workers above 3).
   */
  private readonly inThreadMax: number;
  /** The addon's JPEG decoder writes into these; the cache gives each back once written. */
  readonly buffers: PixelBuffers;

  constructor(
    private readonly size: number,
    private readonly shortSide: number,
    private readonly timeoutMs: number,
    window: number,
  ) {
    this.inThreadMax = Math.max(1, Math.min(size, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1));
    this.buffers = new PixelBuffers(window + 4);
    if (!this.inThread) this.spawnAll();
  }

  private spawnAll(): void {
    if (this.spawned || this.closing) return;
    this.spawned = true;
    for (let i = 0; i < this.size; i++) this.spawn();
  }

  /**
   * Decode one file in this thread: the addon's JPEG decoder, then sharp or
   * (on a jimp thread) jimp for a file it leaves. Past the time limit the file
   * is reported as undecodable and its slot freed; libvips' work on it cannot
   * be stopped and finishes unseen.
   */
  private runInThread(job: { id: number; file: string }): void {
    this.running++;
    let done = false;
    const end = (): boolean => {
      if (done) return false;
      done = true;
      clearTimeout(timer);
      this.timers.delete(timer);
      this.running--;
      return true;
    };
    const finish = (r: DecodeReply) => {
      if (!end()) return;
      this.settle(r);
      this.pump();
    };
    const timer = setTimeout(
      () => finish({ id: job.id, ok: false, error: `still decoding after ${this.timeoutMs / 1000} s (not waited for; a corrupt file can make a decoder loop)` }),
      this.timeoutMs,
    );
    this.timers.add(timer);
    void (async () => {
      if (this.decoder === "libjpeg") {
        const r = await decodeFileNative(job.file, this.shortSide, this.buffers);
        if (r) return finish({ id: job.id, ...r });
        // closed meanwhile (the build stopped on an error): the file is not read again
        if (this.closing) return finish({ id: job.id, ok: false, error: "the decode pool was closed" });
        if (this.fallback === "jimp") {
          if (!end()) return;
          this.workQueue.push(job); // to a jimp thread, with its own time limit
          this.spawnAll();
          return this.pump();
        }
      }
      const r = await decodeFile(job.file, "sharp", this.shortSide);
      finish({ id: job.id, ...r });
    })();
  }

  private spawn(): void {
    const pw: PoolWorker = { worker: new Worker(this.script, { workerData: { decoder: "jimp", shortSide: this.shortSide } }) };
    this.workers.add(pw);
    pw.worker.on("message", (r: DecodeReply | { ready: true }) => {
      if ("ready" in r) return this.release(pw);
      if (!pw.job || pw.job.id !== r.id) return;
      clearTimeout(pw.job.timer);
      pw.job = undefined;
      this.settle(r);
      this.release(pw);
    });
    pw.worker.on("error", (e) => this.fail(new Error(`image decoder thread failed: ${e.message}`)));
    pw.worker.on("exit", (code) => {
      if (!this.closing && this.workers.has(pw)) this.fail(new Error(`image decoder thread exited unexpectedly (code ${code})`));
    });
  }

  private settle(r: DecodeReply): void {
    const p = this.pending.get(r.id);
    this.pending.delete(r.id);
    p?.resolve(r);
  }

  private release(pw: PoolWorker): void {
    this.idle.push(pw);
    this.pump();
  }

  /** The file of job `id` took too long: stop its thread, report the file as undecodable, start a new thread. */
  private timeout(pw: PoolWorker, id: number): void {
    if (this.closing || pw.job?.id !== id) return;
    this.workers.delete(pw);
    void pw.worker.terminate();
    this.settle({ id, ok: false, error: `still decoding after ${this.timeoutMs / 1000} s (decoder stopped; a corrupt file can make a decoder loop)` });
    if (!this.failure) this.spawn();
  }

  private fail(e: Error): void {
    if (!this.failure) this.failure = e;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  decode(file: string): Promise<DecodeReply> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      (this.inThread ? this.queue : this.workQueue).push({ id, file });
      this.pump();
    });
  }

  private pump(): void {
    // closed (the build stopped on an error): no new in-thread decodes for the queue left behind
    while (this.inThread && !this.closing && this.running < this.inThreadMax && this.queue.length) this.runInThread(this.queue.shift()!);
    while (this.idle.length && this.workQueue.length) {
      const pw = this.idle.pop()!;
      if (!this.workers.has(pw)) continue;
      const job = this.workQueue.shift()!;
      pw.job = { id: job.id, timer: setTimeout(() => this.timeout(pw, job.id), this.timeoutMs) };
      pw.worker.postMessage(job);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const pw of this.workers) if (pw.job) clearTimeout(pw.job.timer);
    for (const t of this.timers) clearTimeout(t);
    await Promise.all([...this.workers].map((pw) => pw.worker.terminate()));
  }
}

