// Stored rows (JSON text from the target) parsed with every number's text kept: the same values
// as lossless-json's parser gives, errors where JSON has them, and strings of megabytes (documents
// with large fields are read back for patches and by verify).
import { LosslessNumber, parse } from 'lossless-json';
import { describe, expect, it } from 'vitest';
import { parseStoredJson } from '../../src/convert/stored.js';
import { sampleFiles } from '../support/samples.js';

const texts: [string, string][] = [
  ['scalars', '[null,true,false,0,-0,1.5,-2.5e-3,1E+300,9223372036854775807,10.0]'],
  ['strings with escapes', String.raw`["a\"b","c\\d","\\\"","\u00e9\n\t\/","\ud83d\ude00",""]`],
  ['a backslash before the closing quote', String.raw`{"a\\":"b\\\\","c":"\\"}`],
  ['non-ASCII as it is', '{"é":"€😀","k":["ü"]}'],
  ['nesting', '{"a":{"b":[{"c":[[]]},{}]},"d":[1,{"e":null}]}'],
  ['whitespace', ' { "a" : [ 1 , 2 ] ,\n\t"b" : { } }\r\n'],
  ['an empty key', '{"":1}'],
];

describe('parseStoredJson', () => {
  it.each(texts)('%s: as lossless-json parses it', (_name, text) => {
    expect(parseStoredJson(text)).toEqual(parse(text));
  });

  it('keeps each number as its text', () => {
    const value = parseStoredJson('{"a":10.0,"b":9223372036854775807,"c":1.0E300}');
    expect(value).toEqual({
      a: new LosslessNumber('10.0'),
      b: new LosslessNumber('9223372036854775807'),
      c: new LosslessNumber('1.0E300'),
    });
  });

  it('makes __proto__ a key, not the prototype', () => {
    const value = parseStoredJson('{"__proto__":{"x":1}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value)).toEqual(['__proto__']);
  });

  it.each([
    ['an unclosed string', '{"a":"b'],
    ['an unclosed object', '{"a":1'],
    ['a trailing comma', '[1,]'],
    ['a missing colon', '{"a" 1}'],
    ['a bare word', '{"a":yes}'],
    ['a leading zero', '[01]'],
    ['text after the value', '{} {}'],
    ['a raw control character in a string', '["a\u0001b"]'],
    ['a bad escape', String.raw`["\x"]`],
    ['nothing', ''],
  ])('refuses %s', (_name, text) => {
    expect(() => parseStoredJson(text)).toThrow(SyntaxError);
  });

  it('parses the sample documents as lossless-json does', () => {
    for (const [, lines] of sampleFiles()) {
      for (const line of lines) expect(parseStoredJson(line)).toEqual(parse(line));
    }
  });

  it('reads strings of 15 MB whole (their cost is measured by bench/large.ts, verify)', () => {
    const big = 'x'.repeat(15_000_000);
    const text = `{"plain":"${big}","escaped":${JSON.stringify(`${big}"\n`)}}`;
    expect(parseStoredJson(text)).toEqual({ plain: big, escaped: `${big}"\n` });
  });
});
