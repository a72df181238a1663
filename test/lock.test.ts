// The experiment lock: two real train processes on one --exp (the second
// exits 2 naming the holder), a stale lock of a dead process taken over with a
// notice, another host's lock never taken over, racing processes of which
// exactly one wins, orphaned temporary files removed at the next start, and
// clusters/report/labels --out refused while another process holds the lock
// of the experiment they would write into.
import "./helpers/cpu_only";
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { packageRoot } from "../lib/binding";
import { lockExperiment, LOCK_NAME, cleanOrphanedTemps, ExperimentLockedError } from "../lib/train/lock";

const root = packageRoot();
const cli = path.join(root, ".build-ts/lib/cli.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-lock-"));
const SMALL = ["--synthetic-count", "300", "--batch-size", "100", "--nopts", "2", "--eval-test", "false", "--threads", "1"];

function run(args: string[]) {
  return spawnSync(process.execPath, [cli, "train", ...args], { encoding: "utf8" });
}

/** A pid that certainly belongs to no running process (a child that has exited). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
  return Number(r.stdout);
}

test("two train runs on one --exp: the second exits 2 naming the holder, the first finishes", async () => {
  const exp = path.join(tmp, "two");
  const first = spawn(process.execPath, [cli, "train", "--exp", exp, "--epochs", "3", ...SMALL], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  first.stdout.on("data", (d) => (out += d));
  first.stderr.on("data", (d) => (out += d));
  const done = new Promise<number | null>((resolve) => first.on("exit", (code) => resolve(code)));
  const lockFile = path.join(exp, LOCK_NAME);
  // the first run holds the lock once it has validated its inputs
  for (let i = 0; i < 600 && !fs.existsSync(lockFile); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(fs.existsSync(lockFile), `the first run never took the lock: ${out}`);
  const holder = JSON.parse(fs.readFileSync(lockFile, "utf8"));
  assert.equal(holder.pid, first.pid);
  assert.equal(holder.host, os.hostname());
  const second = run(["--exp", exp, "--epochs", "3", ...SMALL]);
  assert.equal(second.status, 2, second.stderr);
  assert.match(second.stderr, new RegExp(`^selflabel-native: --exp .*two is in use by pid ${first.pid} on ${os.hostname()}, started `));
  assert.equal(second.stderr.trim().split("\n").length, 1);
  assert.equal(await done, 0, out);
  assert.ok(!fs.existsSync(lockFile), "the lock is removed when the run ends");
  const events = fs.readFileSync(path.join(exp, "log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).event);
  assert.equal(events.filter((e) => e === "start").length, 1, "only one run wrote into the experiment");
  assert.equal(events[events.length - 1], "done");
});

test("a stale lock of a dead process on this host is taken over with a notice; another host's is not", () => {
  const exp = path.join(tmp, "stale");
  fs.mkdirSync(exp, { recursive: true });
  const pid = deadPid();
  fs.writeFileSync(path.join(exp, LOCK_NAME), JSON.stringify({ pid, host: os.hostname(), started: "2020-01-01T00:00:00Z", command: "train" }));
  const r = run(["--exp", exp, "--epochs", "1", ...SMALL]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`notice: took over the lock of .* left by pid ${pid} on ${os.hostname()}`));
  assert.ok(!fs.existsSync(path.join(exp, LOCK_NAME)));

  const other = path.join(tmp, "other-host");
  fs.mkdirSync(other);
  fs.writeFileSync(path.join(other, LOCK_NAME), JSON.stringify({ pid, host: "elsewhere.example", started: "x", command: "train" }));
  const r2 = run(["--exp", other, "--epochs", "1", ...SMALL]);
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, /in use by pid \d+ on elsewhere\.example.*if that run is gone, remove .*\.selflabel\.lock/);
  assert.ok(fs.existsSync(path.join(other, LOCK_NAME)), "another host's lock is left alone");
});

test("eight processes racing for one lock: exactly one wins", async () => {
  const exp = path.join(tmp, "race");
  fs.mkdirSync(exp);
  // every racer also finds a stale lock to take over, the harder case
  fs.writeFileSync(path.join(exp, LOCK_NAME), JSON.stringify({ pid: deadPid(), host: os.hostname(), started: "old", command: "train" }));
  const lockJs = path.join(root, ".build-ts/lib/train/lock.js");
  // the winner holds the lock until every racer has tried (its stdin closes),
  // however slowly the racers start on a loaded machine
  const script =
    `const {lockExperiment}=require(${JSON.stringify(lockJs)});` +
    `try{const l=lockExperiment(${JSON.stringify(exp)});process.stdout.write("won");process.stdin.on("end",()=>l.release()).resume()}` +
    `catch(e){process.stdout.write(e.name)}`;
  const procs = Array.from({ length: 8 }, () => spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "inherit"] }));
  const res = await Promise.all(
    procs.map((p) => {
      let s = "";
      return new Promise<string>((resolve) => {
        p.stdout!.on("data", (d) => ((s += d), resolve(s)));
        p.on("exit", () => resolve(s));
      });
    }),
  );
  for (const p of procs) p.stdin!.end();
  await Promise.all(procs.map((p) => (p.exitCode !== null ? null : new Promise((r) => p.once("exit", r)))));
  assert.equal(res.filter((s) => s === "won").length, 1, res.join(" "));
  assert.equal(res.filter((s) => s === "ExperimentLockedError").length, 7, res.join(" "));
  assert.ok(!fs.existsSync(path.join(exp, LOCK_NAME)), "the winner released the lock");
});

test("in-process: a held lock refuses a second taker, release is idempotent, a created empty directory is removed", () => {
  const exp = path.join(tmp, "inproc", "new");
  const a = lockExperiment(exp);
  // the same pid counts as live: a second lock in one process is refused too
  assert.throws(() => lockExperiment(exp), ExperimentLockedError);
  a.release();
  a.release();
  assert.ok(!fs.existsSync(exp), "the directory the lock created is removed when left empty");
  const b = lockExperiment(exp);
  fs.writeFileSync(path.join(exp, "keep"), "x");
  b.release();
  assert.ok(fs.existsSync(path.join(exp, "keep")));
});

test("orphaned .tmp- files of dead writers are removed at the next start; live writers' are kept", () => {
  const exp = path.join(tmp, "orphans");
  fs.mkdirSync(path.join(exp, "checkpoints"), { recursive: true });
  const dead = deadPid();
  const orphan = path.join(exp, "checkpoints", `.epoch-0001.safetensors.tmp-${dead}-abcd`);
  const live = path.join(exp, `.model.safetensors.tmp-${process.ppid}-beef`); // a running process: the test runner
  fs.writeFileSync(orphan, "half");
  fs.writeFileSync(live, "writing");
  const notes: string[] = [];
  assert.deepEqual(cleanOrphanedTemps(exp, (l) => notes.push(l)), [orphan]);
  assert.ok(!fs.existsSync(orphan) && fs.existsSync(live));
  assert.match(notes[0], /removed 1 temporary file left by an interrupted write/);
  fs.rmSync(live);
  // through the CLI: the run's start removes them
  fs.writeFileSync(orphan, "half");
  const r = run(["--exp", exp, "--epochs", "1", ...SMALL]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /removed 1 temporary file/);
  assert.ok(!fs.existsSync(orphan));
});

test("a lock whose holder is a zombie (exited, not yet reaped) is taken over; a live holder's is not", async () => {
  // sh prints the pid of a child, then execs sleep, which never reaps it: the
  // child, exiting 1 s later (after the exec: had it exited before, sh itself
  // could reap it, and /proc/PID/stat was gone; seen under load), stays a
  // zombie until sleep ends.
  const sh = spawn("sh", ["-c", 'sh -c "sleep 1; exit 0" & echo $!; exec sleep 20'], { stdio: ["ignore", "pipe", "ignore"] });
  try {
    const zombie = Number(await new Promise<string>((r) => sh.stdout!.once("data", (d) => r(String(d).trim()))));
    const tw = Date.now();
    while (!/\) Z /.test(fs.readFileSync(`/proc/${zombie}/stat`, "utf8"))) {
      assert.ok(Date.now() - tw < 10_000, "the child never became a zombie");
      await new Promise((r) => setTimeout(r, 20));
    }
    const exp = path.join(tmp, "zombie");
    fs.mkdirSync(exp, { recursive: true });
    const write = (pid: number) =>
      fs.writeFileSync(path.join(exp, LOCK_NAME), JSON.stringify({ pid, host: os.hostname(), started: "2020-01-01T00:00:00Z", command: "train" }));
    write(sh.pid!); // alive: refused
    assert.throws(() => lockExperiment(exp), ExperimentLockedError);
    write(zombie);
    const notices: string[] = [];
    const lock = lockExperiment(exp, (l) => notices.push(l));
    assert.match(notices.join("\n"), new RegExp(`left by pid ${zombie}`));
    lock.release();
  } finally {
    sh.kill("SIGKILL");
  }
});

test("clusters, report and labels --out inside an experiment take its lock: held by another process, exit 2 naming the directory and the holder, nothing written", async () => {
  const exp = path.join(tmp, "writers");
  const r = run(["--exp", exp, "--epochs", "1", ...SMALL]);
  assert.equal(r.status, 0, r.stderr);
  const cmd = (args: string[]) => spawnSync(process.execPath, [cli, ...args, "--threads", "1"], { encoding: "utf8" });
  const lockJs = path.join(root, ".build-ts/lib/train/lock.js");
  const holder = spawn(process.execPath, ["-e", `require(${JSON.stringify(lockJs)}).lockExperiment(${JSON.stringify(exp)});process.stdout.write("held");setInterval(()=>{},1000)`], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await new Promise<void>((resolve) => holder.stdout!.once("data", () => resolve()));
    const before = fs.readdirSync(exp).sort();
    const outside = path.join(tmp, "writers-outside");
    for (const args of [
      ["clusters", "--exp", exp],
      ["report", "--exp", exp],
      ["labels", "--exp", exp, "--out", path.join(exp, "labels-copy.csv")],
      ["report", "--exp", exp, "--out", path.join(exp, "sub", "..", "r2")],
    ]) {
      const x = cmd(args);
      assert.equal(x.status, 2, `${args.join(" ")}: ${x.stderr}`);
      assert.match(x.stderr, new RegExp(`^selflabel-native: --exp ${exp.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is in use by pid ${holder.pid} on ${os.hostname()}, .*give --out outside it\n$`));
      assert.deepEqual(fs.readdirSync(exp).sort(), before, `${args[0]} wrote nothing into the experiment`);
    }
    // --out elsewhere does not write into the experiment: no lock needed
    const o = cmd(["report", "--exp", exp, "--out", outside]);
    assert.equal(o.status, 0, o.stderr);
    assert.ok(fs.existsSync(path.join(outside, "report.html")));
  } finally {
    holder.kill("SIGKILL");
    await new Promise((r) => holder.once("exit", r));
  }
  // the holder is gone: its lock is taken over with a notice, and released at the end
  const c = cmd(["clusters", "--exp", exp]);
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stderr, /notice: took over the lock of .* left by pid \d+/);
  assert.ok(fs.existsSync(path.join(exp, "clusters-head0", "index.html")));
  assert.ok(!fs.existsSync(path.join(exp, LOCK_NAME)), "the lock is released when the command ends");
  const l = cmd(["labels", "--exp", exp, "--out", path.join(exp, "labels-copy.csv")]);
  assert.equal(l.status, 0, l.stderr);
  assert.ok(!fs.existsSync(path.join(exp, LOCK_NAME)));
});
