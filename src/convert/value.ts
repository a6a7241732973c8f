// BSON values -> the JSON values stored in a row's `data` column (DESIGN.md §1), the same for
// every dialect except how object keys are spelled (`KeyPolicy`). Pure functions.
import { EJSON, type Document } from 'bson';
import { RowError } from '../errors.js';

export type JsonValue =
  null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** How a dialect spells an object key; returns the key unchanged when it is acceptable. */
export type KeyPolicy = (key: string) => string;

export const keepKeys: KeyPolicy = (key) => key;

const MAX_SAFE = 2n ** 53n - 1n;

interface BsonTyped {
  _bsontype?: string;
}

function int64(value: bigint): number | string {
  return value <= MAX_SAFE && value >= -MAX_SAFE ? Number(value) : value.toString();
}

function finite(n: number): number | null {
  return Number.isFinite(n) ? n : null;
}

/** Converts one BSON value (as the driver decodes it, with `promoteLongs: false`). */
export function toJsonValue(value: unknown, keys: KeyPolicy = keepKeys): JsonValue {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return finite(value);
    case 'bigint':
      return int64(value);
    case 'object':
      break;
    default:
      return null;
  }
  if (Array.isArray(value)) return value.map((v) => toJsonValue(v, keys));
  if (value instanceof Date) return finite(value.getTime());
  if (value instanceof RegExp) return `/${value.source}/${value.flags}`;
  const typed = value as BsonTyped & Record<string, unknown>;
  switch (typed._bsontype) {
    case 'ObjectId':
    case 'ObjectID':
      return (value as { toHexString(): string }).toHexString();
    case 'Long':
      return int64(BigInt((value as { toString(): string }).toString()));
    case 'Int32':
    case 'Double':
      return finite((value as { valueOf(): number }).valueOf());
    case 'Decimal128':
      return (value as { toString(): string }).toString();
    case 'Timestamp':
      return (value as unknown as { t: number }).t * 1000;
    case 'Binary': {
      const binary = value as unknown as {
        sub_type: number;
        toUUID(): { toHexString(dashes?: boolean): string };
        toString(encoding: 'base64'): string;
      };
      return binary.sub_type === 4 ? binary.toUUID().toHexString(true) : binary.toString('base64');
    }
    case 'BSONRegExp': {
      const re = value as unknown as { pattern: string; options: string };
      return `/${re.pattern}/${re.options}`;
    }
    case 'MinKey':
      return 'MinKey';
    case 'MaxKey':
      return 'MaxKey';
    case 'Code':
      return (value as unknown as { code: string }).code;
    case 'BSONSymbol':
    case 'Symbol':
      return (value as { valueOf(): string }).valueOf();
    case 'DBRef': {
      const ref = value as unknown as { collection: string; oid: unknown; db?: string };
      const out: JsonObject = { $ref: ref.collection, $id: toJsonValue(ref.oid, keys) };
      if (ref.db) out.$db = ref.db;
      return out;
    }
    default:
      return toJsonObject(value as Document, keys);
  }
}

/** Converts a document; a key the policy renames onto an existing key is a row error. */
export function toJsonObject(doc: Document, keys: KeyPolicy = keepKeys): JsonObject {
  const out: JsonObject = {};
  for (const [rawKey, raw] of Object.entries(doc)) {
    const key = keys(rawKey);
    if (key !== rawKey && Object.prototype.hasOwnProperty.call(doc, key)) {
      throw new RowError(
        `object key "${rawKey}" would be stored as "${key}", which the document already has`,
      );
    }
    if (Object.prototype.hasOwnProperty.call(out, key)) {
      throw new RowError(`object keys "${rawKey}" and another both map to "${key}"`);
    }
    out[key] = toJsonValue(raw, keys);
  }
  return out;
}

/** The row key for a document `_id` (DESIGN.md §1, `oid`). */
export function oidOf(id: unknown): string {
  if (typeof id === 'string') return id;
  if (typeof id === 'number') return String(id);
  if (typeof id === 'bigint') return id.toString();
  const typed = id as BsonTyped | null;
  switch (typed?._bsontype) {
    case 'ObjectId':
    case 'ObjectID':
      return (id as { toHexString(): string }).toHexString();
    case 'Long':
    case 'Int32':
    case 'Double':
      return String((id as { toString(): string }).toString());
    default:
      return EJSON.stringify(id as Document, { relaxed: true });
  }
}
