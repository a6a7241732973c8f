// A command failure as a server reports it: `{ok: 0, code, codeName, errmsg, errorLabels}`.
import type { Document } from 'bson';

const CODE_NAMES: Record<number, string> = {
  1: 'InternalError',
  2: 'BadValue',
  6: 'HostUnreachable',
  7: 'HostNotFound',
  9: 'FailedToParse',
  13: 'Unauthorized',
  14: 'TypeMismatch',
  20: 'IllegalOperation',
  26: 'NamespaceNotFound',
  43: 'CursorNotFound',
  47: 'NoMatchingDocument',
  48: 'NamespaceExists',
  50: 'MaxTimeMSExpired',
  59: 'CommandNotFound',
  66: 'ImmutableField',
  63: 'OBSOLETE_StaleShardVersion',
  89: 'NetworkTimeout',
  91: 'ShutdownInProgress',
  133: 'FailedToSatisfyReadPreference',
  134: 'ReadConcernMajorityNotAvailableYet',
  150: 'StaleEpoch',
  189: 'PrimarySteppedDown',
  216: 'ElectionInProgress',
  234: 'RetryChangeStream',
  260: 'InvalidResumeToken',
  262: 'ExceededTimeLimit',
  266: 'FailPointSetFailed',
  280: 'ChangeStreamFatalError',
  286: 'ChangeStreamHistoryLost',
  9001: 'SocketException',
  10107: 'NotWritablePrimary',
  11000: 'DuplicateKey',
  11600: 'InterruptedAtShutdown',
  11602: 'InterruptedDueToReplStateChange',
  13435: 'NotPrimaryNoSecondaryOk',
  13436: 'NotPrimaryOrSecondary',
  40573: 'Location40573',
};

// Error categories of src/mongo/base/error_codes.yml (7.0) that decide labels.
const RETRIABLE_ERROR = new Set([
  6, 7, 89, 91, 134, 189, 262, 317, 358, 384, 402, 9001, 10107, 11600, 11602, 13435, 13436, 50915,
]);
const NETWORK_ERROR = new Set([6, 7, 89, 317, 384, 9001]);
const NEED_RETARGETTING_ERROR = new Set([150, 13388]);
const NON_RESUMABLE_CHANGE_STREAM_ERROR = new Set([280, 286]);
/** NotPrimaryError: 189, 10107, 11602, 13435, 13436. */
export const NOT_PRIMARY_ERRORS = new Set([189, 10107, 11602, 13435, 13436]);

/** What the server knows about a failed command when it labels the error. */
export interface LabelContext {
  /** Canonical command name (`getMore`, `aggregate`, `insert` …). */
  command: string;
  body: Document;
  /**
   * The command is a change stream as far as the server can tell: an aggregate whose pipeline
   * starts with `$changeStream`, or a getMore that had checked out a change-stream cursor. A
   * getMore failed by `failCommand` fails before its cursor is checked out, so it is not.
   */
  changeStream: boolean;
}

/**
 * The labels a server adds to an error (src/mongo/db/error_labels.cpp ErrorLabelBuilder::build):
 * TransientTransactionError inside a transaction, else RetryableWriteError for a retryable
 * write; ResumableChangeStreamError for a change stream's resumable codes unless one of those
 * was added; NonResumableChangeStreamError for 280/286 on any command.
 */
export function serverErrorLabels(code: number, context: LabelContext): string[] {
  const { body } = context;
  const inTransaction = body.txnNumber !== undefined && body.autocommit !== undefined;
  const retryableWrite = body.txnNumber !== undefined && body.autocommit === undefined;
  if (inTransaction && (RETRIABLE_ERROR.has(code) || code === 112 || code === 251)) {
    return ['TransientTransactionError'];
  }
  if (retryableWrite && RETRIABLE_ERROR.has(code)) return ['RetryableWriteError'];
  const resumable =
    RETRIABLE_ERROR.has(code) ||
    NETWORK_ERROR.has(code) ||
    NEED_RETARGETTING_ERROR.has(code) ||
    code === 234 ||
    code === 133;
  if (
    (context.command === 'aggregate' || context.command === 'getMore') &&
    context.changeStream &&
    resumable
  ) {
    return ['ResumableChangeStreamError'];
  }
  if (NON_RESUMABLE_CHANGE_STREAM_ERROR.has(code)) return ['NonResumableChangeStreamError'];
  return [];
}

export class CommandError extends Error {
  readonly codeName: string;
  constructor(
    readonly code: number,
    message: string,
    codeName?: string,
    readonly labels: string[] = [],
  ) {
    super(message);
    this.codeName = codeName ?? CODE_NAMES[code] ?? `Location${code}`;
  }
}
