// Rows as the target returns them: JSON text parsed without losing a number. `JSON.parse` would
// round an Int64 beyond 2^53 and forget that `10.0` was a Double; `lossless-json` keeps each
// number's text, so a stored row can be patched and written back exactly, and compared by value.
// Pure functions.
import { LosslessNumber, parse } from 'lossless-json';

/** A stored `data` value: plain objects and arrays, numbers kept as their text. */
export type StoredValue =
  null | boolean | string | LosslessNumber | StoredValue[] | { [key: string]: StoredValue };
export type StoredObject = { [key: string]: StoredValue };

/** `data` as a driver returns it: JSON text (the relay's pool asks for text), or a parsed value. */
export function parseStoredJson(data: unknown): StoredValue {
  if (typeof data === 'string') return parse(data) as StoredValue;
  return parse(JSON.stringify(data)) as StoredValue;
}

/**
 * A number's exact decimal value in one spelling, so `10`, `10.0` and `1.0E1` (Jackson), or
 * `1e+300` and PostgreSQL's expanded `1000…0`, compare equal, and integers beyond 2^53 compare
 * by every digit.
 */
export function canonicalNumber(text: string): string {
  const match = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!match) return text;
  const [, sign, whole = '', fraction = '', exp = '0'] = match;
  let digits = `${whole}${fraction}`.replace(/^0+/, '');
  let exponent = Number(exp) - fraction.length;
  if (digits === '') return '0';
  const trailing = /0*$/.exec(digits)![0].length;
  digits = digits.slice(0, digits.length - trailing);
  exponent += trailing;
  return `${sign}${digits}e${exponent}`;
}

/** One text per value, with keys sorted and numbers canonical: equal texts, equal content. */
export function canonicalJson(value: StoredValue | undefined): string {
  if (value === undefined) return 'undefined';
  if (value instanceof LosslessNumber) return canonicalNumber(value.value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function isStoredObject(value: StoredValue | undefined): value is StoredObject {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof LosslessNumber)
  );
}
