// Small named errors with a next step in their text. Every error this package
// throws on purpose carries a stable `code` (SLN_...); the CLI maps them to exit
// codes: bad usage or bad input -> 2, anything else -> 1.

/** Base of the package's own errors: a stable `code` and the CLI exit code. */
export class SelflabelError extends Error {
  readonly code: string;
  readonly exitCode: number;
  constructor(code: string, message: string, exitCode = 2, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** A flag or option that is wrong in itself (code SLN_USAGE). */
export class UsageError extends SelflabelError {
  constructor(message: string) {
    super("SLN_USAGE", message);
  }
}

/** Input that cannot be used: a missing file, data that does not fit (code SLN_INPUT). */
export class InputError extends SelflabelError {
  constructor(message: string) {
    super("SLN_INPUT", message);
  }
}

/**
 * `train()` stopped by its AbortSignal (code ABORT_ERR, name AbortError, as
 * Node's own aborted operations). `checkpoint` is the file written when it
 * stopped: resuming from it continues the run.
 */
export class AbortError extends SelflabelError {
  readonly checkpoint: string | null;
  constructor(message: string, checkpoint: string | null, cause?: unknown) {
    super("ABORT_ERR", message, 130, { cause });
    this.name = "AbortError";
    this.checkpoint = checkpoint;
  }
}

/** The native addon could not be loaded (code SLN_ADDON_LOAD). */
export class AddonLoadError extends SelflabelError {
  /** The shared library the dynamic loader could not find, when that was the reason. */
  readonly missingLibrary: string | null;
  constructor(message: string, missingLibrary: string | null, cause?: unknown) {
    super("SLN_ADDON_LOAD", message, 1, { cause });
    this.missingLibrary = missingLibrary;
  }
}

/** Exit code for an error thrown anywhere below the CLI. */
export function exitCodeOf(e: unknown): number {
  if (e && typeof e === "object") {
    const x = e as { exitCode?: unknown; name?: unknown };
    if (typeof x.exitCode === "number") return x.exitCode;
    // argument errors raised by the API (TypeError/RangeError) are bad input too
    if (e instanceof TypeError || e instanceof RangeError) return 2;
  }
  return 1;
}
