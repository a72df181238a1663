// Write the crafted malicious files of issue 19 (test/helpers/craft.ts) to a
// directory, as regression fixtures to try by hand or with other tools:
//   node .build-ts/bench/fuzz/fixtures.js DIR
import * as fs from "node:fs";
import * as path from "node:path";
import { malicious } from "../../test/helpers/craft";

const dir = process.argv[2];
if (!dir) {
  process.stderr.write("usage: node .build-ts/bench/fuzz/fixtures.js OUTDIR\n");
  process.exit(2);
}
fs.mkdirSync(dir, { recursive: true });
for (const [name, b] of Object.entries(malicious())) {
  fs.writeFileSync(path.join(dir, name), b);
  console.log(`${path.join(dir, name)}  ${b.length} bytes`);
}
