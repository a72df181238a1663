// The README's promises: the quick-start commands (install + main job, and
// the test command that .ci/run runs verbatim), and its train() example runs
// (with the built-in data instead of Fashion-MNIST, to be quick) through the
// package's public entry point, using only exported names.
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";
import * as api from "../lib/index";

const root = packageRoot();
const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");

function blocks(lang: string): string[] {
  return [...readme.matchAll(new RegExp("```" + lang + "\\n([^]*?)```", "g"))].map((m) => m[1]);
}

test("quick start: the install line and the test line; .ci/run runs the README's test line verbatim", () => {
  const sh = blocks("sh");
  const [install, tests] = sh;
  assert.match(install, /^s=\$\(\[ "\$\(id -u\)" = 0 \] \|\| echo sudo\); \$s apt-get update && \$s apt-get install -y .*\bg\+\+ make python3 libdnnl-dev && npm ci && npx selflabel-native train\n$/);
  assert.match(tests, /&& npm ci && npm test\n$/);
  for (const pkg of ["libdnnl-dev", "g++", "make", "python3", "chromium"]) assert.ok(tests.split(" ").includes(pkg), pkg);
  const ci = fs.readFileSync(path.join(root, ".ci/run"), "utf8").trim().split("\n");
  assert.equal(ci[ci.length - 1], tests.trim());
  // the sudo prefix: empty for root, sudo otherwise
  for (const [uid, want] of [
    ["0", ""],
    ["1000", "sudo"],
  ]) {
    const r = spawnSync("sh", ["-c", `id() { echo ${uid}; }; ${tests.split(";")[0]}; printf %s "$s"`], { encoding: "utf8" });
    assert.equal(r.stdout, want);
  }
});

test("the README's train() example runs (built-in data) and names only exported things", () => {
  const js = blocks("js");
  const example = js.find((b) => b.includes("await train("))!;
  assert.ok(example);
  for (const b of [...js, ...blocks("ts")])
    for (const m of b.matchAll(/(?:const|import) \{([^}]+)\} (?:= require\(|from )"selflabel-native"/g))
      for (const name of m[1].split(",").map((s) => s.trim())) assert.ok(name in api, `${name} is not exported`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-docs-"));
  const opts = /\{ data: "\/usr\/share\/datasets\/fashion-mnist", exp: "runs\/fmnist", epochs: 2, nopts: 5 \}/;
  assert.match(example, opts);
  const code = example
    .replace('require("selflabel-native")', `require(${JSON.stringify(path.join(root, ".build-ts/lib/index.js"))})`)
    .replace(opts, `{ exp: ${JSON.stringify(path.join(tmp, "run"))}, syntheticCount: 600, batchSize: 100, epochs: 2, nopts: 2, threads: 2 }`);
  fs.writeFileSync(path.join(tmp, "train.js"), code);
  const r = spawnSync(process.execPath, [path.join(tmp, "train.js")], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^epoch 1\/2: loss \d\.\d{3}$/m);
  assert.match(r.stdout, /^label pass 1: NMI 0\.\d{3}$/m);
  assert.match(r.stdout, /^self-label NMI 0\.\d+ test NMI 0\.\d+$/m);
});
