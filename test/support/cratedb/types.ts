// CrateDB's data types as the harness needs them: type guessing for new sub-columns
// (`DynamicIndexer.guessType` → `DataTypes.guessType` + `upcast`), lenient implicit casts into
// existing columns (`DataType.implicitCast`, `ObjectType.convert`), JSON text in and out as
// Jackson reads and writes it, and the PostgreSQL text format of each type (`PGTypes`).
import { PgError } from './wire.js';

/**
 * A value as stored: integers are bigint and fractional numbers are number, so that JSON text
 * `10` and `10.0` stay what Jackson makes of them (Long vs Double).
 */
export type Value = null | string | number | bigint | boolean | Value[] | ObjectValue;
export interface ObjectValue {
  [key: string]: Value;
}

export type Policy = 'dynamic' | 'strict' | 'ignored';

export type DataType =
  | { kind: 'undefined' }
  | { kind: 'text' }
  | { kind: 'bigint' }
  | { kind: 'integer' }
  | { kind: 'smallint' }
  | { kind: 'double precision' }
  | { kind: 'real' }
  | { kind: 'boolean' }
  | { kind: 'timestamp with time zone' }
  | { kind: 'timestamp without time zone' }
  | { kind: 'object'; policy: Policy }
  | { kind: 'array'; element: DataType };

export const T = {
  undefined: { kind: 'undefined' } as DataType,
  text: { kind: 'text' } as DataType,
  bigint: { kind: 'bigint' } as DataType,
  integer: { kind: 'integer' } as DataType,
  double: { kind: 'double precision' } as DataType,
  boolean: { kind: 'boolean' } as DataType,
  timestamptz: { kind: 'timestamp with time zone' } as DataType,
  object: (policy: Policy = 'dynamic'): DataType => ({ kind: 'object', policy }),
  array: (element: DataType): DataType => ({ kind: 'array', element }),
};

/** CrateDB's type name (`DataType.getName()`), as in messages and information_schema. */
export function typeName(type: DataType): string {
  if (type.kind === 'array') return `${typeName(type.element)}_array`;
  return type.kind;
}

export function isObject(value: Value): value is ObjectValue {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Thrown where a value has no cast to the column's type: CrateDB's `ConversionException`. */
export class ConversionError extends PgError {
  constructor(message: string) {
    super('XX000', message);
  }
}

// ---------------------------------------------------------------------------------------------
// JSON text as Jackson reads it: integer literals become Long (here bigint), literals with a
// fraction or exponent Double (number). Integers beyond int64 become BigInteger, whose type
// CrateDB cannot guess.

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** A JSON integer literal outside int64 (Jackson's BigInteger). */
export class BigInteger {
  constructor(readonly text: string) {}
}

export function parseJson(text: string): Value {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw new PgError('XX000', `Cannot cast value \`${text}\` to type \`object\``);
  };
  const value = (): Value => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: ObjectValue = {};
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        const key = string();
        ws();
        if (text[i++] !== ':') fail();
        obj[key] = value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        fail();
      }
    }
    if (c === '[') {
      i++;
      const arr: Value[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail();
      }
    }
    if (c === '"') return string();
    const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 1100));
    if (m) {
      i += m[0].length;
      if (m[1] !== undefined || m[2] !== undefined) return Number(m[0]);
      const n = BigInt(m[0]);
      if (n < INT64_MIN || n > INT64_MAX) return new BigInteger(m[0]) as unknown as Value;
      return n;
    }
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return fail();
  };
  const string = (): string => {
    const start = i;
    i++;
    for (;;) {
      const j = text.indexOf('"', i);
      if (j < 0) fail();
      let backslashes = 0;
      for (let k = j - 1; text[k] === '\\'; k--) backslashes++;
      i = j + 1;
      if (backslashes % 2 === 0) break;
    }
    return JSON.parse(text.slice(start, i)) as string;
  };
  const result = value();
  ws();
  if (i !== text.length) fail();
  return result;
}

/** Java's `Double.toString`, which Jackson uses for doubles: `10.0`, `1.0E20`, `1.0E-5`. */
export function javaDouble(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (!Number.isFinite(n)) return n > 0 ? 'Infinity' : '-Infinity';
  if (n === 0) return Object.is(n, -0) ? '-0.0' : '0.0';
  const abs = Math.abs(n);
  if (abs >= 1e-3 && abs < 1e7) {
    const s = String(n);
    return s.includes('.') ? s : `${s}.0`;
  }
  const [mantissa, exponent] = n.toExponential().split('e') as [string, string];
  const m = mantissa.includes('.') ? mantissa : `${mantissa}.0`;
  return `${m}E${exponent.startsWith('+') ? exponent.slice(1) : exponent}`;
}

/** JSON text of a value as CrateDB writes it (object columns over the wire, object → text). */
export function toJson(value: Value): string {
  if (value === null) return 'null';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return javaDouble(value);
  if (typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`;
  return `{${Object.entries(value)
    .map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`)
    .join(',')}}`;
}

/** A value as Java's toString prints it (`Arrays.toString` of a row in CrateDB's messages). */
export function javaString(value: Value): string {
  if (value === null) return 'null';
  if (value instanceof BigInteger) return value.text;
  if (typeof value === 'number') return javaDouble(value);
  if (Array.isArray(value)) return `[${value.map(javaString).join(', ')}]`;
  if (isObject(value)) {
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}=${javaString(v)}`)
      .join(', ')}}`;
  }
  return String(value);
}

// ---------------------------------------------------------------------------------------------
// Type guessing for a new sub-column (`DynamicIndexer.guessType`): numbers upcast to BIGINT and
// DOUBLE; arrays typed by merging their elements' types.

/** Precedence as in `DataType.Precedence`: the higher type wins a merge. */
const PRECEDENCE: Record<string, number> = {
  undefined: 1,
  text: 2,
  boolean: 5,
  smallint: 6,
  integer: 8,
  'timestamp with time zone': 13,
  'timestamp without time zone': 14,
  bigint: 15,
  real: 17,
  'double precision': 18,
  array: 20,
  object: 23,
};

export function guessType(value: Value): DataType {
  return upcast(jacksonType(value));
}

/** `DataTypes.upcast`, also of an array's innermost element type. */
function upcast(type: DataType): DataType {
  if (type.kind === 'array') return T.array(upcast(type.element));
  if (type.kind === 'integer' || type.kind === 'smallint') return T.bigint;
  if (type.kind === 'real') return T.double;
  return type;
}

/** `DataTypes.guessType` of the Java value Jackson makes: Integer, Long, Double, … */
function jacksonType(value: Value): DataType {
  if (value === null) return T.undefined;
  if (value instanceof BigInteger) {
    throw new PgError('XX000', `Cannot detect the type of the value: ${value.text}`);
  }
  if (typeof value === 'bigint') return BigInt.asIntN(32, value) === value ? T.integer : T.bigint;
  if (typeof value === 'number') return T.double;
  if (typeof value === 'string') return T.text;
  if (typeof value === 'boolean') return T.boolean;
  if (Array.isArray(value)) {
    // `DataTypes.typeFromList`
    let highest: DataType = T.undefined;
    for (const item of value) {
      if (item === null) continue;
      highest = mergeTypes(highest, jacksonType(item));
    }
    return T.array(highest);
  }
  return T.object('dynamic');
}

/** `DataTypes.merge` → `DataType.merge`: the higher type, if the lower converts to it. */
function mergeTypes(a: DataType, b: DataType): DataType {
  if (sameType(a, b)) return a;
  const [higher, lower] = PRECEDENCE[a.kind]! >= PRECEDENCE[b.kind]! ? [a, b] : [b, a];
  if (lower.kind === 'undefined' || convertible(lower, higher)) return higher;
  throw new PgError('XX000', `'${typeName(lower)}' is not convertible to '${typeName(higher)}'`);
}

/** `DataTypes.ALLOWED_CONVERSIONS`, for the types JSON values have. */
function convertible(from: DataType, to: DataType): boolean {
  const numeric = ['smallint', 'integer', 'bigint', 'real', 'double precision'];
  switch (from.kind) {
    case 'smallint':
    case 'integer':
    case 'bigint':
    case 'real':
    case 'double precision':
      return [...numeric, 'boolean', 'text', 'timestamp with time zone'].includes(to.kind);
    case 'boolean':
      return to.kind === 'text';
    case 'text':
      return [...numeric, 'boolean', 'object', 'timestamp with time zone'].includes(to.kind);
    case 'array':
      return to.kind === 'array' && convertible(from.element, to.element);
    default:
      return false;
  }
}

export function sameType(a: DataType, b: DataType): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'array' && b.kind === 'array') return sameType(a.element, b.element);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Implicit casts into an existing column (`DataType.implicitCast`), lenient where CrateDB is.

function noCast(value: Value, type: DataType, element: string | null): never {
  const shown = javaString(value);
  if (element !== null) {
    throw new ConversionError(
      `Cannot cast object element \`${element}\` with value \`${shown}\` to type \`${typeName(type)}\``,
    );
  }
  throw new ConversionError(`Cannot cast value \`${shown}\` to type \`${typeName(type)}\``);
}

const wrapLong = (n: bigint) => BigInt.asIntN(64, n);

function toInteger(value: Value, type: DataType, element: string | null): bigint {
  if (typeof value === 'bigint')
    return type.kind === 'bigint' ? value : rangeChecked(value, type, element);
  if (value instanceof BigInteger) return wrapLong(BigInt(value.text));
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) noCast(value, type, element);
    // `Number.longValue()`: truncation toward zero.
    return type.kind === 'bigint'
      ? wrapLong(BigInt(Math.trunc(value)))
      : rangeChecked(BigInt(Math.trunc(value)), type, element);
  }
  if (typeof value === 'boolean') return value ? 1n : 0n;
  if (typeof value === 'string') {
    const s = value.trim();
    if (/^[+-]?\d+$/.test(s)) return rangeChecked(BigInt(s), type, element);
    if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s))
      return rangeChecked(BigInt(Math.trunc(Number(s))), type, element);
  }
  return noCast(value, type, element);
}

function rangeChecked(n: bigint, type: DataType, element: string | null): bigint {
  const bits = type.kind === 'smallint' ? 16 : type.kind === 'integer' ? 32 : 64;
  if (BigInt.asIntN(bits, n) !== n) noCast(n, type, element);
  return n;
}

function toDouble(value: Value, type: DataType, element: string | null): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof BigInteger) return Number(value.text);
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string' && /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(value))
    return Number(value);
  return noCast(value, type, element);
}

function toTimestamp(value: Value, type: DataType, element: string | null): bigint {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return BigInt(Math.trunc(value));
  if (typeof value === 'string') {
    if (/^[+-]?\d+$/.test(value.trim())) return BigInt(value.trim());
    const ms = Date.parse(
      value.includes('T') || !/ /.test(value) ? value : value.replace(' ', 'T'),
    );
    if (!Number.isNaN(ms)) return BigInt(ms);
  }
  return noCast(value, type, element);
}

/**
 * The value cast to `type`, or a ConversionError. `element` names the object element being
 * written (for CrateDB's "Cannot cast object element" message).
 */
export function implicitCast(value: Value, type: DataType, element: string | null = null): Value {
  if (value === null) return null;
  switch (type.kind) {
    case 'undefined':
      return value;
    case 'text':
      if (typeof value === 'string') return value;
      if (typeof value === 'boolean') return value ? 't' : 'f';
      if (typeof value === 'bigint') return value.toString();
      if (typeof value === 'number') return javaDouble(value);
      if (value instanceof BigInteger) return value.text;
      if (isObject(value)) return toJson(value);
      return noCast(value, type, element);
    case 'bigint':
    case 'integer':
    case 'smallint':
      return toInteger(value, type, element);
    case 'double precision':
    case 'real':
      return toDouble(value, type, element);
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (typeof value === 'bigint') return value !== 0n;
      if (typeof value === 'number') return value !== 0;
      if (typeof value === 'string') {
        const s = value.trim().toLowerCase();
        if (['t', 'true', 'on', 'yes', '1'].includes(s)) return true;
        if (['f', 'false', 'off', 'no', '0'].includes(s)) return false;
      }
      return noCast(value, type, element);
    case 'timestamp with time zone':
    case 'timestamp without time zone':
      return toTimestamp(value, type, element);
    case 'object':
      if (isObject(value)) return value;
      if (typeof value === 'string') {
        try {
          const parsed = parseJson(value);
          if (isObject(parsed)) return parsed;
        } catch {
          // not JSON: no cast
        }
      }
      return noCast(value, type, element);
    case 'array':
      if (Array.isArray(value)) return value.map((v) => implicitCast(v, type.element, element));
      // An empty object into an array column reads back as an empty array
      // (`test_dynamic_null_array_get_by_pk`).
      if (isObject(value) && Object.keys(value).length === 0) return [];
      if (typeof value === 'string') {
        try {
          const parsed = parseJson(value);
          if (Array.isArray(parsed))
            return parsed.map((v) => implicitCast(v, type.element, element));
        } catch {
          // not JSON: no cast
        }
      }
      return noCast(value, type, element);
  }
}

// ---------------------------------------------------------------------------------------------
// The PostgreSQL side (`PGTypes`): OIDs and text encoding.

export function pgOid(type: DataType): number {
  switch (type.kind) {
    case 'text':
      return 1043; // varchar: CrateDB maps TEXT to varchar
    case 'bigint':
      return 20;
    case 'integer':
      return 23;
    case 'smallint':
      return 21;
    case 'double precision':
      return 701;
    case 'real':
      return 700;
    case 'boolean':
      return 16;
    case 'timestamp with time zone':
      return 1184;
    case 'timestamp without time zone':
      return 1114;
    case 'object':
      return 114; // json
    case 'undefined':
      return 1043;
    case 'array': {
      const element: Record<string, number> = {
        text: 1015,
        undefined: 1015,
        bigint: 1016,
        integer: 1007,
        smallint: 1005,
        'double precision': 1022,
        real: 1021,
        boolean: 1000,
        'timestamp with time zone': 1185,
        'timestamp without time zone': 1115,
        object: 199,
        array: 199,
      };
      return element[type.element.kind]!;
    }
  }
}

function timestampText(ms: bigint, zone: boolean): string {
  const d = new Date(Number(ms));
  const iso = d.toISOString(); // 2026-11-27T03:18:25.123Z
  const text = `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
  return zone ? `${text}+00` : text;
}

/** The text format of a value of `type` on the wire. */
export function pgText(value: Value, type: DataType): string | null {
  if (value === null) return null;
  switch (type.kind) {
    case 'boolean':
      return value ? 't' : 'f';
    case 'object':
      return toJson(value);
    case 'double precision':
    case 'real':
      // `DoubleType.encodeAsUTF8Text`: Double.toString.
      return javaDouble(Number(value));
    case 'timestamp with time zone':
    case 'timestamp without time zone':
      return typeof value === 'bigint'
        ? timestampText(value, type.kind === 'timestamp with time zone')
        : String(value);
    case 'array': {
      if (!Array.isArray(value)) return toJson(value);
      const items = value.map((v) => {
        if (v === null) return 'NULL';
        const text = type.element.kind === 'object' ? toJson(v) : pgText(v, type.element)!;
        return `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
      });
      return `{${items.join(',')}}`;
    }
    default:
      if (isObject(value) || Array.isArray(value)) return toJson(value);
      return String(value);
  }
}
