// The SeLa loop (the reference's main.py, with its bugs fixed):
//   labels start as a shuffled equipartition per head; before every batch the
//   label-optimisation schedule is checked and, when a time is due, the whole
//   training set is passed through the network (eval mode by default), the
//   penultimate features gathered once (natively, in the model: label_pass.ts),
//   and every head's labels re-solved with the Sinkhorn solver (cold-started;
//   --sk-warm starts from the previous pass's scaling); between passes, SGD on
//   the cross-entropy of the current labels, mean over heads.
// After every epoch a checkpoint is written atomically; a run resumed from it
// ends bit for bit where an uninterrupted run would.
import * as fs from "node:fs";
import * as path from "node:path";
import { createModel, Model } from "../model";
import { native } from "../binding";
import { openDataset, Dataset, Loader, AugLevel, Batch, SourceBatchJob } from "../data";
import { loadCuda, setCudaTf32, CudaProbe } from "../cuda";
import { nmi, ari, clusterAccuracy } from "../metrics";
import { TrainOptions, ResolvedOptions, resolveOptions } from "./options";
import { cachedPixelBaseline, KmeansBaseline } from "../eval/baselines";
import { firstLabels } from "./first_labels";
import { resolveRecipe, stepLearningRate, labelSchedule, SPECTRAL_MAX_K } from "./recipe";
import { SIZE_PRESETS } from "./options";
import { trainPrecision } from "./precision";
import { labelPass as runLabelPass, labelPrecision, spectralLabelPass, LabelPassRun } from "./label_pass";
import { startDistributed, configureDistributed } from "../distributed/train";
import { distributedLabelPass, shardLabelLoader } from "../distributed/label_pass";
import { startRunNccl, pickRankGpu } from "../distributed/nccl";
import { mpiStatus, mpiWorld } from "../distributed/mpi";
import { save as saveSafetensors, writeFileAtomic, encode as encodeSafetensors, WriteError } from "../safetensors";
import { UsageError, InputError, AbortError } from "../errors";
import { csvField } from "../csv";
import { subsetOf } from "../data/subset";
import { RunClock, TrainProgress, reportingLoader } from "./progress";
import { runVersions, finishedRun, partialCheckpointFile, BATCH_RECORD_SECONDS } from "./run_info";
import { learningRate, isBeforeLrDrop } from "./schedule";
import {
  FORMAT,
  CheckpointMeta,
  checkpointDir,
  checkpointName,
  pruneCheckpoints,
  writeCheckpoint,
  encodeCheckpoint,
  listCheckpointFiles,
  CheckpointError,
} from "./checkpoint";
import { chooseResume } from "./resume";
import { lockExperiment, cleanOrphanedTemps } from "./lock";
import { smallImages as smallImagesOf } from "../data/image_limits";

export interface HeadQuality {
  nmi: number;
  ari: number;
  accuracy: number;
  purity: number;
}

export interface TrainResult {
  exp: string;
  epochs: number;
  seconds: number;
  labelPasses: number;
  finalLoss: number;
  /** Self-labels against the ground truth, per head (when the data has labels). */
  selfLabels: HeadQuality[] | null;
  /** Argmax predictions on the test split, per head (when there is one with labels). */
  test: HeadQuality[] | null;
  /** k-means on the training images' raw pixels with head 0's k, against the true classes (when known; null on a resumed run). */
  pixelKmeans: KmeansBaseline | null;
  /** True when the run had already finished and nothing was trained (the result is the one it recorded). */
  alreadyFinished?: boolean;
}

export interface TrainHooks {
  /** Human-readable progress (one line each). */
  log?: (line: string) => void;
  /** Progress events: decoding a new ImageFolder, start, every batch (with the whole run's fraction and ETA), label passes, epochs, evaluation. */
  onProgress?: (p: TrainProgress) => void;
  /**
   * Stops the run between two batches: a checkpoint of the state so far is
   * written (resuming from it continues the run) and train() rejects with an
   * AbortError (code ABORT_ERR) whose `checkpoint` names it.
   */
  signal?: AbortSignal;
  /** Called after each checkpoint is written (tests use it to kill the process). */
  afterCheckpoint?: (epoch: number, file: string) => void;
}

function isInt(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x);
}

/** Check DIR can be created/written without creating anything. */
function checkWritable(dir: string): void {
  let p = path.resolve(dir);
  for (;;) {
    if (fs.existsSync(p)) {
      const st = fs.statSync(p);
      if (!st.isDirectory()) throw new InputError(`--exp ${dir}: ${p} exists and is not a directory`);
      try {
        fs.accessSync(p, fs.constants.W_OK);
      } catch {
        throw new InputError(`--exp ${dir}: ${p} is not writable; choose another --exp`);
      }
      return;
    }
    const up = path.dirname(p);
    if (up === p) return;
    p = up;
  }
}

async function quality(pred: Int32Array, truth: Int32Array): Promise<HeadQuality> {
  const acc = await clusterAccuracy(pred, truth);
  return { nmi: await nmi(pred, truth), ari: await ari(pred, truth), accuracy: acc.accuracy, purity: acc.purity };
}

export { resolveOptions };
export type { TrainOptions, ResolvedOptions };

export async function train(opts: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const signal = hooks.signal;
  if (signal?.aborted) throw new AbortError("train() was aborted before it started", null, signal.reason);
  // --distributed (started by mpirun): MPI first; only rank 0 prints, reports and writes files
  if (opts.syncBn && !opts.distributed) throw new UsageError("--sync-bn needs --distributed");
  const dist = opts.distributed ? startDistributed(opts) : null;
  const quiet = dist !== null && !dist.writer;
  const log = quiet ? () => {} : (hooks.log ?? (() => {}));
  const progress = quiet ? () => {} : (hooks.onProgress ?? (() => {}));
  const t0 = Date.now();
  if (opts.threads !== undefined) {
    if (!isInt(opts.threads) || opts.threads < 1) throw new UsageError(`--threads must be a positive integer, got ${opts.threads}`);
    native().setThreads(opts.threads);
  }
  // Validate the flags that do not depend on the data before opening it.
  resolveOptions(opts, true);
  // The device, before the data is opened: --cpu (or --device cpu) never
  // touches CUDA; cuda must work or the run stops (exit 2); auto falls back
  // to the CPU with one notice.
  if (dist && opts.labelPrecision === "bf16")
    throw new UsageError("--distributed: the row-sharded label pass computes float32 features; use --label-precision f32 or auto");
  // --distributed trains on the CPU over MPI unless --device cuda (one GPU per
  // rank, NCCL); auto does not pick the GPU for a distributed run
  const distCuda = dist !== null && (opts.device ?? "auto") === "cuda" && !opts.cpu;
  if (distCuda && opts.syncBn)
    throw new UsageError("--sync-bn with --device cuda: synchronised batch norm runs on the CPU backend only (on the GPU batch norm is per rank); drop --sync-bn or use --device cpu");
  if (distCuda) pickRankGpu(dist.rank); // before the CUDA library is loaded: the rank's GPU is its device 0
  const wantDevice = opts.cpu || (dist && !distCuda) ? "cpu" : (opts.device ?? "auto");
  let device: "cpu" | "cuda" = "cpu";
  let deviceNote = "";
  let cudaProbe: CudaProbe | undefined;
  if (wantDevice !== "cpu") {
    const st = await loadCuda();
    if (st.available) {
      device = "cuda";
      cudaProbe = st.probe;
      deviceNote = `device: cuda, ${st.reason}`;
    } else if (wantDevice === "cuda") {
      throw new InputError(`--device cuda: ${st.reason}; or use --device cpu (see \`selflabel-native info\`)`);
    } else {
      deviceNote = `notice: --device auto: CUDA unavailable, training on the CPU (${st.reason})`;
    }
  }
  if (device === "cuda") setCudaTf32(opts.tf32 === true);
  if (distCuda) deviceNote += await startRunNccl(mpiWorld()!, mpiStatus());
  const full: Dataset = await openDataset({
    data: opts.data ?? null,
    format: (opts.dataFormat ?? "auto") as never,
    split: "train",
    inputSize: opts.inputSize || undefined,
    workers: opts.workers || undefined,
    onProgress: (done, images) => progress({ type: "decode", split: "train", done, images }),
    onWarning: (m) => log(`warning: ${m}`),
    synthetic: opts.syntheticCount ? { count: opts.syntheticCount } : undefined,
  });
  const ds = subsetOf(full, opts.subset ?? 0, opts.seed ?? 0);
  try {
    const fixed = ds.height > 0 && ds.width > 0 && ds.height === ds.width;
    const smallImages = fixed && ds.height <= 64;
    const N = ds.count;
    const recipe = resolveRecipe(opts, smallImages, N, smallImages ? SIZE_PRESETS.small : SIZE_PRESETS.reference);
    const { choices } = recipe;
    const o = resolveOptions({ ...opts, ...choices }, smallImages, recipe.presetOverride);
    const size = o.inputSize || (smallImages ? ds.height : 224);
    if (o.batchSize > N) throw new InputError(`--batch-size ${o.batchSize} is larger than the dataset (${N} images)`);
    for (const k of o.ncl) if (k > N) throw new InputError(`--ncl ${k} is larger than the dataset (${N} images)`);
    if (o.initLabels === "spectral" || o.relabel === "spectral") {
      const what = o.relabel === "spectral" ? "--relabel spectral" : "--init-labels spectral";
      const big = o.ncl.find((k) => k > SPECTRAL_MAX_K);
      if (big !== undefined) throw new UsageError(`${what} clusters into at most ${SPECTRAL_MAX_K} groups per head; --ncl ${big} needs --recipe reference`);
      if (dist && o.relabel === "spectral") throw new UsageError(`${what} with --distributed: the sharded label pass solves Sinkhorn only; use --relabel sinkhorn or --recipe reference`);
    }
    const small = smallImagesOf(ds, size);
    if (small.count > 0) {
      const what = `${small.count} of ${N} images in ${ds.name} are smaller than the ${size} px training input (smallest ${small.height}x${small.width}${ds.paths && small.index >= 0 ? `: ${ds.paths[small.index]}` : ""})`;
      if (o.smallImages === "refuse") throw new InputError(`${what}; --small-images refuse stops here (or set --input-size)`);
      log(`warning: ${what}: they are upscaled (--small-images refuse to stop instead)`);
    }
    const archs = native().archs;
    if (!archs.includes(o.arch)) throw new UsageError(`unknown --arch '${o.arch}' (known: ${archs.join(", ")})`);
    checkWritable(o.exp);
    if (o.init && !fs.existsSync(o.init)) throw new InputError(`--init ${o.init}: no such file`);

    const numClasses = o.ncl;
    const inputShape: [number, number, number] = [ds.channels, size, size];
    const flags = { ...o };
    if (dist) configureDistributed(dist, o.batchSize, N);

    // One run per experiment directory (exit 2 naming the holder); then the
    // resume choice, under the lock. --no-resume deletes the old checkpoints
    // only once the new run's inputs (--init included) have been read.
    // --distributed: rank 0 holds the lock and cleans; every rank reads the same checkpoint
    const lock = !dist || dist.writer ? lockExperiment(o.exp, log) : null;
    try {
    if (lock) cleanOrphanedTemps(o.exp, log);
    const resumeFrom = o.resume
      ? chooseResume(o.exp, { arch: o.arch, numClasses, inputShape, fingerprint: ds.fingerprint, count: N }, (m) => log(`warning: ${m}`))
      : null;
    const oldCheckpoints = o.resume || !lock ? [] : listCheckpointFiles(o.exp);
    // every rank: the same flags, data and checkpoint, or none starts
    if (dist) {
      await dist.agree({ ...flags, images: N, fingerprint: ds.fingerprint, inputShape, resumeFrom: resumeFrom ? path.basename(resumeFrom.file) : null });
      await dist.barrier();
    }

    fs.mkdirSync(checkpointDir(o.exp), { recursive: true });
    const logFile = path.join(o.exp, "log.jsonl");
    const record = (r: Record<string, unknown>) => (dist && !dist.writer) || appendOrFail(logFile, JSON.stringify({ time: new Date().toISOString(), ...r }) + "\n");

    const tp = trainPrecision(o.precision, device);
    const model: Model = await createModel({
      arch: o.arch,
      numClasses,
      inputShape,
      seed: o.seed,
      device,
      precision: tp.precision,
      ...(o.arch === "alexnet" ? { archSpec: o.archspec } : {}),
    });
    try {
      const D = model.featureDim;
      let labels: Int32Array[];
      let pixelInit: KmeansBaseline | null = null;
      let warm: (Float64Array | undefined)[] = Array.from({ length: o.hc }, () => undefined);
      let times: number[];
      let seen = 0;
      let startEpoch = 0;
      let passes = 0;
      let bestLoss = Infinity;
      let startBatch = 0; // batches of startEpoch already trained (a checkpoint written by an abort)
      let resumedLoss = [0, 0]; // their loss sum and image count
      if (resumeFrom) {
        try {
          await model.loadStateDict(resumeFrom.params);
          await model.loadOptimizerState(resumeFrom.momentum);
        } catch (e) {
          throw new CheckpointError(`${resumeFrom.file}: ${(e as Error).message}`);
        }
        labels = resumeFrom.labels;
        const ex = resumeFrom.meta.extra ?? {};
        const was = (ex.precision as string | undefined) ?? "f32";
        if (was !== tp.precision) log(`warning: ${resumeFrom.file} was trained with --precision ${was}; continuing in ${tp.precision} (${tp.why}), so the run is no longer the one an uninterrupted run would give`);
        warm = ((ex.warm as number[][] | undefined) ?? []).map((w) => (w ? Float64Array.from(w) : undefined));
        while (warm.length < o.hc) warm.push(undefined);
        times = resumeFrom.meta.labelTimes;
        seen = resumeFrom.meta.seen;
        startEpoch = resumeFrom.meta.epoch;
        passes = (ex.passes as number) ?? 0;
        model.step = (ex.step as number) ?? 0;
        bestLoss = (ex.bestLoss as number) ?? Infinity;
        startBatch = (ex.batch as number | undefined) ?? 0;
        resumedLoss = (ex.epochLoss as number[] | undefined) ?? [0, 0];
        const done = finishedRun(o.exp, resumeFrom.meta, o.epochs);
        if (done) {
          log(`${o.exp} is finished: ${o.epochs} epochs, ${done.labelPasses} label passes (model.safetensors, labels.csv); --no-resume trains it again`);
          return { ...done, alreadyFinished: true };
        }
        log(`resuming from ${resumeFrom.file} (epoch ${startEpoch} of ${o.epochs}${startBatch ? `, batch ${startBatch}` : ""})`);
        record({ event: "resume", file: resumeFrom.file, epoch: startEpoch, batch: startBatch, versions: runVersions(cudaProbe) });
      } else {
        times = labelSchedule(o, N); // without the untrained-network pass after k-means labels, and before --first-pass
        ({ labels, pixelInit } = await firstLabels(model, ds, o, log, record));
        for (const f of oldCheckpoints) fs.rmSync(f);
        if (oldCheckpoints.length) log(`--no-resume: removed the old checkpoints in ${checkpointDir(o.exp)}`);
        record({ event: "start", flags, precision: tp.precision, n: N, inputShape, dataset: ds.name, fingerprint: ds.fingerprint, versions: runVersions(cudaProbe) });
      }
      log(
        `training ${o.arch} (${model.numParameters} parameters, ${o.hc} head${o.hc > 1 ? "s" : ""} of ${[...new Set(numClasses)].length === 1 ? numClasses[0] : numClasses.join("/")}) on ${ds.name}: ` +
          `${N} images ${inputShape.join("x")}, recipe ${o.recipe}, ${o.epochs} epochs, ${o.nopts} label passes scheduled, ` +
          (device === "cuda" ? "on the GPU" : `${native().info().threads} threads`),
      );
      if (deviceNote) log(deviceNote);
      // the baseline the self-labels have to beat, once per data set and k (cached)
      const pixelKmeans = pixelInit ?? (ds.labels && !resumeFrom && (!dist || dist.writer) ? await cachedPixelBaseline(ds, numClasses[0]) : null);
      if (pixelKmeans) {
        log(`baseline: k-means (k=${pixelKmeans.k}) on the ${pixelKmeans.input}: NMI ${pixelKmeans.nmi.toFixed(3)}, ARI ${pixelKmeans.ari.toFixed(3)}, accuracy ${pixelKmeans.accuracy.toFixed(3)}` + ("cached" in pixelKmeans && pixelKmeans.cached ? " (cached)" : ""));
        record({ event: "baseline", kmeansPixels: pixelKmeans });
      }
      if (o.tf32 && device !== "cuda") log("notice: --tf32 applies to the CUDA backend only; the CPU computes in float32");
      // Label passes and the test evaluation use unaugmented (--paugs, default 0)
      // images, augmented on the CPU by their loaders and uploaded by forward.
      const gpuAugment = device === "cuda" && o.gpuAugment;
      if (device === "cuda") log(gpuAugment ? "augmentation: on the GPU (training batches)" : "augmentation: on the CPU (--no-gpu-augment)");

      const loader = new Loader(ds, {
        batchSize: o.batchSize,
        size,
        level: o.augs as AugLevel,
        seed: o.seed,
        ...(o.cropScale > 0 ? { scale: [o.cropScale, 1] as [number, number] } : {}),
        ...(dist ? { part: dist.part } : {}),
      });
      const labelLoader = dist
        ? shardLabelLoader(ds, o, size)
        : new Loader(ds, {
            batchSize: Math.max(o.batchSize, 512),
            size,
            level: o.paugs as AugLevel,
            seed: o.seed + 1,
            shuffle: false,
          });

      const clock = new RunClock(loader.batchesPerEpoch, o.epochs, startEpoch, startBatch, times.length, N, o.batchSize);
      progress({ type: "start", epochs: o.epochs, startEpoch, startBatch, batchesPerEpoch: loader.batchesPerEpoch, images: N, labelPasses: times.length });
      const reporting = reportingLoader(labelLoader, (done) =>
        progress({ type: "labelPass", pass: passes + 1, phase: done < N ? "forward" : "solve", done, images: N }),
      );
      // the label state lives in the model: trainStep gathers each batch's labels by index
      await model.setLabels(labels);
      const lp: { precision: "f32" | "bf16"; why: string } = dist
        ? { precision: "f32", why: "--distributed: the ranks' label passes gather float32 features" }
        : labelPrecision(model, o);
      if (tp.precision !== "f32" || o.precision !== "f32") log(`training step: ${tp.precision === "bf16" ? "bf16 mixed precision" : "f32"} (${tp.why})`);
      log(`label passes: ${lp.precision} forward (${lp.why})`);
      const passState = { labels, warm };
      const labelPass = async (): Promise<void> => {
        progress({ type: "labelPass", pass: passes + 1, phase: "forward", done: 0, images: N });
        if (dist) await dist.syncBuffers(model);
        const run: LabelPassRun = { model, loader: reporting, o, pass: passes, truth: ds.labels, precision: lp.precision, state: passState };
        const r = dist
          ? await distributedLabelPass({ ...run, loader: labelLoader }, N)
          : o.relabel === "spectral"
            ? await spectralLabelPass(run)
            : await runLabelPass(run);
        labels = passState.labels;
        warm = passState.warm;
        for (const h of r.heads) if (h.warning) log(`warning: head ${h.head}: ${h.warning}`);
        passes++;
        const h0 = r.heads[0];
        log(
          `label pass ${passes} (after ${seen} images): ` +
            (o.relabel === "spectral"
              ? `spectral clustering of the features, ${(100 * h0.cost).toFixed(1)}% of the graph's edges inside clusters, `
              : `${h0.iterations} iterations, error ${h0.error.toFixed(3)}, `) +
            `${r.seconds.toFixed(1)} s (features ${r.featureSeconds.toFixed(1)} s), clusters ${h0.min}..${h0.max}` +
            (h0.nmi !== null ? `, NMI ${h0.nmi.toFixed(3)}` : ""),
        );
        // NMI, ARI and cluster accuracy of every head against the true classes, for the report's plots
        const scores = ds.labels ? await Promise.all(labels.map((l) => quality(l, ds.labels!))) : null;
        record({ event: "labels", pass: passes, seen, seconds: r.seconds, featureSeconds: r.featureSeconds, precision: lp.precision, heads: r.heads, quality: scores });
        clock.passDone(r.seconds);
        progress({ type: "labelPass", pass: passes, phase: "end", done: N, images: N, seconds: r.seconds, nmi: h0.nmi });
      };

      // A checkpoint: after an epoch (batch 0 of the next), or of an aborted
      // epoch after `batch` batches (partial.safetensors, resumed mid-epoch).
      const saveCheckpoint = async (epochsDone: number, batch: number, loss: number, epochLoss: number[], lrDropNext: boolean, file: string) => {
        if (dist) {
          await dist.syncBuffers(model);
          await dist.checkParams(model);
          if (!dist.writer) return; // rank 0 writes the checkpoint (every rank resumes from it)
        }
        const meta: CheckpointMeta = {
          format: FORMAT,
          epoch: epochsDone,
          arch: o.arch,
          numClasses,
          inputShape,
          fingerprint: ds.fingerprint,
          flags,
          labelTimes: times,
          seen,
          prng: null, // the loader and label passes derive their streams from (seed, epoch, batch, pass)
          loss,
          lrDropNext,
          extra: {
            warm: warm.map((w) => (w ? Array.from(w) : null)),
            precision: tp.precision,
            passes,
            bestLoss,
            step: model.step,
            ...(batch > 0 ? { batch, epochLoss } : {}),
          },
        };
        const params: Record<string, Float32Array> = {};
        for (const [k, t] of Object.entries(await model.stateDict())) params[k] = t.data;
        const momentum: Record<string, Float32Array> = {};
        for (const [k, t] of Object.entries(await model.optimizerState())) momentum[k] = t.data;
        testKillDuringCheckpoint(epochsDone, file, { meta, params, momentum, labels });
        writeCheckpoint(file, { meta, params, momentum, labels });
      };
      let lastBatchRecord = Date.now();

      let lastEpochLoss = NaN;
      for (let epoch = startEpoch; epoch < o.epochs; epoch++) {
        let lr = learningRate(o.lr, epoch, o.lrdrop);
        const te = Date.now();
        const first = epoch === startEpoch ? startBatch : 0;
        // a resumed partial epoch's loss sum is the whole batch's: rank 0 carries it (summed over ranks below)
        let lossSum = first && !quiet ? resumedLoss[0] : 0,
          lossCount = first && !quiet ? resumedLoss[1] : 0,
          imgs = 0;
        // CUDA: the batches stay uint8 sources + parameters; trainStep augments
        // them on the GPU into the model's input buffer. CPU (or
        // --no-gpu-augment): augmented on the CPU by the loader, ahead of time.
        const batches: AsyncIterable<Batch | SourceBatchJob> = gpuAugment ? loader.sourceEpoch(epoch, { startBatch: first }) : loader.epoch(epoch, { startBatch: first });
        let tb = Date.now();
        for await (const b of batches) {
          if (times.length > 0 && times[0] <= seen) {
            times.shift(); // one pass per batch at most, as the reference
            await labelPass();
          }
          const images = "input" in b ? b.input : b.data;
          const global = dist ? dist.globalBatch(b.index) : b.size;
          if (o.lrSchedule === "cosine") lr = stepLearningRate(o, o.lr, o.lrdrop, epoch, epoch * loader.batchesPerEpoch + b.index, o.epochs * loader.batchesPerEpoch);
          const r = await model.trainStep(images, b.indices, {
            lr,
            momentum: 0.9,
            weightDecay: Math.pow(10, o.wd),
            ...(dist ? dist.stepOptions(b.size, global) : {}),
          });
          seen += global;
          imgs += global;
          lossSum += r.loss * b.size;
          lossCount += b.size;
          const now = Date.now();
          const el = (now - te) / 1000;
          clock.batchDone((now - tb) / 1000);
          tb = now;
          progress({
            type: "batch",
            epoch,
            epochs: o.epochs,
            batch: b.index + 1,
            batches: loader.batchesPerEpoch,
            imagesPerSec: imgs / Math.max(el, 1e-3),
            loss: r.loss,
            fraction: clock.fraction(),
            etaSec: clock.eta(),
          });
          if ((b.index + 1) % o.logIter === 0 || now - lastBatchRecord >= BATCH_RECORD_SECONDS * 1000) {
            record({ event: "batch", epoch, batch: b.index, loss: r.loss, headLosses: r.headLosses, lr, imagesPerSec: imgs / Math.max(el, 1e-3) });
            lastBatchRecord = now;
          }
          if (signal?.aborted && b.index + 1 < loader.batchesPerEpoch) {
            // between two batches: save what was trained and stop
            const file = partialCheckpointFile(o.exp);
            await saveCheckpoint(epoch, b.index + 1, lossSum / lossCount, [lossSum, lossCount], false, file);
            record({ event: "abort", epoch, batch: b.index + 1, file });
            log(`aborted at epoch ${epoch + 1}, batch ${b.index + 1}: saved ${file}; the next run with --exp ${o.exp} resumes from it`);
            throw new AbortError(`training aborted at epoch ${epoch + 1}, batch ${b.index + 1}; resume from ${file}`, file, signal.reason);
          }
        }
        if (dist) [lossSum, lossCount] = await dist.sum([lossSum, lossCount]);
        lastEpochLoss = lossSum / lossCount;
        bestLoss = Math.min(bestLoss, lastEpochLoss);
        const secs = (Date.now() - te) / 1000;
        if ((epoch + 1) % o.logIntv === 0 || epoch + 1 === o.epochs)
          log(`epoch ${epoch + 1}/${o.epochs}: loss ${lastEpochLoss.toFixed(4)}, lr ${lr.toExponential(2)}, ${secs.toFixed(1)} s, ${(imgs / secs).toFixed(0)} img/s`);
        record({ event: "epoch", epoch: epoch + 1, loss: lastEpochLoss, lr, seconds: secs, imagesPerSec: imgs / secs });

        // checkpoint
        const file = path.join(checkpointDir(o.exp), checkpointName(epoch + 1));
        await saveCheckpoint(epoch + 1, 0, lastEpochLoss, [], isBeforeLrDrop(epoch, o.lrdrop, o.epochs), file);
        if (!quiet) {
          pruneCheckpoints(o.exp);
          fs.rmSync(partialCheckpointFile(o.exp), { force: true }); // superseded
        }
        progress({ type: "epoch", epoch: epoch + 1, epochs: o.epochs, loss: lastEpochLoss, seconds: secs, checkpoint: file });
        hooks.afterCheckpoint?.(epoch + 1, file);
      }
      if (signal?.aborted) {
        const file = path.join(checkpointDir(o.exp), checkpointName(o.epochs));
        throw new AbortError(`training aborted after its last epoch; resume from ${file}`, file, signal.reason);
      }
      // The last scheduled solve runs after the final batch (the reference dropped it).
      if (times.length > 0) {
        times = [];
        await labelPass();
      }

      // Final outputs (rank 0 of a --distributed run).
      if (dist) await dist.syncBuffers(model);
      if (dist && !dist.writer) return { exp: o.exp, epochs: o.epochs, seconds: (Date.now() - t0) / 1000, labelPasses: passes, finalLoss: lastEpochLoss, selfLabels: null, test: null, pixelKmeans: null };
      const sd = await model.stateDict();
      const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
      for (const [k, t] of Object.entries(sd)) tensors[k] = t;
      saveSafetensors(path.join(o.exp, "model.safetensors"), tensors, {
        selflabel: JSON.stringify({ arch: o.arch, numClasses, inputShape, fingerprint: ds.fingerprint, epochs: o.epochs }),
      });
      const rows = ["index,path," + labels.map((_, h) => `label_head${h}`).join(",")];
      for (let i = 0; i < N; i++) {
        const p = ds.paths ? csvField(ds.paths[i]) : "";
        rows.push(`${i},${p},${labels.map((l) => l[i]).join(",")}`);
      }
      writeFileAtomic(path.join(o.exp, "labels.csv"), rows.join("\n") + "\n");

      let selfLabels: HeadQuality[] | null = null;
      if (ds.labels) {
        selfLabels = [];
        for (const l of labels) selfLabels.push(await quality(l, ds.labels));
      }
      let test: HeadQuality[] | null = null;
      if (o.evalTest) test = await evaluateTest(model, o, size, progress);
      const result: TrainResult = {
        exp: o.exp,
        epochs: o.epochs,
        seconds: (Date.now() - t0) / 1000,
        labelPasses: passes,
        finalLoss: lastEpochLoss,
        selfLabels,
        test,
        pixelKmeans,
      };
      record({ event: "done", ...result });
      return result;
    } finally {
      model.dispose();
    }
    } finally {
      lock?.release();
    }
  } finally {
    await full.close();
  }
}

/**
 * Test hook (SELFLABEL_TEST_KILL_DURING_CHECKPOINT=E): at epoch E, write half
 * of the checkpoint into the temporary file the atomic write uses, then
 * SIGKILL this process: exactly what a kill in the middle of the write leaves.
 */
function testKillDuringCheckpoint(epoch: number, file: string, c: Parameters<typeof encodeCheckpoint>[0]): void {
  if (process.env.SELFLABEL_TEST_KILL_DURING_CHECKPOINT !== String(epoch)) return;
  const { tensors, metadata } = encodeCheckpoint(c);
  const bytes = encodeSafetensors(tensors, metadata);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-dead`);
  fs.writeFileSync(tmp, bytes.subarray(0, bytes.length >> 1));
  process.kill(process.pid, "SIGKILL");
}

/** Argmax predictions of every head on the test split (level-0 augmentation), against its labels. */
async function evaluateTest(model: Model, o: ResolvedOptions, size: number, progress: (p: TrainProgress) => void): Promise<HeadQuality[] | null> {
  let ds: Dataset;
  try {
    ds = await openDataset({
      data: o.data,
      format: o.dataFormat as never,
      split: "test",
      inputSize: size,
      onProgress: (done, images) => progress({ type: "decode", split: "test", done, images }),
      synthetic: o.syntheticCount ? { count: o.syntheticCount } : undefined,
    });
  } catch {
    return null; // no test split
  }
  try {
    if (!ds.labels || ds.count === 0) return null;
    const loader = new Loader(ds, { batchSize: 512, size, level: 0, seed: 0, shuffle: false });
    const preds = model.numClasses.map(() => new Int32Array(ds.count));
    let done = 0;
    for await (const b of loader.epoch(0)) {
      const out = await model.forward(b.data, { mode: "eval", output: "argmax" });
      out.forEach((p, h) => {
        for (let i = 0; i < b.size; i++) preds[h][b.indices[i]] = p[i];
      });
      done += b.size;
      progress({ type: "eval", done, images: ds.count });
    }
    const res: HeadQuality[] = [];
    for (const p of preds) res.push(await quality(p, ds.labels));
    return res;
  } finally {
    await ds.close();
  }
}

/** Append a line; a failure (disk full, ...) names the file and the bytes (WriteError, exit 2). */
function appendOrFail(file: string, line: string): void {
  try {
    fs.appendFileSync(file, line);
  } catch (e) {
    const x = e as NodeJS.ErrnoException;
    if (typeof x?.code === "string" && x.syscall) throw new WriteError(file, Buffer.byteLength(line), x);
    throw e;
  }
}
