// selflabel-native eval: pseudo-label quality (NMI, aNMI, ARI, accuracy, purity)
// per head, argmax predictions on the test split, kNN and linear probes (the
// penultimate features; for AlexNet also pooled conv1..conv5, as the reference).
import type { Argv } from "yargs";
import { openExperiment } from "../eval/experiment";
import { evaluate, formatReport } from "../eval/evaluate";
import { UsageError } from "../errors";

export const command = "eval";
export const describe = "Evaluate an experiment: NMI/aNMI/ARI/accuracy of each head, kNN and linear-probe accuracy";

export function builder(y: Argv): Argv {
  return y
    .option("exp", { type: "string", demandOption: true, describe: "experiment directory written by train" })
    .option("data", { type: "string", describe: "the training data (default: the path recorded in the checkpoint)" })
    .option("data-format", { type: "string", choices: ["auto", "imagefolder", "idx", "cifar"], default: "auto" })
    .option("model", { type: "string", describe: "evaluate these weights instead (.pth, converted .safetensors or a checkpoint)" })
    .option("json", { type: "boolean", default: false, describe: "print the report as JSON" })
    .option("probe-epochs", { type: "number", default: 10, describe: "linear-probe SGD epochs (the reference: 36; lr steps scale with it)" })
    .option("probe-layers", {
      type: "string",
      default: "default",
      describe:
        "layers to probe: default (penultimate; alexnet also conv1..conv5 as the reference), all, none, penultimate, " +
        "or a comma list of conv1..conv5 / layer1..layer4 / trunk module names",
    })
    .option("probe-memory", { type: "number", default: 4096, describe: "MiB of pooled probe features held at once (more layers: more passes)" })
    .option("seed", { type: "number", default: 0, describe: "linear-probe seed" })
    .option("kmeans", { type: "boolean", default: true, describe: "k-means baselines on the raw pixels and the learned features (--no-kmeans: skip)" });
}

export async function handler(a: Record<string, unknown>): Promise<void> {
  const pe = a.probeEpochs as number;
  if (!Number.isInteger(pe) || pe < 1) throw new UsageError(`--probe-epochs must be an integer >= 1, got ${pe}`);
  const seed = a.seed as number;
  if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`--seed must be a non-negative integer, got ${seed}`);
  const pm = a.probeMemory as number;
  if (!(Number.isFinite(pm) && pm > 0)) throw new UsageError(`--probe-memory must be a positive number of MiB, got ${pm}`);
  const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);
  const e = openExperiment(a.exp as string, warn);
  const r = await evaluate(e, {
    data: (a.data as string | undefined) ?? null,
    dataFormat: a.dataFormat as string,
    probeEpochs: pe,
    probeLayers: String(a.probeLayers),
    probeMemory: pm,
    seed,
    model: a.model as string | undefined,
    kmeans: a.kmeans as boolean,
    warn,
    log: a.json ? undefined : (m) => process.stderr.write(m + "\n"),
  });
  console.log(a.json ? JSON.stringify(r, null, 2) : formatReport(r));
}
