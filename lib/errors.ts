// Small named errors with a next step in their text. The CLI maps them to exit
// codes: UsageError and InputError -> 2, anything else -> 1.
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export class InputError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "InputError";
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
