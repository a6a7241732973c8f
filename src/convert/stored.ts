// Rows as the target returns them: JSON text parsed without losing a number. `JSON.parse` would
// round an Int64 beyond 2^53 and forget that `10.0` was a Double; here each number keeps its
// text (a `LosslessNumber`), so a stored row can be patched and written back exactly, and
// compared by value. The parser is our own: lossless-json's builds each string a character at a
// time, which took seconds and half a gigabyte of heap for one string of 15 MB.
// Pure functions.
import { LosslessNumber } from 'lossless-json';

/** A stored `data` value: plain objects and arrays, numbers kept as their text. */
export type StoredValue =
  null | boolean | string | LosslessNumber | StoredValue[] | { [key: string]: StoredValue };
export type StoredObject = { [key: string]: StoredValue };

/** `data` as a driver returns it: JSON text (the relay's pool asks for text), or a parsed value. */
export function parseStoredJson(data: unknown): StoredValue {
  return new StoredJsonParser(typeof data === 'string' ? data : JSON.stringify(data)).parse();
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
// eslint-disable-next-line no-control-regex -- JSON forbids these unescaped in strings
const CONTROL = /[\u0000-\u001f]/;

/**
 * JSON text to a StoredValue. A string without escapes is taken from the text as it is (one
 * native search for its closing quote); one with escapes goes through JSON.parse, which also
 * refuses what JSON forbids.
 */
class StoredJsonParser {
  private at = 0;

  constructor(private readonly text: string) {}

  parse(): StoredValue {
    const value = this.value();
    this.space();
    if (this.at < this.text.length) throw this.error('unexpected text after the value');
    return value;
  }

  private value(): StoredValue {
    this.space();
    switch (this.text.charCodeAt(this.at)) {
      case 0x22: // "
        return this.string();
      case 0x7b: // {
        return this.object();
      case 0x5b: // [
        return this.array();
      case 0x74: // t
        return this.word('true', true);
      case 0x66: // f
        return this.word('false', false);
      case 0x6e: // n
        return this.word('null', null);
    }
    NUMBER.lastIndex = this.at;
    const number = NUMBER.exec(this.text);
    if (!number) throw this.error('a value was expected');
    this.at += number[0].length;
    return new LosslessNumber(number[0]);
  }

  private string(): string {
    const open = this.at;
    let close = this.text.indexOf('"', open + 1);
    // A quote after an odd number of backslashes is escaped: look further.
    while (close >= 0) {
      let backslashes = 0;
      while (this.text.charCodeAt(close - 1 - backslashes) === 0x5c) backslashes++;
      if (backslashes % 2 === 0) break;
      close = this.text.indexOf('"', close + 1);
    }
    if (close < 0) throw this.error('a string is not closed');
    this.at = close + 1;
    const raw = this.text.slice(open + 1, close);
    if (raw.includes('\\') || CONTROL.test(raw)) {
      return JSON.parse(this.text.slice(open, close + 1)) as string;
    }
    return raw;
  }

  private object(): StoredObject {
    this.at++;
    const object: StoredObject = {};
    if (this.next() === 0x7d) {
      this.at++;
      return object;
    }
    for (;;) {
      if (this.next() !== 0x22) throw this.error('a key was expected');
      const key = this.string();
      if (this.next() !== 0x3a) throw this.error('":" was expected');
      this.at++;
      const value = this.value();
      // As JSON.parse does: `__proto__` is a key like any other, not the prototype.
      if (key === '__proto__') {
        Object.defineProperty(object, key, {
          value,
          writable: true,
          enumerable: true,
          configurable: true,
        });
      } else {
        object[key] = value;
      }
      const after = this.next();
      this.at++;
      if (after === 0x7d) return object;
      if (after !== 0x2c) throw this.error('"," or "}" was expected', this.at - 1);
    }
  }

  private array(): StoredValue[] {
    this.at++;
    const array: StoredValue[] = [];
    if (this.next() === 0x5d) {
      this.at++;
      return array;
    }
    for (;;) {
      array.push(this.value());
      const after = this.next();
      this.at++;
      if (after === 0x5d) return array;
      if (after !== 0x2c) throw this.error('"," or "]" was expected', this.at - 1);
    }
  }

  private word<T extends StoredValue>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.at)) throw this.error('a value was expected');
    this.at += word.length;
    return value;
  }

  /** Skips whitespace; the code of the character after it (NaN at the end). */
  private next(): number {
    this.space();
    return this.text.charCodeAt(this.at);
  }

  private space(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.at);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.at++;
    }
  }

  private error(what: string, at = this.at): SyntaxError {
    return new SyntaxError(`stored JSON: ${what} at position ${at}`);
  }
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
