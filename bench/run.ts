// npm run bench -- <name> [args]: runs bench/<name>.ts (compiled). Benchmarks
// print ratios against a baseline timed in the same run; they are never tests.
import * as fs from "node:fs";
import * as path from "node:path";

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  const available = fs
    .readdirSync(__dirname)
    .filter((f) => f.endsWith(".js") && f !== "run.js" && !f.startsWith("_"))
    .map((f) => f.slice(0, -3));
  if (!name || !available.includes(name)) {
    console.error(`usage: npm run bench -- <${available.join("|")}> [args]`);
    process.exit(2);
  }
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const mod = require(path.join(__dirname, name + ".js")) as { main(args: string[]): Promise<void> };
  await mod.main(args);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
