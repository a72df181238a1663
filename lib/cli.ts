#!/usr/bin/env node
// CLI entry: one command per file in lib/commands/. Exit codes: 0 success,
// 2 bad usage or bad input, 1 internal failure; errors are one line on stderr.
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { exitCodeOf, UsageError } from "./errors";
import { native } from "./binding";
import * as info from "./commands/info";
import * as prepare from "./commands/prepare";
import * as trainCmd from "./commands/train";
import * as evalCmd from "./commands/eval";
import * as labelsCmd from "./commands/labels";
import * as clustersCmd from "./commands/clusters";
import * as reportCmd from "./commands/report";
import * as convert from "./commands/convert";


function fail(e: unknown): never {
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`selflabel-native: ${msg.split("\n")[0]}\n`);
  if (process.env.SELFLABEL_DEBUG && e instanceof Error && e.stack) process.stderr.write(e.stack + "\n");
  process.exit(exitCodeOf(e));
}

export async function main(args: string[]): Promise<void> {
  await yargs(args)
    .scriptName("selflabel-native")
    .option("threads", {
      type: "number",
      global: true,
      describe: "CPU threads (default: all cores, or SELFLABEL_NUM_THREADS)",
    })
    .middleware((argv) => {
      if (argv.threads !== undefined) {
        if (!Number.isInteger(argv.threads) || (argv.threads as number) < 1) {
          throw new UsageError(`--threads must be a positive integer, got ${argv.threads}`);
        }
        native().setThreads(argv.threads as number);
      }
    })
    // one module per command (lib/commands/<name>.ts), each typed by its own arguments
    .command(info)
    .command(prepare)
    .command(trainCmd)
    .command(evalCmd)
    .command(labelsCmd)
    .command(clustersCmd)
    .command(reportCmd)
    .command(convert)
    .demandCommand(1, "give a command (see --help)")
    .strict()
    .recommendCommands()
    .help()
    .alias("h", "help")
    .version()
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) fail(err);
      process.stderr.write(`selflabel-native: ${msg}\n(see selflabel-native --help)\n`);
      process.exit(2);
    })
    .parseAsync();
}

/** A reader that went away (`labels ... | head`) ends the program quietly, as other command-line tools. */
export function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    fail(e);
  });
}

if (require.main === module) {
  quietOnClosedPipe(process.stdout);
  main(hideBin(process.argv)).catch(fail);
}
