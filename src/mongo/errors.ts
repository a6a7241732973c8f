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

const RESET_CHECKPOINT =
  "delete the stream's checkpoint (its relay_checkpoints row; the stream id is printed at start) and start again: the relay copies the collections anew (--snapshot initial) and streams from there";

/** The stored resume token cannot be read (malformed, or from another server). */
function badToken(where: string, error: MongoServerError): RelayError {
  return new RelayError(
    `the checkpoint of ${where} holds a resume token this MongoDB cannot use (error ${error.code}: ${error.message}); ${RESET_CHECKPOINT}`,
  );
}

/** 280 ChangeStreamFatalError: the stream cannot go on, for one of several reasons. */
function fatalStreamError(where: string, error: MongoServerError): RelayError {
  if (/resume token was not found/i.test(error.message)) {
    return new RelayError(
      `the change stream of ${where} cannot resume: MongoDB did not find the checkpoint's resume token (error 280). Either --filter changed since the checkpoint was stored (start with the --filter it was stored with), or the cluster was restored from a backup; otherwise ${RESET_CHECKPOINT}`,
    );
  }
  if (/_id field.*modified/i.test(error.message)) {
    return new ConfigError(
      `the change stream of ${where} failed: ${error.message} (a --filter must keep each event's _id, the resume token)`,
    );
  }
  return new RelayError(
    `the change stream of ${where} cannot go on (error 280: ${error.message}); if --filter changed since the checkpoint was stored, start with the one it was stored with, otherwise ${RESET_CHECKPOINT}`,
  );
}

/**
 * 10334 BSONObjectTooLarge: a change event (the document with its full document or pre-image)
 * over 16 MB on a server without $changeStreamSplitLargeEvent, or one whose single field is over
 * it. The server names only the event's resume token ("First element: _id: ..."), not the
 * document's _id, so the sentence quotes its message.
 */
function tooLargeEvent(where: string, error: MongoServerError): RelayError {
  return new RelayError(
    `a change event of ${where} is larger than MongoDB's 16 MB limit (error 10334: ${error.message}), and this MongoDB cannot split it: upgrade MongoDB to 6.0.9+ or 7.0 (the relay then reads large events in fragments and reassembles them), or shrink that document, or use --full-document patch or a --filter that projects out its large fields (e.g. {"$unset": "fullDocument.<field>"})`,
    { cause: error },
  );
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
    case 40647:
      return badToken(where, error);
    case 280:
      return fatalStreamError(where, error);
    case 47:
      return new ConfigError(
        `--full-document required: MongoDB has no post-image for a change in ${where} (error 47: ${error.message}). Post-images exist only once the collection has changeStreamPreAndPostImages enabled (db.runCommand({collMod: '<collection>', changeStreamPreAndPostImages: {enabled: true}})) and only for changes made since; enable it, or use --full-document updateLookup or whenAvailable`,
      );
    case 10334:
      return tooLargeEvent(where, error);
    case 20:
      if (/changeStream|not permitted/i.test(error.message)) {
        return new ConfigError(
          `--filter has a stage a change stream does not allow (error 20: ${error.message}); after $changeStream only $match, $project, $addFields, $set, $unset, $replaceRoot, $replaceWith and $redact may follow`,
        );
      }
      return new RelayError(`MongoDB ${where}: ${error.message} (code 20)`, { cause: error });
    case 9:
      // FailedToParse: a malformed resume token as well as a malformed stage.
      if (/resume|token|_data|KeyString/i.test(error.message)) return badToken(where, error);
      return new ConfigError(`--filter is not a valid pipeline for ${where}: ${error.message}`);
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
