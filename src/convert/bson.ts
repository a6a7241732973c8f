// BSON bytes -> a row's JSON text (DESIGN.md §1), written in one pass over the bytes as MongoDB
// sent them, without decoding the document into objects first: decoding every change event into
// objects, only to write them out as text and drop them, was most of the relay's CPU time (the
// decoding itself and the garbage it left). The text is exactly what `rowJson` writes for the
// same document decoded with READ_BSON: the common types are written here, and a value of a rare
// type (Decimal128, Binary, RegExp, Code, a DBRef-like object…) is decoded alone and written by
// `valueJson`, so both paths agree by construction. Pure functions.
import { isUtf8 } from 'node:buffer';
import { BSON, BSONError, Decimal128, type Document } from 'bson';
import { RowError } from '../errors.js';
import { keepKeys, oidOf, valueJson, type KeyPolicy } from './value.js';

/** How values are decoded, as the relay's MongoDB reads do (READ_BSON): numbers keep their type. */
export const DECODE = { promoteValues: false } as const;

/** BSON element types (bsonspec.org). */
export const enum BsonType {
  Double = 0x01,
  String = 0x02,
  Object = 0x03,
  Array = 0x04,
  Binary = 0x05,
  Undefined = 0x06,
  ObjectId = 0x07,
  Boolean = 0x08,
  Date = 0x09,
  Null = 0x0a,
  RegExp = 0x0b,
  DBPointer = 0x0c,
  Code = 0x0d,
  Symbol = 0x0e,
  CodeWithScope = 0x0f,
  Int32 = 0x10,
  Timestamp = 0x11,
  Int64 = 0x12,
  Decimal128 = 0x13,
  MinKey = 0xff,
  MaxKey = 0x7f,
}

/** A view of `bytes` with Buffer's methods (the driver hands out Buffers already). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

export function int32At(src: Uint8Array, at: number): number {
  return src[at]! | (src[at + 1]! << 8) | (src[at + 2]! << 16) | (src[at + 3]! << 24);
}

function malformed(what: string): BSONError {
  return new BSONError(`malformed BSON: ${what}`);
}

/** Where the document at `start` ends (exclusive), checked against `limit`. */
export function documentEnd(src: Uint8Array, start: number, limit = src.length): number {
  const size = int32At(src, start);
  const end = start + size;
  if (size < 5 || end > limit || src[end - 1] !== 0) throw malformed('a document length');
  return end;
}

/** Where the cstring at `at` ends (its NUL), within `limit`. */
export function cstringEnd(src: Uint8Array, at: number, limit: number): number {
  let i = at;
  while (i < limit && src[i] !== 0) i++;
  if (i >= limit) throw malformed('an unterminated name');
  return i;
}

/** Where the value of type `type` starting at `at` ends, within `limit`. */
export function valueEnd(src: Uint8Array, type: number, at: number, limit: number): number {
  let end: number;
  switch (type) {
    case BsonType.Double:
    case BsonType.Date:
    case BsonType.Timestamp:
    case BsonType.Int64:
      end = at + 8;
      break;
    case BsonType.String:
    case BsonType.Code:
    case BsonType.Symbol:
      end = at + 4 + int32At(src, at);
      break;
    case BsonType.Object:
    case BsonType.Array:
    case BsonType.CodeWithScope:
      end = at + int32At(src, at);
      break;
    case BsonType.Binary:
      end = at + 5 + int32At(src, at);
      break;
    case BsonType.Undefined:
    case BsonType.Null:
    case BsonType.MinKey:
    case BsonType.MaxKey:
      end = at;
      break;
    case BsonType.ObjectId:
      end = at + 12;
      break;
    case BsonType.Boolean:
      end = at + 1;
      break;
    case BsonType.RegExp:
      end = cstringEnd(src, cstringEnd(src, at, limit) + 1, limit) + 1;
      break;
    case BsonType.DBPointer:
      end = at + 4 + int32At(src, at) + 12;
      break;
    case BsonType.Int32:
      end = at + 4;
      break;
    case BsonType.Decimal128:
      end = at + 16;
      break;
    default:
      throw malformed(`unknown element type 0x${type.toString(16)}`);
  }
  if (end < at || end > limit) throw malformed('a value length');
  return end;
}

/**
 * The value of one element (type byte at `elementAt`, value ending at `end`) decoded alone, as
 * the driver decodes it (DECODE).
 */
export function decodeElement(src: Uint8Array, elementAt: number, end: number): unknown {
  const single = Buffer.allocUnsafe(end - elementAt + 5);
  single.writeInt32LE(single.length, 0);
  single.set(src.subarray(elementAt, end), 4);
  single[single.length - 1] = 0;
  const doc = BSON.deserialize(single, DECODE);
  for (const key in doc) return doc[key];
  return undefined;
}

/** The document at `start`, decoded as the driver decodes it (DECODE). */
export function decodeDocument(src: Uint8Array, start = 0): Document {
  const end = documentEnd(src, start);
  return BSON.deserialize(
    start === 0 && end === src.length ? src : src.subarray(start, end),
    DECODE,
  );
}

/** The offset of element `name`'s type byte in the document at `start`, or -1. */
export function findElement(src: Uint8Array, start: number, name: Uint8Array): number {
  const end = documentEnd(src, start);
  let i = start + 4;
  while (i < end - 1) {
    const type = src[i]!;
    const nameEnd = cstringEnd(src, i + 1, end);
    if (nameEnd - i - 1 === name.length) {
      let same = true;
      for (let k = 0; k < name.length; k++) {
        if (src[i + 1 + k] !== name[k]) {
          same = false;
          break;
        }
      }
      if (same) return i;
    }
    i = valueEnd(src, type, nameEnd + 1, end);
  }
  return -1;
}

/** The top-level elements of the document at `start`: name, and where each element lies. */
export function documentElements(
  bytes: Uint8Array,
  start = 0,
): { name: string; start: number; end: number }[] {
  const src = asBuffer(bytes);
  const end = documentEnd(src, start);
  const elements: { name: string; start: number; end: number }[] = [];
  let i = start + 4;
  while (i < end - 1) {
    const nameEnd = cstringEnd(src, i + 1, end);
    const next = valueEnd(src, src[i]!, nameEnd + 1, end);
    elements.push({ name: src.toString('utf8', i + 1, nameEnd), start: i, end: next });
    i = next;
  }
  return elements;
}

const ID = Buffer.from('_id');

/** The `_id` element of the document at `start`: where it lies, or null without one. */
export function idElement(bytes: Uint8Array, start = 0): { start: number; end: number } | null {
  const at = findElement(bytes, start, ID);
  if (at < 0) return null;
  const limit = documentEnd(bytes, start);
  return {
    start: at,
    end: valueEnd(bytes, bytes[at]!, cstringEnd(bytes, at + 1, limit) + 1, limit),
  };
}

/** The `_id` of the document at `start`, decoded as the driver decodes it; undefined without. */
export function bsonId(bytes: Uint8Array, start = 0): unknown {
  const element = idElement(bytes, start);
  return element ? decodeElement(bytes, element.start, element.end) : undefined;
}

/**
 * The row key (DESIGN.md §1, `oid`) of the `_id` element of the document at `start`, as
 * `oidOf` gives it for the decoded value; null when the document has no `_id`.
 */
export function bsonOid(bytes: Uint8Array, start = 0): string | null {
  const src = asBuffer(bytes);
  const at = findElement(src, start, ID);
  if (at < 0) return null;
  const type = src[at]!;
  const value = at + 5;
  switch (type) {
    case BsonType.ObjectId:
      return src.toString('hex', value, value + 12);
    case BsonType.String: {
      const length = int32At(src, value) - 1;
      if (isAscii(src, value + 4, value + 4 + length))
        return src.toString('latin1', value + 4, value + 4 + length);
      break;
    }
    case BsonType.Int32:
      return String(int32At(src, value));
  }
  return oidOf(decodeElement(src, at, valueEnd(src, type, value, src.length)));
}

export function isAscii(src: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (src[i]! >= 0x80) return false;
  return true;
}

// The JSON text is written as UTF-8 into one buffer, reused from call to call, and read out as
// a string at the end: one allocation per row instead of one per value.
const INITIAL_OUTPUT = 64 * 1024;
let out = Buffer.allocUnsafe(INITIAL_OUTPUT);
let pos = 0;

function reserve(bytes: number): void {
  if (pos + bytes <= out.length) return;
  let size = out.length * 2;
  while (size < pos + bytes) size *= 2;
  const larger = Buffer.allocUnsafe(size);
  out.copy(larger, 0, 0, pos);
  out = larger;
}

/** ASCII text (digits, `null`, `.0`…). */
function writeAscii(text: string): void {
  reserve(text.length);
  for (let i = 0; i < text.length; i++) out[pos++] = text.charCodeAt(i);
}

/** Any text, as UTF-8. */
function writeText(text: string): void {
  reserve(Buffer.byteLength(text));
  pos += out.write(text, pos, 'utf8');
}

/**
 * The text of the Decimal128 at `at`, as the driver's `Decimal128.toString()` gives it (IEEE 754-2008
 * decimal to string, the rules of bson's own). A coefficient below 2^53, as prices and amounts have,
 * is written here from a double; bson's general path (a 128-bit division into an array of 36 digits)
 * cost more than the rest of such a row.
 */
export function decimal128Text(src: Uint8Array, at: number): string {
  const high = int32At(src, at + 12);
  const midHigh = int32At(src, at + 8);
  const midLow = int32At(src, at + 4) >>> 0;
  // Infinity and NaN (combination field 11xxx), or a coefficient of 2^53 or more: bson's path.
  const special = (high & 0x60000000) === 0x60000000;
  if (special || (high & 0x1ffff) !== 0 || midHigh !== 0 || midLow >= 0x200000) {
    return new Decimal128(src.subarray(at, at + 16)).toString();
  }
  const exponent = ((high >>> 17) & 0x3fff) - 6176;
  const digits = String(midLow * 2 ** 32 + (int32At(src, at) >>> 0));
  const sign = high < 0 ? '-' : '';
  const scientific = digits.length - 1 + exponent;
  if (exponent > 0 || scientific >= 34 || scientific <= -7) {
    const fraction = digits.length > 1 ? `.${digits.slice(1)}` : '';
    return `${sign}${digits[0]}${fraction}E${scientific > 0 ? '+' : ''}${scientific}`;
  }
  if (exponent === 0) return sign + digits;
  const point = digits.length + exponent;
  return point > 0
    ? `${sign}${digits.slice(0, point)}.${digits.slice(point)}`
    : `${sign}0.${'0'.repeat(-point)}${digits}`;
}

/** A whole number of at most 2^53 in magnitude, in decimal. */
function writeInteger(n: number): void {
  reserve(17);
  if (n < 0) {
    out[pos++] = 0x2d;
    n = -n;
  }
  let digits = 1;
  for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++;
  let at = pos + digits;
  pos = at;
  while (n >= 10) {
    const q = Math.floor(n / 10);
    out[--at] = 0x30 + (n - q * 10);
    n = q;
  }
  out[--at] = 0x30 + n;
}

/** A Double: `doubleText` (a fraction or an exponent always; null when not finite). */
function writeDouble(n: number): void {
  if (Number.isInteger(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER && !Object.is(n, -0)) {
    writeInteger(n);
    reserve(2);
    out[pos++] = 0x2e;
    out[pos++] = 0x30;
    return;
  }
  if (!Number.isFinite(n)) return writeAscii('null');
  if (Object.is(n, -0)) return writeAscii('-0.0');
  const text = String(n);
  writeAscii(text);
  if (!text.includes('.') && !text.includes('e')) writeAscii('.0');
}

const HEX = Buffer.from('0123456789abcdef');
// JSON.stringify's escapes for the bytes below 0x20 and `"` and `\`; 0 where none is needed.
const SHORT_ESCAPE = new Uint8Array(0x60);
for (const [byte, letter] of [
  [0x08, 'b'],
  [0x09, 't'],
  [0x0a, 'n'],
  [0x0c, 'f'],
  [0x0d, 'r'],
  [0x22, '"'],
  [0x5c, '\\'],
] as const) {
  SHORT_ESCAPE[byte] = letter.charCodeAt(0);
}

/**
 * UTF-8 bytes `[start, end)` of `src` as a JSON string, escaped as JSON.stringify escapes them.
 * Invalid UTF-8 is a RowError (the driver refuses to decode it).
 */
function writeString(src: Uint8Array, start: number, end: number, what: string): void {
  // Room for the bytes as they are; an escape makes room for the rest again (a large string is
  // not given six times its size up front).
  reserve(end - start + 2);
  out[pos++] = 0x22;
  let ascii = true;
  for (let i = start; i < end; i++) {
    const b = src[i]!;
    if (b >= 0x20 && b !== 0x22 && b !== 0x5c) {
      if (b >= 0x80) ascii = false;
      out[pos++] = b;
      continue;
    }
    reserve(end - i + 6);
    out[pos++] = 0x5c;
    const short = SHORT_ESCAPE[b]!;
    if (short !== 0) {
      out[pos++] = short;
    } else {
      out[pos++] = 0x75;
      out[pos++] = 0x30;
      out[pos++] = 0x30;
      out[pos++] = HEX[b >> 4]!;
      out[pos++] = HEX[b & 15]!;
    }
  }
  out[pos++] = 0x22;
  if (!ascii && !isUtf8(src.subarray(start, end))) {
    throw new RowError(`${what} is not valid UTF-8`);
  }
}

/** Where a row's JSON text is being written from: the bytes and the dialect's key spelling. */
interface Walk {
  src: Buffer;
  keys: KeyPolicy;
}

/**
 * The JSON text of the BSON document at `start` of `bytes`, as `rowJson` writes the document
 * decoded with READ_BSON. A key the policy renames onto another key of the same object is a
 * RowError, as is a string that is not valid UTF-8 or bytes that are not BSON.
 */
export function bsonRowJson(bytes: Uint8Array, keys: KeyPolicy = keepKeys, start = 0): string {
  const walk: Walk = { src: asBuffer(bytes), keys };
  pos = 0;
  try {
    writeDocument(walk, -1, start, documentEnd(walk.src, start), false);
    return out.toString('utf8', 0, pos);
  } catch (error) {
    if (error instanceof BSONError) {
      throw new RowError(`the document cannot be read: ${error.message}`);
    }
    throw error;
  } finally {
    // A large document leaves a large buffer; it is not kept for the rows after it.
    if (out.length > 4 * INITIAL_OUTPUT) out = Buffer.allocUnsafe(INITIAL_OUTPUT);
  }
}

/** Keys of one object renamed so far, and all its keys (read once a key is renamed). */
interface Renames {
  renamed: Set<string>;
  all: Set<string>;
}

/**
 * Writes the document or array `[start, end)`, the value of the element at `elementAt` (-1 for
 * the row's document itself). An object with a key starting with `$` may be what the driver
 * decodes as a DBRef (`isDBRefLike`), which `rowJson` spells its own way: such a nested object is
 * written from its decoded value.
 */
function writeDocument(
  walk: Walk,
  elementAt: number,
  start: number,
  end: number,
  array: boolean,
): void {
  const { src } = walk;
  const opened = pos;
  reserve(1);
  out[pos++] = array ? 0x5b : 0x7b;
  let renames: Renames | null = null;
  let i = start + 4;
  while (i < end - 1) {
    const type = src[i]!;
    const nameEnd = cstringEnd(src, i + 1, end);
    if (pos > opened + 1) {
      reserve(1);
      out[pos++] = 0x2c;
    }
    if (!array) {
      if (src[i + 1] === 0x24 && elementAt >= 0) {
        pos = opened;
        writeDecoded(walk, elementAt, end);
        return;
      }
      renames = writeKey(walk, i + 1, nameEnd, start, end, renames);
    }
    i = writeValue(walk, type, i, nameEnd + 1, end);
  }
  reserve(1);
  out[pos++] = array ? 0x5d : 0x7d;
}

/** Writes the key `[start, end)` of the object `[objectStart, objectEnd)`, and `:`. */
function writeKey(
  walk: Walk,
  start: number,
  end: number,
  objectStart: number,
  objectEnd: number,
  renames: Renames | null,
): Renames | null {
  const { src, keys } = walk;
  if (keys !== keepKeys) {
    const raw = src.toString('utf8', start, end);
    const key = keys(raw);
    if (key !== raw) {
      renames ??= { renamed: new Set(), all: objectKeys(src, objectStart, objectEnd) };
      if (renames.all.has(key)) {
        throw new RowError(
          `object key "${raw}" would be stored as "${key}", which the document already has`,
        );
      }
      if (renames.renamed.has(key)) {
        throw new RowError(`object keys "${raw}" and another both map to "${key}"`);
      }
      renames.renamed.add(key);
      writeText(JSON.stringify(key));
      reserve(1);
      out[pos++] = 0x3a;
      return renames;
    }
  }
  writeString(src, start, end, 'an object key');
  reserve(1);
  out[pos++] = 0x3a;
  return renames;
}

/** The keys of the object `[start, end)`, as strings. */
function objectKeys(src: Buffer, start: number, end: number): Set<string> {
  const keys = new Set<string>();
  let i = start + 4;
  while (i < end - 1) {
    const nameEnd = cstringEnd(src, i + 1, end);
    keys.add(src.toString('utf8', i + 1, nameEnd));
    i = valueEnd(src, src[i]!, nameEnd + 1, end);
  }
  return keys;
}

/** Writes the value of the element at `elementAt` (its value at `at`); returns where it ends. */
function writeValue(
  walk: Walk,
  type: number,
  elementAt: number,
  at: number,
  limit: number,
): number {
  const { src } = walk;
  switch (type) {
    case BsonType.Double:
      if (at + 8 > limit) throw malformed('a double');
      writeDouble(src.readDoubleLE(at));
      return at + 8;
    case BsonType.String: {
      const end = valueEnd(src, type, at, limit);
      if (end - at < 5 || src[end - 1] !== 0) throw malformed('a string');
      writeString(src, at + 4, end - 1, 'a string');
      return end;
    }
    case BsonType.Object:
    case BsonType.Array: {
      const end = documentEnd(src, at, limit);
      writeDocument(walk, elementAt, at, end, type === BsonType.Array);
      return end;
    }
    case BsonType.ObjectId: {
      if (at + 12 > limit) throw malformed('an ObjectId');
      reserve(26);
      out[pos++] = 0x22;
      for (let k = at; k < at + 12; k++) {
        out[pos++] = HEX[src[k]! >> 4]!;
        out[pos++] = HEX[src[k]! & 15]!;
      }
      out[pos++] = 0x22;
      return at + 12;
    }
    case BsonType.Boolean:
      // Other bytes are refused by the decoder (below).
      if (src[at] === 1 || src[at] === 0) {
        writeAscii(src[at] === 1 ? 'true' : 'false');
        return at + 1;
      }
      break;
    case BsonType.Date: {
      if (at + 8 > limit) throw malformed('a date');
      // As a JS Date holds it: milliseconds within ±8.64e15, otherwise an invalid date (null).
      const ms = int32At(src, at + 4) * 2 ** 32 + (int32At(src, at) >>> 0);
      if (Math.abs(ms) <= 8.64e15) writeInteger(ms);
      else writeAscii('null');
      return at + 8;
    }
    case BsonType.Null:
    case BsonType.Undefined:
      writeAscii('null');
      return at;
    case BsonType.Int32:
      if (at + 4 > limit) throw malformed('an int32');
      writeInteger(int32At(src, at));
      return at + 4;
    case BsonType.Timestamp:
      if (at + 8 > limit) throw malformed('a timestamp');
      writeInteger((int32At(src, at + 4) >>> 0) * 1000);
      return at + 8;
    case BsonType.Int64: {
      if (at + 8 > limit) throw malformed('an int64');
      const high = int32At(src, at + 4);
      // Within ±2^53 the value is exact as a double; beyond, every digit comes from a BigInt.
      if (high >= -0x200000 && high < 0x200000) {
        writeInteger(high * 2 ** 32 + (int32At(src, at) >>> 0));
      } else {
        writeAscii(src.readBigInt64LE(at).toString());
      }
      return at + 8;
    }
    case BsonType.Decimal128: {
      if (at + 16 > limit) throw malformed('a decimal128');
      const text = decimal128Text(src, at);
      reserve(text.length + 2);
      out[pos++] = 0x22;
      for (let i = 0; i < text.length; i++) out[pos++] = text.charCodeAt(i);
      out[pos++] = 0x22;
      return at + 16;
    }
  }
  const end = valueEnd(src, type, at, limit);
  writeDecoded(walk, elementAt, end);
  return end;
}

/** Writes the value of the element `[elementAt, end)` decoded alone, as `rowJson` writes it. */
function writeDecoded(walk: Walk, elementAt: number, end: number): void {
  writeText(valueJson(decodeElement(walk.src, elementAt, end), walk.keys));
}
