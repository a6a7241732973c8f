// CrateDB sub-column types from BSON types, and whether a value fits the sub-column it lands in.
// CrateDB types a new sub-column from its first value's JSON text and casts later values into it
// leniently (a fraction into BIGINT is truncated, a boolean into TEXT becomes "t"): the relay,
// which knows each value's BSON type, declares the sub-columns itself and refuses, with a
// sentence, any value CrateDB would alter or refuse. Pure functions; README has the table.
import { LosslessNumber } from 'lossless-json';
import { isContainer, type KeyPolicy } from '../../convert/value.js';

/** A type as `information_schema.columns.data_type` spells it (`bigint`, `text_array`, …). */
export type CrateType = string;

export const TEXT = 'text';
export const BIGINT = 'bigint';
export const DOUBLE = 'double precision';
export const BOOLEAN = 'boolean';
export const TIMESTAMP = 'timestamp with time zone';
export const OBJECT = 'object';
/** An array of objects; information_schema lists its children with one element's type. */
export const OBJECT_ARRAY = 'object_array';

/** CrateDB's limits a document can run into (`shared/notes/cratedb.md`). */
export const MAX_COLUMNS = 1000;
export const MAX_DEPTH = 100;
/** Lucene's limit on an indexed term: a longer string in an indexed TEXT sub-column fails. */
export const MAX_INDEXED_BYTES = 32766;

/** A path inside `data`, keys as stored: `data['a']['b']` is `["a","b"]`. */
export type Path = string[];

export const pathKey = (path: Path): string => JSON.stringify(path);

/** `data['a']['b']` as information_schema names it -> `["a","b"]`; null for other columns. */
export function parseColumnName(name: string): Path | null {
  const match = /^data((?:\['(?:[^']|'')*'\])+)$/.exec(name);
  if (!match) return null;
  return [...match[1]!.matchAll(/\['((?:[^']|'')*)'\]/g)].map((m) => m[1]!.replaceAll("''", "'"));
}

/** The DDL spelling of an information_schema type: `text_array` -> `ARRAY(TEXT)`. */
export function ddlType(type: CrateType): string {
  return type.endsWith('_array') ? `ARRAY(${ddlType(type.slice(0, -6))})` : type.toUpperCase();
}

/** What the relay knows of a BSON value: its type's name and the sub-column type it needs. */
interface Scalar {
  bson: string;
  type: CrateType;
  value: unknown;
}

const TWO_53 = 2n ** 53n;

function bsonType(value: unknown): string {
  return (value as { _bsontype?: string } | null)?._bsontype ?? '';
}

/** A scalar's BSON type and the sub-column type that keeps it exactly; null for null. */
export function scalarOf(value: unknown): Scalar | null {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
      return { bson: 'String', type: TEXT, value };
    case 'boolean':
      return { bson: 'Boolean', type: BOOLEAN, value };
    case 'number':
      // The driver decodes Int32 and Double alike: DOUBLE PRECISION holds both exactly.
      return { bson: Number.isInteger(value) ? 'Int32' : 'Double', type: DOUBLE, value };
    case 'bigint':
      return { bson: 'Int64', type: BIGINT, value };
  }
  if (value instanceof Date) return { bson: 'Date', type: TIMESTAMP, value };
  if (value instanceof RegExp) return { bson: 'RegExp', type: TEXT, value };
  if (value instanceof LosslessNumber) {
    // A number of a stored row: it was read from its sub-column.
    const fraction = /[.eE]/.test(value.value);
    return { bson: fraction ? 'Double' : 'Int64', type: fraction ? DOUBLE : BIGINT, value };
  }
  switch (bsonType(value)) {
    case 'Int32':
    case 'Double':
      return { bson: bsonType(value), type: DOUBLE, value: Number(value) };
    case 'Long':
      return { bson: 'Int64', type: BIGINT, value: BigInt(String(value)) };
    case 'Timestamp':
      return { bson: 'Timestamp', type: BIGINT, value };
    case 'ObjectId':
    case 'ObjectID':
    case 'Decimal128':
    case 'Binary':
    case 'BSONRegExp':
    case 'Code':
    case 'BSONSymbol':
    case 'Symbol':
    case 'MinKey':
    case 'MaxKey':
      return { bson: bsonType(value), type: TEXT, value: String(value) };
  }
  return null;
}

const NUMERIC = new Set([BIGINT, DOUBLE, 'integer', 'smallint', 'real']);

/**
 * Why `scalar` cannot be stored exactly in a sub-column of type `column`, or null when it can.
 * A change of kind (a string into a number, a number into TEXT…) is refused even where CrateDB
 * would cast it, since the stored value would no longer be what MongoDB holds.
 */
export function misfit(scalar: Scalar, column: CrateType): string | null {
  if (scalar.type === column) return null;
  const { bson, value } = scalar;
  if (value instanceof LosslessNumber && (NUMERIC.has(column) || column === TIMESTAMP)) {
    return null;
  }
  if (column === DOUBLE || column === 'real') {
    if (bson === 'Int64' || bson === 'Timestamp') {
      const n = typeof value === 'bigint' ? value : null;
      if (n !== null && (n > TWO_53 || n < -TWO_53)) {
        return 'an Int64 beyond 2^53 would lose digits';
      }
      return column === 'real' ? 'REAL keeps only 24 bits' : null;
    }
  }
  if (column === BIGINT || column === 'integer' || column === 'smallint') {
    if (bson === 'Int32' || bson === 'Double') {
      const n = value as number;
      if (!Number.isInteger(n)) return 'its fraction would be cut off';
      if (!Number.isSafeInteger(n)) return 'it is beyond the integers a Double holds exactly';
      if (column === 'integer' && (n < -(2 ** 31) || n >= 2 ** 31)) return 'it is out of range';
      return column === 'smallint' ? 'SMALLINT is too small' : null;
    }
    // Dates were stored as epoch milliseconds before sub-columns were declared: same value.
    if (bson === 'Date' && column === BIGINT) return null;
    if (bson === 'Timestamp' && column === BIGINT) return null;
  }
  return 'it would change kind';
}

export interface RowShape {
  /**
   * Each sub-column the row needs, with the type its values need; a child of an array of objects
   * (`data['items']['price']`) has the type of one element's value, as CrateDB lists and declares
   * it, and its array is declared `ARRAY(OBJECT)` before it.
   */
  columns: Map<string, { path: Path; type: CrateType }>;
  /** The first reason CrateDB would alter or refuse the row, or null. */
  problem: string | null;
}

export interface ShapeOptions {
  keys: KeyPolicy;
  /** The sub-column types the table has (pathKey -> type). */
  known: ReadonlyMap<string, CrateType>;
  /** CrateDB's major version: nested arrays need 6. */
  major: number;
}

const sqlPath = (path: Path): string => `data${path.map((k) => `['${k}']`).join('')}`;

/** Where an object array's child lives in each element: `items[].price`. */
const elementPath = (path: Path, arrays: ReadonlySet<number>): string =>
  path.map((k, i) => (arrays.has(i + 1) ? `${k}[]` : k)).join('.');

/** The sub-columns a document needs and the first value that would not be stored exactly. */
export function shapeOf(doc: Record<string, unknown>, options: ShapeOptions): RowShape {
  const columns = new Map<string, { path: Path; type: CrateType }>();
  let problem: string | null = null;
  const refuse = (reason: string) => {
    problem ??= reason;
  };
  // Lengths of the paths that are arrays of objects: their children are named `items[].price`.
  const arrays = new Set<number>();
  const shown = (path: Path): string => {
    const inside = [...arrays].some((n) => n < path.length);
    return inside ? `${sqlPath(path)} (${elementPath(path, arrays)})` : sqlPath(path);
  };
  // Paths this document holds objects at: elements of one array may disagree on a field's kind.
  const objectPaths = new Set<string>();
  const typeAt = (path: Path): CrateType | undefined => {
    const key = pathKey(path);
    return (
      options.known.get(key) ??
      columns.get(key)?.type ??
      (objectPaths.has(key) ? OBJECT : undefined)
    );
  };
  const need = (path: Path, type: CrateType) => {
    const key = pathKey(path);
    const known = options.known.get(key);
    if (known === undefined && !columns.has(key)) columns.set(key, { path, type });
  };
  const scalarAt = (path: Path, scalar: Scalar) => {
    const column = typeAt(path);
    if (column !== undefined) {
      const why = misfit(scalar, column);
      if (why) {
        refuse(
          `${shown(path)} is ${ddlType(column)} and this document's value there is a BSON ${scalar.bson}: ${why}`,
        );
      }
    } else {
      need(path, scalar.type);
    }
    const type = column ?? scalar.type;
    if (type === TEXT && typeof scalar.value === 'string') {
      const bytes = Buffer.byteLength(scalar.value);
      if (bytes > MAX_INDEXED_BYTES) {
        refuse(
          `${shown(path)} holds a string of ${bytes} UTF-8 bytes, more than CrateDB indexes in a TEXT sub-column (${MAX_INDEXED_BYTES}); declare that sub-column with INDEX OFF or create the table with --object-policy ignored`,
        );
      }
    }
  };
  const walk = (value: unknown, path: Path) => {
    if (path.length > MAX_DEPTH) {
      refuse(
        `the document nests objects deeper than CrateDB's ${MAX_DEPTH} levels at ${shown(path.slice(0, 3))}…`,
      );
      return;
    }
    if (Array.isArray(value)) return walkArray(value, path);
    const fields = fieldsOf(value);
    if (fields) {
      const column = typeAt(path);
      if (path.length > 0 && column !== undefined && column !== OBJECT) {
        refuse(`${shown(path)} is ${ddlType(column)} and this document's value there is an object`);
        return;
      }
      objectPaths.add(pathKey(path));
      walkFields(fields, path);
      return;
    }
    const scalar = scalarOf(value);
    if (scalar) scalarAt(path, scalar);
  };
  const walkFields = (fields: Record<string, unknown>, path: Path) => {
    for (const rawKey of Object.keys(fields)) {
      walk(fields[rawKey], [...path, options.keys(rawKey)]);
    }
  };
  const walkArray = (items: unknown[], path: Path) => {
    const column = typeAt(path);
    if (column !== undefined && !column.endsWith('_array')) {
      refuse(`${shown(path)} is ${ddlType(column)} and this document's value there is an array`);
      return;
    }
    let scalars: Scalar[] = [];
    let objects = 0;
    for (const item of items) {
      if (Array.isArray(item)) {
        if (options.major < 6) {
          refuse(
            `${shown(path)} holds an array inside an array, which CrateDB accepts from 6.0 only`,
          );
        }
        return;
      }
      if (fieldsOf(item)) objects++;
      else {
        const scalar = scalarOf(item);
        if (scalar) scalars.push(scalar);
      }
    }
    if (objects > 0) {
      if (scalars.length > 0) {
        refuse(`${shown(path)} mixes objects and other values in one array, which CrateDB refuses`);
      } else if (column !== undefined && column !== OBJECT_ARRAY) {
        refuse(
          `${shown(path)} is ${ddlType(column)} and this document's array there holds objects`,
        );
      } else {
        // Each element's fields are children of the array, typed and checked like sub-columns.
        if (column === undefined) need(path, OBJECT_ARRAY);
        arrays.add(path.length);
        for (const item of items) {
          const fields = fieldsOf(item);
          if (fields) walkFields(fields, path);
        }
        arrays.delete(path.length);
      }
      return;
    }
    if (scalars.length === 0) return;
    const element = column?.slice(0, -6);
    const types = new Set(scalars.map((s) => s.type));
    if (element === undefined && types.size > 1) {
      // Int64 and other numbers share DOUBLE PRECISION when every value fits exactly.
      if ([...types].every((t) => t === DOUBLE || t === BIGINT)) {
        scalars = scalars.map((s) => ({ ...s, type: DOUBLE }));
      } else {
        refuse(
          `${shown(path)} mixes ${[...new Set(scalars.map((s) => s.bson))].join(' and ')} values in one array, which CrateDB refuses`,
        );
        return;
      }
    }
    const type = element ?? scalars[0]!.type;
    for (const scalar of scalars) {
      const why = misfit(scalar, type);
      if (why) {
        refuse(
          `${shown(path)} is ${ddlType(`${type}_array`)} and this document's array there holds a BSON ${scalar.bson}: ${why}`,
        );
        return;
      }
      if (
        type === TEXT &&
        typeof scalar.value === 'string' &&
        Buffer.byteLength(scalar.value) > MAX_INDEXED_BYTES
      ) {
        refuse(
          `${shown(path)} holds a string longer than CrateDB indexes (${MAX_INDEXED_BYTES} UTF-8 bytes)`,
        );
        return;
      }
    }
    if (column === undefined) need(path, `${type}_array`);
  };
  walk(doc, []);
  return { columns, problem };
}

/** The fields of an embedded document (a DBRef as MongoDB stores it), or null for other values. */
function fieldsOf(value: unknown): Record<string, unknown> | null {
  if (bsonType(value) === 'DBRef') {
    const ref = value as { collection: string; oid: unknown; db?: string };
    return { $ref: ref.collection, $id: ref.oid, ...(ref.db ? { $db: ref.db } : {}) };
  }
  return isContainer(value) ? (value as Record<string, unknown>) : null;
}

/** Parent objects of `paths` that are not columns yet (each counts toward the column limit). */
export function newColumnCount(
  paths: Iterable<Path>,
  known: ReadonlyMap<string, CrateType>,
): number {
  const seen = new Set<string>();
  for (const path of paths) {
    for (let i = 1; i <= path.length; i++) {
      const key = pathKey(path.slice(0, i));
      if (!known.has(key)) seen.add(key);
    }
  }
  return seen.size;
}
