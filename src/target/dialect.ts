// What differs between targets, in one interface (like Kysely's dialect/adapter pair): DDL,
// how `data` is passed, which object keys are allowed, transactions, and visibility.
import { sql, type Kysely, type RawBuilder, type SqlBool } from 'kysely';
import type { KeyPolicy } from '../convert/value.js';
import { ConfigError } from '../errors.js';
import { crateDialect } from './cratedb/dialect.js';
import type { TargetErrorClass } from './errors.js';
import type { AnyDb } from './writer.js';
import { postgresDialect } from './postgres/dialect.js';

export type DialectName = 'cratedb' | 'postgres';
export type ObjectPolicy = 'dynamic' | 'ignored';

/**
 * A row about to be written: its document, BSON as decoded or a stored row (read from the
 * change only by a dialect that types rows: decoding it costs).
 */
export interface TypedRow {
  oid: string;
  change: { readonly doc: Record<string, unknown> };
}

/** What a target needs done before rows are written to one of its tables. */
export interface RowTyping {
  /**
   * Prepares `table` for `rows` (CrateDB declares the sub-columns they add) and returns the rows
   * that must not be written, with the reason.
   */
  prepare(db: AnyDb, schema: string, table: string, rows: TypedRow[]): Promise<Map<string, string>>;
  /** Forgets what it learnt of a table that was dropped. */
  forget(schema: string, table: string): void;
}

export interface Dialect {
  readonly name: DialectName;
  readonly defaultSchema: string;
  /** Rows and checkpoint commit in one transaction (exactly-once) when true. */
  readonly transactional: boolean;
  /** How an object key is stored (CrateDB forbids some characters in keys). */
  readonly objectKey: KeyPolicy;
  /** DDL statements creating what the relay needs in `schema` (and `table`, if given). */
  ddl(schema: string, table: string | null, objectPolicy: ObjectPolicy): string[];
  /** The table a collection's rows go to, unless `--table` names one. */
  tableName(collection: string): string;
  /**
   * `oid` is one of `oids`, in a form the target answers from the rows as just written (CrateDB
   * sees unrefreshed rows only through primary-key lookups).
   */
  oidIn(oids: string[]): RawBuilder<SqlBool>;
  /** Why a row the target neither wrote nor refused with an error is dead-lettered. */
  readonly unwrittenRow: string;
  /**
   * The `data` value of a row in statement text, from the parameter (`$2`) that carries the row's
   * JSON text.
   */
  dataParameter(placeholder: string): string;
  /** Most keys one primary-key lookup or delete names. */
  readonly maxKeysPerStatement: number;
  /** Most rows one INSERT carries (its text must stay within the server's statement limit). */
  readonly maxRowsPerInsert: number;
  /** Row typing for one writer (it caches what it learns of the tables), per object policy. */
  rowTyping(objectPolicy: ObjectPolicy): RowTyping;
  /** Whether to retry, dead-letter the row, or stop, with the sentence to tell a person. */
  classifyError(error: unknown): TargetErrorClass;
  /** Makes written rows visible to every query (CrateDB refreshes periodically). */
  refresh(db: Kysely<unknown>, schema: string, table: string): Promise<void>;
}

export const DIALECTS: Record<DialectName, Dialect> = {
  cratedb: crateDialect,
  postgres: postgresDialect,
};

/** Asks the server what it is: CrateDB names itself in `SELECT version()`. */
export async function detectDialect(db: Kysely<unknown>): Promise<DialectName> {
  const { rows } = await sql<{ version: string }>`SELECT version() AS version`.execute(db);
  const version = rows[0]?.version ?? '';
  return /crate/i.test(version) ? 'cratedb' : 'postgres';
}

export async function resolveDialect(
  db: Kysely<unknown>,
  wanted: DialectName | 'auto',
): Promise<Dialect> {
  const actual = await detectDialect(db);
  if (wanted !== 'auto' && wanted !== actual) {
    throw new ConfigError(
      `--dialect ${wanted} was given, but the target is ${actual === 'cratedb' ? 'CrateDB' : 'PostgreSQL'}; use --dialect ${actual} or auto`,
    );
  }
  return DIALECTS[actual];
}
