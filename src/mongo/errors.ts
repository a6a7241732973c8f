// MongoDB errors in the relay's terms: the sentence a user needs, and whether to retry.
import {
  MongoError,
  MongoNetworkError,
  MongoServerError,
  MongoServerSelectionError,
} from 'mongodb';
import {
  ConfigError,
  HistoryLostError,
  RelayError,
  TransientError,
  errorMessage,
} from '../errors.js';

/**
 * Labels a server (or the driver) puts on errors that pass: the operation can run again.
 * Sources: the change-streams, retryable-writes and transactions specifications.
 */
const TRANSIENT_LABELS = [
  'ResumableChangeStreamError',
  'RetryableWriteError',
  'TransientTransactionError',
];

/**
 * Codes of faults that pass, whatever the labels (a fail point sends none unless told to):
 * the driver's resumable getMore codes and retryable read codes (node-mongodb-native
 * src/error.ts GET_MORE_RESUMABLE_CODES, RETRYABLE_READ_ERROR_CODES), and the codes of a cursor
 * lost while a restart or a long target outage kept it idle, which a new query after the last
 * _id copied replaces.
 */
const TRANSIENT_CODES = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  43, // CursorNotFound
  63, // StaleShardVersion
  89, // NetworkTimeout
  91, // ShutdownInProgress
  133, // FailedToSatisfyReadPreference
  134, // ReadConcernMajorityNotAvailableYet
  150, // StaleEpoch
  175, // QueryPlanKilled
  189, // PrimarySteppedDown
  202, // NetworkInterfaceExceededTimeLimit
  234, // RetryChangeStream
  237, // CursorKilled
  262, // ExceededTimeLimit
  9001, // SocketException
  10058, // LegacyNotPrimary
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13388, // StaleConfig
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

/**
 * Gives a server error its code as a number again. The relay reads documents with
 * `promoteValues: false` (READ_BSON) so numbers keep their BSON type, and the driver decodes an
 * error reply to such a read with the same options, leaving `code` an Int32 that no check
 * (the relay's or the driver's) would match.
 */
function numericCode(error: MongoError): void {
  const code = error.code as unknown;
  if (typeof code === 'object' && code !== null) error.code = Number(code);
}

/**
 * Socket errors the driver sometimes lets through unwrapped: a command written to a connection
 * the server has just closed fails with Node's own EPIPE ("This socket has been ended by the other
 * party", node-mongodb-native cmap/connection.ts writeCommand), not a MongoNetworkError.
 */
const SOCKET_ERROR_CODES = new Set([
  'EPIPE',
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
]);

/** Whether a MongoDB error passes (the server restarting, an election, a lost cursor). */
export function isTransientMongoError(error: unknown): boolean {
  if (error instanceof TransientError) return true;
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && SOCKET_ERROR_CODES.has(code)) return true;
  if (!(error instanceof MongoError)) return false;
  numericCode(error);
  if (TRANSIENT_LABELS.some((label) => error.hasErrorLabel(label))) return true;
  return typeof error.code === 'number' && TRANSIENT_CODES.has(error.code);
}

/** A MongoDB that is no replica set: what is wrong and how to fix it. */
export function standaloneError(where: string): ConfigError {
  return new ConfigError(
    `MongoDB at ${where} is a standalone server, and change streams need a replica set (error 40573): start mongod with --replSet rs0 and run rs.initiate() once; a one-member replica set is enough`,
  );
}

/** Rewrites driver errors that users cause or must act on; others pass through unchanged. */
export function explainMongoError(error: unknown, where: string): unknown {
  if (!(error instanceof MongoServerError)) {
    if (isTransientMongoError(error))
      return new TransientError(`MongoDB ${where}: ${errorMessage(error)}`, { cause: error });
    return error;
  }
  numericCode(error);
  switch (error.code) {
    case 40573:
      return standaloneError(where);
    case 286:
      return new HistoryLostError(
        `the checkpoint of ${where} is older than the oldest entry in MongoDB's oplog, so the changes since then are gone; re-copy with --snapshot initial after deleting the checkpoint (relay_checkpoints row), or enlarge the oplog to keep this from happening again`,
      );
    case 260:
      return new RelayError(
        `the stored resume token of ${where} is not valid on this server (${error.message}); delete its checkpoint to start over`,
      );
    case 280:
      return new ConfigError(
        `the change stream of ${where} failed: ${error.message} (a --filter must keep each event's _id)`,
      );
    case 9:
    case 14:
    case 15983:
    case 16410:
    case 40323:
    case 40324:
    case 17276:
      return new ConfigError(`--filter is not a valid pipeline for ${where}: ${error.message}`);
    default:
      if (isTransientMongoError(error)) {
        return new TransientError(`MongoDB ${where}: ${error.message} (code ${error.code})`, {
          cause: error,
        });
      }
      return new RelayError(`MongoDB ${where}: ${error.message} (code ${error.code})`, {
        cause: error,
      });
  }
}
