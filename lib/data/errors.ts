// Data errors: small named classes, each message saying what to do next. All
// are bad input (the CLI exits with code 2 on them).

export class DataError extends Error {
  readonly code: string;
  readonly exitCode = 2;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** --data points at nothing. */
export class DataNotFoundError extends DataError {
  constructor(readonly path: string) {
    super("SLN_DATA_NOT_FOUND", `data path '${path}' does not exist; check --data (omit it to use the built-in synthetic set)`);
  }
}

/** No known layout at the path, or --data-format names no format. */
export class UnknownFormatError extends DataError {
  constructor(path: string, detail: string) {
    super(
      "SLN_UNKNOWN_FORMAT",
      `cannot tell the data format of '${path}': ${detail}; expected an ImageFolder (class folders, optionally under train/), ` +
        "IDX files (train-images-idx3-ubyte[.gz]) or CIFAR binary batches (data_batch_1.bin / train.bin); " +
        "force one with --data-format imagefolder|idx|cifar",
    );
  }
}

/** Class folders without images, or a split with no images at all. */
export class EmptyDatasetError extends DataError {
  constructor(path: string, detail: string) {
    super("SLN_EMPTY_DATASET", `no images in '${path}': ${detail}`);
  }
}

/** A file shorter than its header says, or with a wrong record size. */
export class TruncatedFileError extends DataError {
  constructor(readonly file: string, detail: string) {
    super("SLN_TRUNCATED_FILE", `'${file}' is truncated or corrupt: ${detail}; download it again`);
  }
}

/** A file that is not what its name says (bad magic, bad gzip, mismatched counts). */
export class BadFileError extends DataError {
  constructor(readonly file: string, detail: string) {
    super("SLN_BAD_FILE", `'${file}' is not a valid data file: ${detail}; download it again or point --data elsewhere`);
  }
}

/** Options that do not fit the data (for example an unknown split). */
export class DataUsageError extends DataError {
  constructor(message: string) {
    super("SLN_DATA_USAGE", message);
  }
}
