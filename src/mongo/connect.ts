// Connecting to MongoDB: a URL the driver cannot read, a server that cannot stream or refuses the
// credentials fail at once with one sentence; an unreachable one is for the caller to wait for
// (cdc-relay) or to report (the one-shot commands).
import { MongoClient } from 'mongodb';
import { ConfigError, RelayError, errorMessage } from '../errors.js';
import { redact } from '../log.js';
import { standaloneError } from './errors.js';

/**
 * How the relay reads documents and change events: every number keeps its BSON type (Int32,
 * Int64, Double), which the row's JSON text must show (DESIGN §1: a whole Double is `10.0`). The
 * driver's default would make an Int32 and a whole Double the same JS number.
 */
export const READ_BSON = { promoteValues: false } as const;

export interface ConnectOptions {
  /** Change streams need a replica set (or sharded cluster); workloads do not. */
  requireChangeStreams: boolean;
  serverSelectionTimeoutMS?: number;
}

/** A client for `url`, not connected yet; a URL the driver cannot read is bad input. */
export function mongoClient(url: string, serverSelectionTimeoutMS = 10_000): MongoClient {
  try {
    // A timeout written in the URL wins; otherwise fail within seconds, not the driver's 30.
    const timeoutInUrl = /[?&]serverSelectionTimeoutMS=/i.test(url);
    return new MongoClient(url, {
      appName: 'relay',
      ...(timeoutInUrl ? {} : { serverSelectionTimeoutMS }),
    });
  } catch (error) {
    throw new ConfigError(
      `--mongodb-url ${redact(url)} is not a valid MongoDB connection string: ${errorMessage(error)}`,
    );
  }
}

/**
 * Connects `client` and checks that the server can stream when asked to. Fails with the driver's
 * error as it is (so a caller can tell an unreachable server from a refusal), or a sentence for a
 * standalone server.
 */
export async function openMongo(
  client: MongoClient,
  url: string,
  requireChangeStreams: boolean,
): Promise<void> {
  await client.connect();
  const hello = await client.db('admin').command({ hello: 1 });
  if (requireChangeStreams && !hello.setName && hello.msg !== 'isdbgrid') {
    throw standaloneError(redact(url));
  }
}

/** A failure to connect to MongoDB at `url` as one sentence (ours stay as they are). */
export function cannotConnect(url: string, error: unknown, detail = ''): RelayError {
  if (error instanceof RelayError) return error;
  return new RelayError(`cannot reach MongoDB at ${redact(url)}: ${errorMessage(error)}${detail}`, {
    cause: error,
  });
}

/** A connected client, or one sentence why not: for commands that run once. */
export async function connectMongo(url: string, options: ConnectOptions): Promise<MongoClient> {
  const client = mongoClient(url, options.serverSelectionTimeoutMS);
  try {
    await openMongo(client, url, options.requireChangeStreams);
    return client;
  } catch (error) {
    await client.close().catch(() => {});
    throw cannotConnect(url, error);
  }
}
