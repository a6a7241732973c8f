// MongoDB errors in the relay's terms: the sentence a user needs, and whether to retry.
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import {
  ConfigError,
  HistoryLostError,
  RelayError,
  TransientError,
  errorMessage,
} from '../errors.js';

export function isTransientMongoError(error: unknown): boolean {
  if (error instanceof TransientError) return true;
  if (error instanceof MongoNetworkError || error instanceof MongoServerSelectionError) return true;
  return error instanceof MongoServerError && error.hasErrorLabel('ResumableChangeStreamError');
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
      return new RelayError(`MongoDB ${where}: ${error.message} (code ${error.code})`, {
        cause: error,
      });
  }
}
