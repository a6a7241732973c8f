// BSON values -> the JSON text stored in a row's `data` column (DESIGN.md §1), the same for every
// dialect except how object keys are spelled (`KeyPolicy`). The text is written in one pass from
// the BSON values, so each number keeps its BSON type in the text: an Int32 or Int64 is an exact
// integer (all 64 bits), a Double always has a fraction or an exponent (`10.0`), which is how a
// target that types sub-columns from JSON text (CrateDB) tells a float from an integer.
// Pure functions.
import { EJSON, type Document } from 'bson';
import { LosslessNumber } from 'lossless-json';
import { RowError } from '../errors.js';

/** How a dialect spells an object key; returns the key unchanged when it is acceptable. */
export type KeyPolicy = (key: string) => string;

export const keepKeys: KeyPolicy = (key) => key;

interface BsonTyped {
  _bsontype?: string;
}

/** A Double as JSON text: shortest round-trip digits, with `.0` when they look like an integer. */
export function doubleText(n: number): string {
  if (!Number.isFinite(n)) return 'null';
  if (Object.is(n, -0)) return '-0.0';
  const text = String(n);
  return /[.e]/.test(text) ? text : `${text}.0`;
}

/**
 * A plain JS number, whose BSON type is not known (the relay reads MongoDB with READ_BSON, so
 * documents and events carry Int32 and Double wrappers; plain numbers come from relaxed Extended
 * JSON or the relay's own values): a safe integer is written as an integer, anything else as a
 * Double.
 */
function numberText(n: number): string {
  return Number.isSafeInteger(n) && !Object.is(n, -0) ? String(n) : doubleText(n);
}

/** Characters JSON.stringify escapes in a string: quote, backslash, controls, surrogates. */
// eslint-disable-next-line no-control-regex -- control characters are what JSON escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
/** From this length a string that needs no escaping is written as it is, not copied first. */
const LONG_STRING = 4096;

/**
 * Pushes the JSON text of a string. A long one without characters to escape goes in between
 * quotes as it is: JSON.stringify would copy it once more before the row text copies it again,
 * and a document of megabytes of text or base64 would then be held three times at once.
 */
function pushString(value: string, out: string[]): void {
  if (value.length >= LONG_STRING && !NEEDS_ESCAPE.test(value)) out.push('"', value, '"');
  else out.push(JSON.stringify(value));
}

/** A plain object or array that the converter walks into (BSON leaves are class instances). */
export function isContainer(value: unknown): value is Document | unknown[] {
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) return true;
  const proto = Object.getPrototypeOf(value);
  return (proto === Object.prototype || proto === null) && !(value as BsonTyped)._bsontype;
}

/** The JSON text of one value. */
export function valueJson(value: unknown, keys: KeyPolicy = keepKeys): string {
  const out: string[] = [];
  writeValue(value, keys, out);
  return out.join('');
}

/**
 * The JSON text of a row's `data`: `doc` as the driver or `EJSON.parse` decodes it (with
 * `promoteLongs: false`; Int32 and Double wrappers where they are kept, as from canonical
 * Extended JSON), or a stored row parsed with `parseStoredJson`, whose numbers are written back
 * verbatim.
 * A key the policy renames onto another key of the same object is a `RowError`.
 */
export function rowJson(doc: Document, keys: KeyPolicy = keepKeys): string {
  const out: string[] = [];
  writeObject(doc, keys, out);
  return out.join('');
}

function writeObject(doc: Document, keys: KeyPolicy, out: string[]): void {
  out.push('{');
  let first = true;
  let renamed: Set<string> | undefined;
  for (const rawKey in doc) {
    if (!Object.prototype.hasOwnProperty.call(doc, rawKey)) continue;
    const key = keys(rawKey);
    if (key !== rawKey) {
      if (Object.prototype.hasOwnProperty.call(doc, key)) {
        throw new RowError(
          `object key "${rawKey}" would be stored as "${key}", which the document already has`,
        );
      }
      renamed ??= new Set();
      if (renamed.has(key)) {
        throw new RowError(`object keys "${rawKey}" and another both map to "${key}"`);
      }
      renamed.add(key);
    }
    if (!first) out.push(',');
    first = false;
    out.push(JSON.stringify(key), ':');
    writeValue(doc[rawKey], keys, out);
  }
  out.push('}');
}

function writeValue(value: unknown, keys: KeyPolicy, out: string[]): void {
  switch (typeof value) {
    case 'string':
      pushString(value, out);
      return;
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      out.push(numberText(value));
      return;
    case 'bigint':
      out.push(value.toString());
      return;
    case 'object':
      break;
    default:
      out.push('null');
      return;
  }
  if (value === null) {
    out.push('null');
    return;
  }
  if (Array.isArray(value)) {
    out.push('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(',');
      writeValue(value[i], keys, out);
    }
    out.push(']');
    return;
  }
  if (value instanceof Date) {
    const ms = value.getTime();
    out.push(Number.isFinite(ms) ? String(ms) : 'null');
    return;
  }
  if (value instanceof LosslessNumber) {
    out.push(value.value);
    return;
  }
  if (value instanceof RegExp) {
    out.push(JSON.stringify(`/${value.source}/${value.flags}`));
    return;
  }
  const leaf = bsonLeaf(value as BsonTyped, keys);
  if (leaf !== undefined) {
    out.push(leaf);
    return;
  }
  writeObject(value as Document, keys, out);
}

/** JSON text of a BSON class instance; undefined for a plain (sub)document. */
function bsonLeaf(value: BsonTyped, keys: KeyPolicy): string | undefined {
  switch (value._bsontype) {
    case 'ObjectId':
    case 'ObjectID':
      return JSON.stringify((value as { toHexString(): string }).toHexString());
    case 'Long':
      return (value as { toString(): string }).toString();
    case 'Int32':
      return String((value as { valueOf(): number }).valueOf());
    case 'Double':
      return doubleText((value as { valueOf(): number }).valueOf());
    case 'Decimal128':
      return JSON.stringify((value as { toString(): string }).toString());
    case 'Timestamp':
      return String((value as unknown as { t: number }).t * 1000);
    case 'Binary': {
      const binary = value as unknown as {
        sub_type: number;
        toUUID(): { toHexString(dashes?: boolean): string };
        toString(encoding: 'base64'): string;
      };
      return JSON.stringify(
        binary.sub_type === 4 ? binary.toUUID().toHexString(true) : binary.toString('base64'),
      );
    }
    case 'BSONRegExp': {
      const re = value as unknown as { pattern: string; options: string };
      return JSON.stringify(`/${re.pattern}/${re.options}`);
    }
    case 'MinKey':
      return '"MinKey"';
    case 'MaxKey':
      return '"MaxKey"';
    case 'Code':
      return JSON.stringify((value as unknown as { code: string }).code);
    case 'BSONSymbol':
    case 'Symbol':
      return JSON.stringify((value as { valueOf(): string }).valueOf());
    case 'DBRef': {
      const ref = value as unknown as { collection: string; oid: unknown; db?: string };
      const db = ref.db ? `,"$db":${JSON.stringify(ref.db)}` : '';
      return `{"$ref":${JSON.stringify(ref.collection)},"$id":${valueJson(ref.oid, keys)}${db}}`;
    }
    default:
      return undefined;
  }
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
