// Sorting target errors into the three things the writer does about them.
import { errorMessage } from '../errors.js';

/**
 * - transient: the server or the network is away; retry the whole batch later.
 * - row: this data was refused (type conflict, bad key, too large); isolate and dead-letter it.
 * - fatal: retrying or isolating cannot help (no table, no permission, our SQL is wrong).
 */
export type TargetErrorKind = 'transient' | 'row' | 'fatal';

/** What to do about an error, and the sentence to tell a person. */
export interface TargetErrorClass {
  kind: TargetErrorKind;
  message: string;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

const FATAL_SQLSTATES = new Set([
  '42P01', // undefined_table
  '42501', // insufficient_privilege
  '42601', // syntax_error
  '42703', // undefined_column
  '3F000', // invalid_schema_name
  '3D000', // invalid_catalog_name
  '0A000', // feature_not_supported
]);

/** The rules every PostgreSQL-wire target shares; a dialect refines them (`Dialect.classifyError`). */
export function classifyTargetError(error: unknown): TargetErrorClass {
  const message = errorMessage(error);
  return { kind: kindOf(error, message), message };
}

function kindOf(error: unknown, message: string): TargetErrorKind {
  const e = error as { code?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (NETWORK_CODES.has(code)) return 'transient';
  if (/^(08|53|57P0)/.test(code) || code === '40001' || code === '40P01') return 'transient';
  if (
    /Connection terminated|connection timeout|Client has encountered a connection error|server closed the connection|timeout exceeded when trying to connect|the database system is (starting up|shutting down)|Client was closed/i.test(
      message,
    )
  ) {
    return 'transient';
  }
  if (FATAL_SQLSTATES.has(code) || code.startsWith('28')) return 'fatal';
  return 'row';
}
