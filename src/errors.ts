// Error types callers must tell apart. Every message names what it concerns (collection, oid,
// statement) so one line in a log says what went wrong where.

/** Ends the command with this sentence and exit code 1 (bad input, unrecoverable state). */
export class RelayError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Invalid flags, environment or files: nothing was done. Exit code 2. */
export class ConfigError extends RelayError {}

/** A fault that passes (target restarting, network reset): retry with backoff. */
export class TransientError extends RelayError {}

/** One document cannot be stored as a row: it goes to the dead-letter table. */
export class RowError extends RelayError {
  constructor(
    message: string,
    readonly oid?: string,
  ) {
    super(message);
  }
}

/** The checkpoint is older than the oplog: resuming would skip events. */
export class HistoryLostError extends RelayError {}

/** The message of anything thrown (drivers sometimes throw plain objects with a message). */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : String(error);
}
