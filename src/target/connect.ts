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

export async function connectTarget(
  url: string,
  wanted: DialectName | 'auto',
): Promise<TargetConnection> {
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
  const db: AnyDb = new Kysely({ dialect: new PostgresDialect({ pool }) });
  try {
    const dialect = await resolveDialect(db, wanted);
    return { db, dialect, close: () => db.destroy() };
  } catch (error) {
    await db.destroy().catch(() => {});
    if (error instanceof RelayError) throw error;
    throw new RelayError(`cannot reach the target at ${redact(url)}: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}
