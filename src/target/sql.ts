// The one place identifiers are quoted and SQL files are loaded.
import fs from 'node:fs';
import { sql, type Kysely, type RawBuilder } from 'kysely';

const SQL_DIR = new URL('../../sql/', import.meta.url);

/** The wire protocol's limit on bind parameters in one statement (a 16-bit count). */
export const MAX_PARAMETERS = 32767;

/** Quotes an SQL identifier (schema, table, column) for both PostgreSQL and CrateDB. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * `schema.table` for a statement. Kysely's table parser splits names at `.`, which a collection
 * name such as `fs.files` contains: data tables are always named through here.
 */
export function tableRef(schema: string, table: string): RawBuilder<unknown> {
  return sql.raw(`${quoteIdent(schema)}.${quoteIdent(table)}`);
}

const cache = new Map<string, string>();

/**
 * `sql/<dialect>/<name>.sql` with `{{var}}` replaced: identifiers (`schema`, `table`) quoted,
 * anything else (e.g. `object_policy`) inserted as given by code, never by users.
 */
export function loadSql(dialect: string, name: string, vars: Record<string, string>): string {
  const path = `${dialect}/${name}.sql`;
  let text = cache.get(path);
  if (text === undefined) {
    text = fs.readFileSync(new URL(path, SQL_DIR), 'utf8');
    cache.set(path, text);
  }
  return text.replace(/\{\{(\w+)\}\}/g, (_, key: string) => {
    const value = vars[key];
    if (value === undefined) throw new Error(`${path} needs {{${key}}}`);
    return key === 'schema' || key === 'table' ? quoteIdent(value) : value;
  });
}

/** Whether `schema.table` exists on the target. */
export async function tableExists(
  db: Kysely<unknown>,
  schema: string,
  table: string,
): Promise<boolean> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = ${schema} AND table_name = ${table}`.execute(
    db,
  );
  return Number(rows[0]?.n ?? 0) > 0;
}
