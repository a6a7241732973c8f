// Connecting to the target over the PostgreSQL wire protocol and finding out which dialect it
// speaks.
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { ConfigError, RelayError, errorMessage } from '../errors.js';
import { redact } from '../log.js';
import { resolveDialect, type Dialect, type DialectName } from './dialect.js';
import type { AnyDb } from './writer.js';

export interface TargetConnection {
  db: AnyDb;
  dialect: Dialect;
  close(): Promise<void>;
}

const JSON_OIDS = new Set([114, 3802]); // json (CrateDB's OBJECT), jsonb

/**
 * JSON comes back as its text: `JSON.parse` would round 64-bit integers and drop the `.0` of a
 * Double; readers parse it with `parseStoredJson`.
 */
export const jsonAsText = ((oid: number, format?: 'text' | 'binary') =>
  JSON_OIDS.has(oid)
    ? (value: string) => value
    : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser;

/**
 * A pool for `url`, not connected yet; a URL that is not postgresql:// is bad input. Closed with
 * `db.destroy()`.
 */
export function targetDb(url: string): AnyDb {
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new ConfigError(
      `--target-url must be a postgresql:// URL (CrateDB: postgresql://crate@host:5432/doc), not ${redact(url)}`,
    );
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    connectionTimeoutMillis: 10_000,
    types: { getTypeParser: jsonAsText },
  });
  // A connection that breaks (server restart) must not end the process: an idle one is replaced
  // on next use (pool 'error'); one checked out between statements (a transaction, the health
  // probe) emits 'error' on itself, and its next query fails as a transient error and is retried.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return new Kysely({ dialect: new PostgresDialect({ pool }) });
}

/** A failure to connect to the target at `url` as one sentence (ours stay as they are). */
export function cannotReachTarget(url: string, error: unknown, detail = ''): RelayError {
  if (error instanceof RelayError) return error;
  return new RelayError(
    `cannot reach the target at ${redact(url)}: ${errorMessage(error)}${detail}`,
    { cause: error },
  );
}

/** A connected target and its dialect, or one sentence why not: for commands that run once. */
export async function connectTarget(
  url: string,
  wanted: DialectName | 'auto',
): Promise<TargetConnection> {
  const db = targetDb(url);
  try {
    const dialect = await resolveDialect(db, wanted);
    return { db, dialect, close: () => db.destroy() };
  } catch (error) {
    await db.destroy().catch(() => {});
    throw cannotReachTarget(url, error);
  }
}
