// DESIGN.md §1: every BSON type listed there, table-driven, for both dialects' key policies.
import { describe, expect, it } from 'vitest';
import { Binary, Decimal128, EJSON, Int32, Long, MaxKey, MinKey, Timestamp } from 'bson';
import type { Document } from 'bson';
import { canonicalJson, parseStoredJson } from '../../src/convert/stored.js';
import { oidOf, rowJson, valueJson } from '../../src/convert/value.js';
import { idTypeGroup } from '../../src/mongo/snapshot.js';
import { crateDialect } from '../../src/target/cratedb/dialect.js';
import { postgresDialect } from '../../src/target/postgres/dialect.js';
import { RowError } from '../../src/errors.js';
import { BSON_VALUES, oid, uuid } from '../support/bson-values.js';
import { sampleFiles } from '../support/samples.js';

describe('valueJson', () => {
  it.each(BSON_VALUES)('%s', (_name, input, expected) => {
    expect(valueJson(input)).toBe(expected);
  });

  it('is valid JSON that means the same value', () => {
    for (const [, input, expected] of BSON_VALUES) {
      expect(() => JSON.parse(valueJson(input))).not.toThrow();
      expect(valueJson(input)).toBe(expected);
    }
  });
});

describe('long strings (written between quotes as they are when nothing needs escaping)', () => {
  const long = 'x'.repeat(5000);
  it.each([
    ['plain', long],
    ['base64', Buffer.alloc(6000, 7).toString('base64')],
    ['non-ASCII', `${long}é€`],
    ['a quote', `${long}"`],
    ['a backslash', `\\${long}`],
    ['a control character', `${long}\u0001`],
    ['a newline', `${long}\n`],
    ['a surrogate pair', `${long}😀`],
    ['a lone surrogate', `${long}\ud800`],
    ['U+2028', `${long}\u2028`],
  ])('%s: as JSON.stringify writes it', (_name, text) => {
    expect(valueJson(text)).toBe(JSON.stringify(text));
    expect(rowJson({ text })).toBe(`{"text":${JSON.stringify(text)}}`);
  });
});

describe('stored rows are written back exactly', () => {
  it.each([
    ['a whole Double', '{"price":10.0}'],
    ['Int64 beyond 2^53', '{"n":9223372036854775807}'],
    ['an exponent', '{"x":1e+300,"y":[1.5,-0.0]}'],
    ["Jackson's spelling", '{"x":1.0E300}'],
  ])('%s', (_name, text) => {
    expect(rowJson(parseStoredJson(text) as Document)).toBe(text);
  });
});

describe('canonicalJson compares numbers by exact value', () => {
  it.each([
    ['10', '10.0', true],
    ['1e+300', `1${'0'.repeat(300)}`, true],
    ['1.0E300', '1e300', true],
    ['0.1', '1e-1', true],
    ['9007199254740993', '9007199254740992', false],
    ['10.5', '10', false],
    ['-0.0', '0', true],
  ])('%s vs %s', (a, b, same) => {
    const ca = canonicalJson(parseStoredJson(`{"k":${a}}`));
    const cb = canonicalJson(parseStoredJson(`{"k":${b}}`));
    expect(ca === cb).toBe(same);
  });

  it('ignores key order', () => {
    expect(canonicalJson(parseStoredJson('{"a":1,"b":{"c":2,"d":3}}'))).toBe(
      canonicalJson(parseStoredJson('{"b":{"d":3,"c":2},"a":1}')),
    );
  });
});

describe('oidOf', () => {
  it.each([
    ['ObjectId', oid, '5ca4bbcea2dd94ee58162a68'],
    ['string', 'abc', 'abc'],
    ['int', 42, '42'],
    ['Int32', new Int32(-3), '-3'],
    ['double', 1.5, '1.5'],
    ['Long', Long.fromString('9007199254740993'), '9007199254740993'],
    ['object, keys in order', { b: 1, a: 'x' }, '{"b":1,"a":"x"}'],
    ['UUID', uuid, '{"$binary":{"base64":"DfB48zqnSi6WluBSDBqCig==","subType":"04"}}'],
    ['Date', new Date(0), '{"$date":"1970-01-01T00:00:00Z"}'],
  ])('%s', (_name, input, expected) => {
    expect(oidOf(input)).toBe(expected);
  });
});

describe('object keys per dialect', () => {
  const doc = {
    'a.b': 1,
    'c[0]': 2,
    'tab\there': 3,
    'line\nbreak': 4,
    _id: 'x',
    plain: { 'x.y': 5 },
  };

  it('PostgreSQL keeps keys as they are', () => {
    expect(JSON.parse(rowJson(doc, postgresDialect.objectKey))).toEqual(doc);
  });

  it('CrateDB replaces . [ tab CR LF with _', () => {
    expect(JSON.parse(rowJson(doc, crateDialect.objectKey))).toEqual({
      a_b: 1,
      'c_0]': 2,
      tab_here: 3,
      line_break: 4,
      _id: 'x',
      plain: { x_y: 5 },
    });
  });

  it('CrateDB keeps ] (legal in its keys; renaming it made needless collisions)', () => {
    expect(rowJson({ 'a]': 1, a_: 2 }, crateDialect.objectKey)).toBe('{"a]":1,"a_":2}');
  });

  it('a rename onto an existing key is a row error, not an overwrite', () => {
    expect(() => rowJson({ a_b: 1, 'a.b': 2 }, crateDialect.objectKey)).toThrow(RowError);
    expect(() => rowJson({ 'a.b': 2, a_b: 1 }, crateDialect.objectKey)).toThrow(RowError);
    expect(() => rowJson({ 'a.b': 1, 'a[b': 2 }, crateDialect.objectKey)).toThrow(/a_b/);
    expect(() => rowJson({ x: { 'a.b': 1, 'a[b': 2 } }, crateDialect.objectKey)).toThrow(/a_b/);
  });
});

describe('real sample documents', () => {
  it.each(sampleFiles())('%s converts losslessly to JSON', (_file, lines) => {
    for (const line of lines) {
      const doc = EJSON.parse(line, { relaxed: false });
      const text = rowJson(doc, crateDialect.objectKey);
      expect(typeof JSON.parse(text)._id).toBe('string');
      // Written back from its lossless parse, the text is the same: nothing rounded.
      expect(rowJson(parseStoredJson(text) as Document)).toBe(text);
    }
    expect(lines.length).toBeGreaterThan(100);
  });

  it('keeps dates before 1970 and doubles in GeoJSON points', () => {
    const customer = EJSON.parse(
      '{"_id":{"$oid":"5ca4bbcea2dd94ee58162a68"},"birthdate":{"$date":{"$numberLong":"-226117231000"}},"accounts":[{"$numberInt":"371138"}],"geo":{"type":"Point","coordinates":[{"$numberDouble":"-93.24565"},{"$numberDouble":"44.85466"}]}}',
      { relaxed: false },
    );
    expect(rowJson(customer)).toBe(
      '{"_id":"5ca4bbcea2dd94ee58162a68","birthdate":-226117231000,"accounts":[371138],' +
        '"geo":{"type":"Point","coordinates":[-93.24565,44.85466]}}',
    );
  });
});

describe('idTypeGroup (MongoDB sorts _ids by these groups first)', () => {
  it.each([
    ['MinKey', new MinKey(), 0],
    ['null', null, 1],
    ['number', 5, 2],
    ['Long', Long.fromNumber(5), 2],
    ['Decimal128', Decimal128.fromString('1'), 2],
    ['string', 'a', 3],
    ['object', { a: 1 }, 4],
    ['Binary', new Binary(Buffer.from('x')), 6],
    ['ObjectId', oid, 7],
    ['boolean', true, 8],
    ['Date', new Date(0), 9],
    ['Timestamp', new Timestamp({ t: 1, i: 1 }), 10],
    ['MaxKey', new MaxKey(), 12],
  ])('%s', (_name, id, group) => {
    expect(idTypeGroup(id)).toBe(group);
  });
});
