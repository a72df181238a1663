// The error every .pth / weights reader throws (exit code 2: bad input).
export class PthError extends Error {
  readonly exitCode = 2;
  readonly code: string;
  constructor(message: string, code = "SLN_BAD_PTH") {
    super(message);
    this.name = "PthError";
    this.code = code;
  }
}
