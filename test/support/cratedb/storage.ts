// Tables in memory with CrateDB's column model: top-level columns and the sub-columns of
// objects, each with a type; rows keyed by primary key; and the two states a CrateDB table has
// for readers: the live rows (what a primary-key lookup sees) and the rows as of the last
// refresh (what every other read sees).
import type { CheckDef, ColumnDef, TypeSpec } from './sql.js';
import { T, type DataType, type Value } from './types.js';

export interface Column {
  name: string;
  type: DataType;
  /** Sub-columns of an object column (or of the objects in an array column). */
  children: Map<string, Column>;
  indexOff: boolean;
  columnstore: boolean;
  notNull: boolean;
  primaryKey: boolean;
  /** The statement that created this column dynamically, while that statement runs. */
  createdBy?: object;
}

export type Row = Record<string, Value>;

export class Table {
  readonly columns = new Map<string, Column>();
  /** CHECK constraints, verified for every row written (`Indexer.TableConstraint`). */
  checks: (CheckDef & { name: string })[] = [];
  /** Live rows by primary key: what Get / DeleteById / UpdateById see. */
  rows = new Map<string, Row>();
  /** Rows as of the last refresh: what searches (any non-key read) see. */
  searchable = new Map<string, Row>();
  dirty = false;
  /** When a search last ran, for search-idle shards (they refresh on the next search). */
  lastSearch = Date.now();
  lastRefresh = Date.now();
  /**
   * `refresh_interval` if the table sets it (0 or less: no periodic refresh); null: the
   * default, which also lets an idle shard refresh on its next search instead.
   */
  refreshIntervalMs: number | null = null;

  constructor(
    readonly schema: string,
    readonly name: string,
    readonly primaryKey: string[],
  ) {}

  get fqn(): string {
    return `${this.schema}.${this.name}`;
  }

  refresh(): void {
    this.lastRefresh = Date.now();
    if (!this.dirty) return;
    this.searchable = new Map(this.rows);
    this.dirty = false;
  }

  /** Number of columns as CrateDB counts them against its limit: every nested path. */
  columnCount(): number {
    let n = 0;
    const walk = (cols: Map<string, Column>) => {
      for (const c of cols.values()) {
        n++;
        walk(c.children);
      }
    };
    walk(this.columns);
    return n;
  }

  /** The column at `name` + `path`, or undefined. */
  column(name: string, path: string[] = []): Column | undefined {
    let col = this.columns.get(name);
    for (const key of path) col = col?.children.get(key);
    return col;
  }
}

export function typeFromSpec(spec: TypeSpec): DataType {
  switch (spec.name) {
    case 'text':
      return T.text;
    case 'bigint':
      return T.bigint;
    case 'integer':
      return T.integer;
    case 'smallint':
      return { kind: 'smallint' };
    case 'double precision':
      return T.double;
    case 'real':
      return { kind: 'real' };
    case 'boolean':
      return T.boolean;
    case 'timestamp with time zone':
      return T.timestamptz;
    case 'timestamp without time zone':
      return { kind: 'timestamp without time zone' };
    case 'object':
      return T.object(spec.policy ?? 'dynamic');
    case 'array':
      return T.array(typeFromSpec(spec.element!));
    default:
      throw new Error(`unknown type ${spec.name}`);
  }
}

export function columnFromDef(def: ColumnDef, name = def.name): Column {
  const children = new Map<string, Column>();
  const spec = def.type.name === 'array' ? def.type.element! : def.type;
  for (const child of spec.children ?? []) children.set(child.name, columnFromDef(child));
  return {
    name,
    type: typeFromSpec(def.type),
    children,
    indexOff: def.indexOff,
    columnstore: def.columnstore,
    notNull: def.notNull,
    primaryKey: def.primaryKey,
  };
}

export function newColumn(name: string, type: DataType): Column {
  return {
    name,
    type,
    children: new Map(),
    indexOff: false,
    columnstore: true,
    notNull: false,
    primaryKey: false,
  };
}

/** Deep copy of a column tree, so a statement can add columns and drop them again on failure. */
export function cloneColumns(columns: Map<string, Column>): Map<string, Column> {
  const out = new Map<string, Column>();
  for (const [k, c] of columns) out.set(k, { ...c, children: cloneColumns(c.children) });
  return out;
}
