// Exclusive lock on an experiment directory: DIR/.selflabel.lock holds
// {pid, host, started, command}. It is created atomically (written to a
// temporary file, then hard-linked to the lock name: link() fails when the
// name exists, so the lock is never seen half written). A second process finds
// the file and stops with an ExperimentLockedError (exit 2) naming the holder.
// A lock left by a dead process on this host (kill -9, power loss) is taken
// over with a notice; a lock from another host is never taken over (its pid
// means nothing here): the user removes it by hand, as the message says.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as crypto from "node:crypto";

export const LOCK_NAME = ".selflabel.lock";

export interface LockInfo {
  pid: number;
  host: string;
  started: string; // ISO time
  command: string;
}

export class ExperimentLockedError extends Error {
  readonly exitCode = 2;
  readonly code = "SLN_EXP_LOCKED";
  constructor(message: string) {
    super(message);
    this.name = "ExperimentLockedError";
  }
}

export interface ExperimentLock {
  file: string;
  info: LockInfo;
  /** Remove the lock (only if it is still ours); idempotent. */
  release(): void;
}

function readLock(file: string): LockInfo | null {
  try {
    const v = JSON.parse(fs.readFileSync(file, "utf8"));
    if (v && typeof v === "object" && Number.isInteger(v.pid) && typeof v.host === "string") return v as LockInfo;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
  }
  return { pid: -1, host: "?", started: "?", command: "?" }; // unreadable: treated as held
}

/** True while `pid` runs. A zombie (exited, not yet reaped: e.g. an MPI rank
 *  whose mpirun already returned) has let go of everything, so it counts as dead. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by someone else
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true; // no /proc (not Linux): kill(0) said it exists
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function describe(h: LockInfo): string {
  return `pid ${h.pid} on ${h.host}, started ${h.started}${h.command ? ` (${h.command})` : ""}`;
}

/**
 * Take the lock of experiment directory `dir` (created if missing). Throws
 * ExperimentLockedError when another live process holds it. `notice` gets
 * one line when a stale lock is taken over. The lock is also removed when
 * this process exits normally (process.exit included).
 */
export function lockExperiment(dir: string, notice: (line: string) => void = () => {}, command = "train", otherwise = "choose another --exp"): ExperimentLock {
  const created = !fs.existsSync(dir);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, LOCK_NAME);
  const info: LockInfo = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command };
  const text = JSON.stringify(info) + "\n";
  const tmp = path.join(dir, `${LOCK_NAME}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`);
  try {
    fs.writeFileSync(tmp, text);
    for (let attempt = 0; ; attempt++) {
      try {
        fs.linkSync(tmp, file);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== "EEXIST") {
          if (code !== "EPERM" && code !== "ENOTSUP" && code !== "ENOSYS") throw e;
          // no hard links on this filesystem: exclusive create, then write
          try {
            const fd = fs.openSync(file, "wx");
            fs.writeSync(fd, text);
            fs.closeSync(fd);
            break;
          } catch (e2) {
            if ((e2 as NodeJS.ErrnoException).code !== "EEXIST") throw e2;
          }
        }
      }
      const holder = readLock(file);
      if (holder === null) continue; // released between link and read: try again
      const stale = holder.host === info.host && holder.pid > 0 && holder.pid !== process.pid && !alive(holder.pid);
      if (!stale || attempt > 1000) {
        const how = holder.host === info.host ? "wait for it to finish or stop it" : `if that run is gone, remove ${file}`;
        throw new ExperimentLockedError(`--exp ${dir} is in use by ${describe(holder)} (lock ${file}); ${how}, or ${otherwise}`);
      }
      // Take the stale lock over under a takeover mutex (created with O_EXCL):
      // only its holder may remove a lock file, and only after re-reading it
      // and finding the same dead holder, so a fresh lock taken meanwhile is
      // never removed. A mutex left by a dead process is removed.
      const mutex = `${file}.takeover`;
      let fd: number;
      try {
        fd = fs.openSync(mutex, "wx");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        let owner = NaN;
        let age = 0;
        try {
          owner = Number(fs.readFileSync(mutex, "utf8") || NaN);
          age = Date.now() - fs.statSync(mutex).mtimeMs;
        } catch {
          /* gone meanwhile */
        }
        if ((Number.isInteger(owner) && owner !== process.pid && !alive(owner)) || (!Number.isInteger(owner) && age > 10000)) fs.rmSync(mutex, { force: true });
        sleep(10);
        continue;
      }
      try {
        fs.writeSync(fd, String(process.pid));
        const now = readLock(file);
        if (now && now.pid === holder.pid && now.started === holder.started && now.host === holder.host) {
          fs.rmSync(file, { force: true });
          notice(`notice: took over the lock of ${dir} left by ${describe(holder)}, which is no longer running`);
        }
      } finally {
        fs.closeSync(fd);
        fs.rmSync(mutex, { force: true });
      }
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.removeListener("exit", release);
    const now = readLock(file);
    if (now && now.pid === info.pid && now.started === info.started && now.host === info.host) fs.rmSync(file, { force: true });
    if (created) {
      try {
        fs.rmdirSync(dir); // a directory this run created and left empty (it failed before writing anything)
      } catch {
        /* not empty: the run's outputs */
      }
    }
  };
  process.on("exit", release);
  return { file, info, release };
}

/** `p` with symbolic links resolved as far as it exists (the rest appended as given). */
function realish(p: string): string {
  let head = path.resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(head), ...rest);
    } catch {
      const up = path.dirname(head);
      if (up === head) return path.resolve(p);
      rest.unshift(path.basename(head));
      head = up;
    }
  }
}

/** True when path `p` is the directory `dir` or lies inside it (symbolic links resolved). */
export function isInside(dir: string, p: string): boolean {
  const rel = path.relative(realish(dir), realish(p));
  return rel === "" || (rel !== ".." && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/**
 * The lock for a command that writes `out` after reading experiment `dir`
 * (clusters, report, labels --out): taken when `out` lies inside the
 * experiment, so nothing is written there while train (or another such
 * command) runs on it; null when `out` is elsewhere (reading a live
 * experiment is safe: train replaces its files atomically).
 */
export function lockForOutput(dir: string, out: string, command: string, notice: (line: string) => void = () => {}): ExperimentLock | null {
  if (!isInside(dir, out)) return null;
  return lockExperiment(dir, notice, command, "give --out outside it");
}

/**
 * Remove temporary files left by writes that were killed (`.NAME.tmp-PID-...`
 * from writeFileAtomic, lock temporaries) in `dir` and `dir/checkpoints`.
 * Called with the lock held; a file whose PID is still running is left alone.
 */
export function cleanOrphanedTemps(dir: string, notice: (line: string) => void = () => {}): string[] {
  const removed: string[] = [];
  for (const d of [dir, path.join(dir, "checkpoints")]) {
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) {
      const m = /^\..*\.tmp-(\d+)-[^/]*$/.exec(n);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid !== process.pid && alive(pid)) continue;
      if (pid === process.pid && n.startsWith(`${LOCK_NAME}.tmp-`)) continue;
      const f = path.join(d, n);
      fs.rmSync(f, { force: true });
      removed.push(f);
    }
  }
  if (removed.length) notice(`notice: removed ${removed.length} temporary file${removed.length > 1 ? "s" : ""} left by an interrupted write (${removed.map((f) => path.basename(f)).join(", ")})`);
  return removed;
}
