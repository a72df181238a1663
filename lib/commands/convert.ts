// `selflabel-native convert IN.pth OUT.safetensors`: read a PyTorch checkpoint
// (torch.save zip; plain state_dict, the reference's {state_dict, L}, or
// DataParallel `module.` names) without executing anything, and write its
// weights under their PyTorch names (plus the pseudo-labels as labels.<h>,
// int32) as safetensors, which Model.loadPth/loadWeights accept. The .pth is
// read in a worker thread (the bounded reader of lib/pth), as Model.loadPth does.
import type { ArgumentsCamelCase, Argv } from "yargs";
import * as fs from "node:fs";
import * as path from "node:path";
import { loadPthAsync, saveWeights } from "../pth";
import { UsageError } from "../errors";

export const command = "convert <input> <output>";
export const describe = "Convert a PyTorch .pth checkpoint (weights, pseudo-labels) to safetensors without running its pickle";

export interface ConvertArgs {
  input: string;
  output: string;
  force: boolean;
}

export function builder(y: Argv): Argv<ConvertArgs> {
  return y
    .positional("input", { type: "string", describe: "PyTorch checkpoint (.pth / .pt, torch.save zip format)" })
    .positional("output", { type: "string", describe: "safetensors file to write" })
    .option("force", { type: "boolean", default: false, describe: "overwrite OUTPUT if it exists" }) as unknown as Argv<ConvertArgs>;
}

export async function handler(argv: ArgumentsCamelCase<ConvertArgs>): Promise<void> {
  const out = argv.output;
  if (!out.endsWith(".safetensors")) throw new UsageError(`convert: OUTPUT must end in .safetensors, got ${out}`);
  if (fs.existsSync(out) && !argv.force) throw new UsageError(`convert: ${out} exists (use --force to overwrite)`);
  if (path.resolve(out) === path.resolve(argv.input)) throw new UsageError("convert: INPUT and OUTPUT are the same file");
  const w = await loadPthAsync(argv.input); // in a worker thread, as Model.loadPth
  saveWeights(out, w, argv.input);
  const n = Object.keys(w.stateDict).length;
  const params = Object.values(w.stateDict).reduce((s, t) => s + t.data.length, 0);
  let line = `${out}: ${n} tensors, ${params} values`;
  if (w.labels) line += `, pseudo-labels for ${w.labels.length} head(s) of ${w.labels[0]?.length ?? 0} images`;
  if (w.ignored.length) line += ` (ignored ${w.ignored.length} num_batches_tracked counters)`;
  console.log(line);
}
