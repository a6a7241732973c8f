// Connecting to MongoDB, failing fast with one sentence when it is unreachable or cannot stream.
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

export async function connectMongo(url: string, options: ConnectOptions): Promise<MongoClient> {
  let client: MongoClient;
  try {
    // A timeout written in the URL wins; otherwise fail within seconds, not the driver's 30.
    const timeoutInUrl = /[?&]serverSelectionTimeoutMS=/i.test(url);
    client = new MongoClient(url, {
      appName: 'relay',
      ...(timeoutInUrl
        ? {}
        : { serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 10_000 }),
    });
  } catch (error) {
    throw new ConfigError(
      `--mongodb-url ${redact(url)} is not a valid MongoDB connection string: ${errorMessage(error)}`,
    );
  }
  try {
    await client.connect();
    const hello = await client.db('admin').command({ hello: 1 });
    if (options.requireChangeStreams && !hello.setName && hello.msg !== 'isdbgrid') {
      throw standaloneError(redact(url));
    }
    return client;
  } catch (error) {
    await client.close().catch(() => {});
    if (error instanceof RelayError) throw error;
    throw new RelayError(`cannot reach MongoDB at ${redact(url)}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}
