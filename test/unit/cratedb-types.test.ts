// Issue #11.3: CrateDB sub-column types from BSON types, and values that would be altered or
// refused in their sub-column (shared/notes/cratedb.md, "Values are cast leniently").
import { describe, expect, it } from 'vitest';
import { Decimal128, Double, Int32, Long, ObjectId, Timestamp } from 'bson';
import { LosslessNumber } from 'lossless-json';
import { crateDialect } from '../../src/target/cratedb/dialect.js';
import {
  ddlType,
  misfit,
  newColumnCount,
  parseColumnName,
  pathKey,
  scalarOf,
  shapeOf,
  type CrateType,
} from '../../src/target/cratedb/types.js';

const keys = crateDialect.objectKey;
const shape = (doc: Record<string, unknown>, known: [string[], CrateType][] = [], major = 6) =>
  shapeOf(doc, { keys, known: new Map(known.map(([p, t]) => [pathKey(p), t])), major });
const declared = (doc: Record<string, unknown>) =>
  Object.fromEntries([...shape(doc).columns.values()].map((c) => [c.path.join('.'), c.type]));

describe('the sub-column type of each BSON type', () => {
  it.each([
    ['String', 'x', 'text'],
    ['Boolean', true, 'boolean'],
    ['Int32 (as the driver decodes it)', 10, 'double precision'],
    ['Double (as the driver decodes it)', 10.5, 'double precision'],
    ['Int32', new Int32(7), 'double precision'],
    ['Double', new Double(10), 'double precision'],
    ['Int64', Long.fromString('9007199254740993'), 'bigint'],
    ['Date', new Date(0), 'timestamp with time zone'],
    ['Timestamp', new Timestamp({ t: 1, i: 1 }), 'bigint'],
    ['Decimal128', Decimal128.fromString('1.5'), 'text'],
    ['ObjectId', new ObjectId(), 'text'],
    ['array of strings', ['a', 'b'], 'text_array'],
    ['array of numbers and Int64s', [1, 2.5, Long.fromNumber(3)], 'double precision_array'],
  ])('%s', (_name, value, type) => {
    expect(declared({ v: value })).toEqual({ v: type });
  });

  it('nothing for null and empty arrays; objects by their leaves', () => {
    expect(declared({ n: null, e: [], p: { q: { r: 'x' } } })).toEqual({
      'p.q.r': 'text',
    });
  });

  it('keys as CrateDB stores them', () => {
    expect(declared({ 'a.b': { 'c[d': 1 } })).toEqual({ 'a_b.c_d': 'double precision' });
  });

  it('DDL spelling', () => {
    expect(ddlType('double precision_array')).toBe('ARRAY(DOUBLE PRECISION)');
    expect(ddlType('timestamp with time zone')).toBe('TIMESTAMP WITH TIME ZONE');
    expect(parseColumnName("data['a']['it''s']")).toEqual(['a', "it's"]);
    expect(parseColumnName('oid')).toBeNull();
  });
});

describe('a value fits its sub-column exactly, or the row is refused', () => {
  const cases: [string, unknown, CrateType, RegExp | null][] = [
    ['Int32 then Double: both exact in DOUBLE', 10.5, 'double precision', null],
    ['whole number in DOUBLE', 10, 'double precision', null],
    ['fraction into BIGINT is cut', 10.5, 'bigint', /fraction would be cut off/],
    ['Double 10.0 into BIGINT keeps its value', new Double(10), 'bigint', null],
    [
      'Int64 within 2^53 into DOUBLE',
      Long.fromString('9007199254740992'),
      'double precision',
      null,
    ],
    [
      'Int64 beyond 2^53 into DOUBLE loses digits',
      Long.fromString('9007199254740993'),
      'double precision',
      /beyond 2\^53/,
    ],
    ['string into BIGINT ("42" would become 42)', '42', 'bigint', /change kind/],
    ['boolean into TEXT (would become "t")', true, 'text', /change kind/],
    ['number into TEXT', 1, 'text', /change kind/],
    ['string into BOOLEAN', 'true', 'boolean', /change kind/],
    ['number into BOOLEAN', 1, 'boolean', /change kind/],
    ['Date into TIMESTAMP', new Date(5), 'timestamp with time zone', null],
    ['Date into an older BIGINT of epoch ms', new Date(5), 'bigint', null],
    ['number into TIMESTAMP', 5, 'timestamp with time zone', /change kind/],
    ['stored number back into its column', new LosslessNumber('10.0'), 'double precision', null],
  ];
  it.each(cases)('%s', (_name, value, column, expected) => {
    const why = misfit(scalarOf(value)!, column);
    if (expected === null) expect(why).toBeNull();
    else expect(why).toMatch(expected);
  });

  it('names the path, the column type and the BSON type', () => {
    expect(shape({ a: { b: 10.5 } }, [[['a', 'b'], 'bigint']]).problem).toBe(
      "data['a']['b'] is BIGINT and this document's value there is a BSON Double: its fraction would be cut off",
    );
  });

  it.each([
    ['an object into TEXT', { s: { x: 1 } }, [[['s'], 'text']], /data\['s'\] is TEXT .* an object/],
    ['a JSON-looking string into OBJECT', { o: '{"x":1}' }, [[['o'], 'object']], /change kind/],
    ['a scalar into an array', { a: 1 }, [[['a'], 'bigint_array']], /change kind/],
    ['an array into a scalar', { a: [1] }, [[['a'], 'bigint']], /is BIGINT .* an array/],
    ['a fraction into a BIGINT array', { a: [1.5] }, [[['a'], 'bigint_array']], /cut off/],
  ] as [string, Record<string, unknown>, [string[], CrateType][], RegExp][])(
    '%s',
    (_name, doc, known, expected) => {
      expect(shape(doc, known).problem).toMatch(expected);
    },
  );
});

describe('what CrateDB would refuse gets a reason instead of a silent drop', () => {
  it('mixed-type arrays', () => {
    expect(shape({ a: [1, 'x'] }).problem).toMatch(/mixes Int32 and String values in one array/);
    expect(shape({ a: [{ b: 1 }, 2] }).problem).toMatch(/mixes objects and other values/);
  });

  it('nested arrays before 6.0 only', () => {
    expect(shape({ a: [[1], [2]] }, [], 5).problem).toMatch(/from 6\.0 only/);
    expect(shape({ a: [[1], [2]] }, [], 6).problem).toBeNull();
  });

  it('strings over 32766 bytes in an indexed TEXT sub-column', () => {
    expect(shape({ s: 'é'.repeat(16_384) }).problem).toMatch(/32768 UTF-8 bytes, more than/);
    expect(shape({ s: 'x'.repeat(32_766) }).problem).toBeNull();
  });

  it('depth over 100', () => {
    let doc: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 101; i++) doc = { d: doc };
    expect(shape(doc).problem).toMatch(/deeper than CrateDB's 100 levels/);
  });

  it('counts new parents toward the column limit', () => {
    const known = new Map([[pathKey(['a']), 'object']]);
    expect(newColumnCount([['a', 'b', 'c'], ['a', 'b', 'd'], ['e']], known)).toBe(4);
  });
});

// The children of an array of objects are sub-columns too (`data['items']['price']`), which
// information_schema lists with one element's type (docs/general/information-schema.rst) and
// ALTER TABLE ADD COLUMN declares with it (`ArrayMapperITest.testDroppedColumnsWithinArraysOfObjects`).
describe('arrays of objects', () => {
  it.each([
    [
      'the array, then each field of its elements, by BSON type',
      {
        items: [
          { price: 10, name: 'x' },
          { price: 10.5, at: new Date(0) },
        ],
      },
      {
        items: 'object_array',
        'items.price': 'double precision',
        'items.name': 'text',
        'items.at': 'timestamp with time zone',
      },
    ],
    [
      'Int32 then Int64 across elements: DOUBLE PRECISION holds both',
      { items: [{ n: new Int32(1) }, { n: Long.fromNumber(2) }] },
      { items: 'object_array', 'items.n': 'double precision' },
    ],
    [
      'arrays of objects inside arrays of objects, and arrays in elements',
      { a: [{ b: [{ c: Long.fromNumber(1) }], tags: ['x'] }] },
      { a: 'object_array', 'a.b': 'object_array', 'a.b.c': 'bigint', 'a.tags': 'text_array' },
    ],
    [
      'objects inside elements by their leaves',
      { a: [{ o: { p: true } }] },
      { a: 'object_array', 'a.o.p': 'boolean' },
    ],
  ] as [string, Record<string, unknown>, Record<string, CrateType>][])('%s', (_n, doc, types) => {
    expect(shape(doc).problem).toBeNull();
    expect(declared(doc)).toEqual(types);
  });

  it('nothing new where the table has the children already', () => {
    const known: [string[], CrateType][] = [
      [['items'], 'object_array'],
      [['items', 'price'], 'double precision'],
    ];
    const { columns, problem } = shape({ items: [{ price: 10 }, { price: 10.5, qty: 2 }] }, known);
    expect(problem).toBeNull();
    expect([...columns.values()]).toEqual([{ path: ['items', 'qty'], type: 'double precision' }]);
  });

  const bigint: [string[], CrateType][] = [
    [['items'], 'object_array'],
    [['items', 'price'], 'bigint'],
  ];
  it.each([
    [
      'a fraction into a BIGINT child (typed from an older whole value)',
      { items: [{ price: 10 }, { price: 10.5 }] },
      bigint,
      "data['items']['price'] (items[].price) is BIGINT and this document's value there is a BSON Double: its fraction would be cut off",
    ],
    [
      'a string into a numeric child ("42" would become 42)',
      { items: [{ price: '42' }] },
      bigint,
      "data['items']['price'] (items[].price) is BIGINT and this document's value there is a BSON String: it would change kind",
    ],
    [
      'elements of one document disagreeing on a field',
      { items: [{ price: 1 }, { price: 'x' }] },
      [],
      "data['items']['price'] (items[].price) is DOUBLE PRECISION and this document's value there is a BSON String: it would change kind",
    ],
    [
      'an object where another element has a number',
      { items: [{ p: 1 }, { p: { q: 1 } }] },
      [],
      "data['items']['p'] (items[].p) is DOUBLE PRECISION and this document's value there is an object",
    ],
    [
      'a number where another element has an object',
      { items: [{ p: { q: 1 } }, { p: 1 }] },
      [],
      "data['items']['p'] (items[].p) is OBJECT and this document's value there is a BSON Int32: it would change kind",
    ],
    [
      'a nested array of objects',
      { a: [{ b: [{ c: 1.5 }] }] },
      [
        [['a'], 'object_array'],
        [['a', 'b'], 'object_array'],
        [['a', 'b', 'c'], 'bigint'],
      ],
      "data['a']['b']['c'] (a[].b[].c) is BIGINT and this document's value there is a BSON Double: its fraction would be cut off",
    ],
    [
      'objects into an array of numbers',
      { a: [{ b: 1 }] },
      [[['a'], 'bigint_array']],
      "data['a'] is ARRAY(BIGINT) and this document's array there holds objects",
    ],
    [
      'numbers into an array of objects',
      { a: [1] },
      [[['a'], 'object_array']],
      "data['a'] is ARRAY(OBJECT) and this document's array there holds a BSON Int32: it would change kind",
    ],
    [
      'one object into an array of objects',
      { a: { b: 1 } },
      [[['a'], 'object_array']],
      "data['a'] is ARRAY(OBJECT) and this document's value there is an object",
    ],
  ] as [string, Record<string, unknown>, [string[], CrateType][], string][])(
    '%s is refused with the path and both types',
    (_n, doc, known, sentence) => {
      expect(shape(doc, known).problem).toBe(sentence);
    },
  );
});
