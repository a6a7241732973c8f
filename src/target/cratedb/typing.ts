// Declaring the sub-columns a batch adds, before it is written, and refusing the rows CrateDB would
// alter or refuse (types.ts decides; this file asks and tells the server). The known types of each
// table come from information_schema.columns, cached, and are read again when a batch adds paths.
import { sql } from 'kysely';
import type { RowTyping, TypedRow } from '../dialect.js';
import { quoteIdent, tableRef } from '../sql.js';
import type { AnyDb } from '../writer.js';
import { classifyCrateError } from './errors.js';
import {
  MAX_COLUMNS,
  OBJECT,
  ddlType,
  newColumnCount,
  parseColumnName,
  pathKey,
  shapeOf,
  type CrateType,
  type Path,
} from './types.js';
import type { KeyPolicy } from '../../convert/value.js';

interface TableTypes {
  /** Sub-columns of `data` (pathKey -> type). */
  types: Map<string, CrateType>;
  /** All columns of the table, `oid` and `data` included (the limit counts them all). */
  total: number;
}

/** `"data"['a']['b']`: the sub-column as ALTER TABLE names it. */
function subColumn(path: Path): string {
  return `${quoteIdent('data')}${path.map((k) => `['${k.replaceAll("'", "''")}']`).join('')}`;
}

export class CrateRowTyping implements RowTyping {
  private readonly tables = new Map<string, TableTypes>();
  private major: number | null = null;

  constructor(private readonly keys: KeyPolicy) {}

  async prepare(
    db: AnyDb,
    schema: string,
    table: string,
    rows: TypedRow[],
  ): Promise<Map<string, string>> {
    const refused = new Map<string, string>();
    if (rows.length === 0) return refused;
    this.major ??= await versionMajor(db);
    const current = await this.types(db, schema, table, false);
    // What the table will have once this batch's additions are declared.
    const view = new Map(current.types);
    const additions = new Map<string, { path: Path; type: CrateType; oids: string[] }>();
    let added = 0;
    for (const row of rows) {
      const shape = shapeOf(row.change.doc, { keys: this.keys, known: view, major: this.major });
      if (shape.problem) {
        refused.set(row.oid, shape.problem);
        continue;
      }
      const paths = [...shape.columns.values()].map((c) => c.path);
      const more = newColumnCount(paths, view);
      if (current.total + added + more > MAX_COLUMNS) {
        refused.set(
          row.oid,
          `it would add ${more} sub-columns to ${schema}.${table}, which has ${current.total + added} columns, beyond CrateDB's limit of ${MAX_COLUMNS} per table (documents keyed by ids or free-form maps do this): create the table with --object-policy ignored or declare the field OBJECT(IGNORED)`,
        );
        continue;
      }
      added += more;
      for (const path of paths) {
        for (let i = 1; i < path.length; i++) {
          const parent = pathKey(path.slice(0, i));
          if (!view.has(parent)) view.set(parent, OBJECT);
        }
      }
      for (const [key, column] of shape.columns) {
        view.set(key, column.type);
        const addition = additions.get(key);
        if (addition) addition.oids.push(row.oid);
        else additions.set(key, { ...column, oids: [row.oid] });
      }
    }
    // An array of objects is declared before its children, or CrateDB would make it an object.
    const ordered = [...additions.values()].sort((x, y) => x.path.length - y.path.length);
    if (ordered.length > 0) await this.declare(db, schema, table, ordered, refused);
    return refused;
  }

  forget(schema: string, table: string): void {
    this.tables.delete(`${schema}\u0000${table}`);
  }

  /** ALTER TABLE … ADD COLUMN for all additions at once; one by one if CrateDB refuses that. */
  private async declare(
    db: AnyDb,
    schema: string,
    table: string,
    additions: { path: Path; type: CrateType; oids: string[] }[],
    refused: Map<string, string>,
  ): Promise<void> {
    const alter = (list: typeof additions) =>
      sql`ALTER TABLE ${tableRef(schema, table)} ${sql.raw(
        list.map((a) => `ADD COLUMN ${subColumn(a.path)} ${ddlType(a.type)}`).join(', '),
      )}`.execute(db);
    try {
      await alter(additions);
    } catch (error) {
      const { kind } = classifyCrateError(error);
      if (kind === 'transient') throw error;
      // Another writer may have added some meanwhile: declare what is still missing, alone.
      const known = await this.types(db, schema, table, true);
      for (const addition of additions) {
        const now = known.types.get(pathKey(addition.path));
        if (now === addition.type) continue;
        try {
          if (now !== undefined) throw new Error(`it is ${now.toUpperCase()} already`);
          await alter([addition]);
        } catch (single) {
          if (classifyCrateError(single).kind === 'transient') throw single;
          for (const oid of addition.oids) {
            if (refused.has(oid)) continue;
            refused.set(
              oid,
              `CrateDB refused to add sub-column ${subColumn(addition.path)} ${ddlType(addition.type)}: ${(single as Error).message}`,
            );
          }
        }
      }
    }
    await this.types(db, schema, table, true);
  }

  private async types(
    db: AnyDb,
    schema: string,
    table: string,
    reload: boolean,
  ): Promise<TableTypes> {
    const key = `${schema}\u0000${table}`;
    const cached = this.tables.get(key);
    if (cached && !reload) return cached;
    const { rows } = await sql<{ column_name: string; data_type: string }>`
      SELECT column_name, data_type FROM information_schema.columns
      WHERE table_schema = ${schema} AND table_name = ${table}`.execute(db);
    const types = new Map<string, CrateType>();
    for (const row of rows) {
      const path = parseColumnName(row.column_name);
      if (path) types.set(pathKey(path), row.data_type.toLowerCase());
    }
    const result = { types, total: rows.length };
    this.tables.set(key, result);
    return result;
  }
}

/** CrateDB's major version from `SELECT version()` ("CrateDB 6.0.1 (built …)"). */
async function versionMajor(db: AnyDb): Promise<number> {
  const { rows } = await sql<{ version: string }>`SELECT version() AS version`.execute(db);
  const match = /CrateDB (\d+)\./i.exec(rows[0]?.version ?? '');
  return match ? Number(match[1]) : 6;
}
