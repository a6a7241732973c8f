// The relay writes a row's JSON text straight from the BSON bytes (src/convert/bson.ts); `verify`,
// patches and stored rows write it from decoded values (`rowJson`). Both must give the same text
// for every document, on both dialects' key policies: table-driven over every BSON type, the
// sample documents, the workload's documents, and seeded random documents.
import { describe, expect, it } from 'vitest';
import { faker } from '@faker-js/faker';
import {
  BSON,
  Binary,
  Decimal128,
  Double,
  EJSON,
  Int32,
  Long,
  ObjectId,
  Timestamp,
  UUID,
  type Document,
} from 'bson';
import { DECODE, bsonId, bsonOid, bsonRowJson, decimal128Text } from '../../src/convert/bson.js';
import { ChangeEvent } from '../../src/convert/change.js';
import { keepKeys, oidOf, rowJson, type KeyPolicy } from '../../src/convert/value.js';
import { RowError } from '../../src/errors.js';
import { SCENARIOS } from '../../src/workload/scenarios.js';
import { crateDialect } from '../../src/target/cratedb/dialect.js';
import { postgresDialect } from '../../src/target/postgres/dialect.js';
import { BSON_VALUES, oid } from '../support/bson-values.js';
import { sampleFiles } from '../support/samples.js';

const policies: [string, KeyPolicy][] = [
  ['PostgreSQL', postgresDialect.objectKey],
  ['CrateDB', crateDialect.objectKey],
];

/** Both texts of `doc`'s BSON: from the bytes, and from the bytes decoded as the relay reads. */
function both(doc: Document, keys: KeyPolicy): { fromBytes: string; fromValues: string } {
  const bytes = BSON.serialize(doc);
  return {
    fromBytes: bsonRowJson(bytes, keys),
    fromValues: rowJson(BSON.deserialize(bytes, DECODE), keys),
  };
}

function expectSame(doc: Document, keys: KeyPolicy): string {
  const { fromBytes, fromValues } = both(doc, keys);
  expect(fromBytes).toBe(fromValues);
  return fromBytes;
}

describe('row JSON from BSON bytes is rowJson of the decoded document', () => {
  for (const [policy, keys] of policies) {
    it.each(BSON_VALUES)(`${policy}: %s`, (_name, value) => {
      expectSame({ _id: oid, v: value, nested: { v: value }, list: [value, value] }, keys);
    });
  }

  it.each(policies)('%s: keys with every character a dialect respells', (_policy, keys) => {
    expectSame(
      {
        _id: 'x',
        'a.b': 1,
        'c[0]': 2,
        'd]': 3,
        'tab\there': 4,
        'line\nbreak': 5,
        'quote"back\\slash': 6,
        ünï: { 'x.y': [{ 'p.q': 1 }] },
        '': 7,
      },
      keys,
    );
  });

  it('refuses a rename onto an existing key with the same sentence as rowJson', () => {
    for (const doc of [
      { a_b: 1, 'a.b': 2 },
      { 'a.b': 2, a_b: 1 },
      { 'a.b': 1, 'a[b': 2 },
      { x: { 'a.b': 1, 'a[b': 2 } },
      { x: [{ 'a.b': 1, a_b: 2 }] },
    ]) {
      const bytes = BSON.serialize(doc);
      const expected = (() => {
        try {
          rowJson(BSON.deserialize(bytes, DECODE), crateDialect.objectKey);
        } catch (error) {
          return error;
        }
      })();
      expect(expected).toBeInstanceOf(RowError);
      expect(() => bsonRowJson(bytes, crateDialect.objectKey)).toThrow(
        (expected as RowError).message,
      );
      expect(() => bsonRowJson(bytes, crateDialect.objectKey)).toThrow(RowError);
    }
  });

  it('a string that is not UTF-8 is a row error (the driver would not decode it)', () => {
    const bytes = Buffer.from(BSON.serialize({ s: 'ab' }));
    bytes[bytes.indexOf('ab') + 1] = 0xff;
    expect(() => bsonRowJson(bytes)).toThrow(RowError);
    expect(() => bsonRowJson(bytes)).toThrow(/not valid UTF-8/);
  });

  it('bytes that are not BSON are a row error, never a read past the end', () => {
    const bytes = Buffer.from(BSON.serialize({ s: 'abc', o: { n: 1 } }));
    const truncated = Buffer.from(bytes);
    truncated.writeInt32LE(bytes.length + 10, bytes.indexOf('o') + 2);
    expect(() => bsonRowJson(truncated)).toThrow(RowError);
    const unknownType = Buffer.from(bytes);
    unknownType[4] = 0x42;
    expect(() => bsonRowJson(unknownType)).toThrow(RowError);
  });

  it('a document at an offset of a larger buffer', () => {
    const doc = BSON.serialize({ a: new Int32(1), b: 'x' });
    const padded = Buffer.concat([Buffer.from([9, 9, 9]), doc, Buffer.from([7])]);
    expect(bsonRowJson(padded, keepKeys, 3)).toBe('{"a":1,"b":"x"}');
  });

  it('a document larger than the reused output buffer', () => {
    const big = {
      _id: 1,
      s: 'x'.repeat(300_000),
      escaped: '\n\u0001"'.repeat(50_000),
      list: Array.from({ length: 5000 }, (_, i) => i),
    };
    expectSame(big, keepKeys);
    expect(bsonRowJson(BSON.serialize({ small: true }))).toBe('{"small":true}');
  });
});

describe('sample and workload documents', () => {
  it.each(sampleFiles())('%s', (_file, lines) => {
    for (const line of lines) {
      const doc = EJSON.parse(line, { relaxed: false }) as Document;
      for (const [, keys] of policies) expectSame(doc, keys);
    }
  });

  it.each(Object.keys(SCENARIOS))('%s scenario', (name) => {
    const scenario = SCENARIOS[name]!;
    faker.seed(7);
    for (let n = 0; n < 300; n++) {
      for (const [, keys] of policies) expectSame(scenario.initialDocument(faker, n), keys);
    }
  });
});

/** A seeded random value of any common type, nested up to `depth`. */
function randomValue(depth: number): unknown {
  const kind = faker.number.int({ min: 0, max: depth > 0 ? 13 : 11 });
  switch (kind) {
    case 0:
      return new Double(faker.number.float({ min: -1e6, max: 1e6 }));
    case 1:
      return new Double(faker.number.int({ min: -1e9, max: 1e9 }));
    case 2:
      return new Int32(faker.number.int({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
    case 3:
      return Long.fromBigInt(faker.number.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
    case 4:
      return Long.fromNumber(faker.number.int({ min: -(2 ** 40), max: 2 ** 40 }));
    case 5:
      return faker.string.sample({ min: 0, max: 20 });
    case 6:
      return faker.string.fromCharacters('aé€😀"\\\n\t\u0001 ', { min: 0, max: 12 });
    case 7:
      return new Date(faker.number.int({ min: -1e13, max: 1e13 }));
    case 8:
      return new ObjectId(faker.string.hexadecimal({ length: 24, prefix: '', casing: 'lower' }));
    case 9:
      return faker.datatype.boolean();
    case 10:
      return null;
    case 11:
      return Decimal128.fromString(String(faker.number.float({ min: -1000, max: 1000 })));
    case 12:
      return Array.from({ length: faker.number.int({ min: 0, max: 4 }) }, () =>
        randomValue(depth - 1),
      );
    default:
      return randomDocument(depth - 1);
  }
}

function randomDocument(depth: number): Document {
  const doc: Document = {};
  const n = faker.number.int({ min: 0, max: 6 });
  for (let i = 0; i < n; i++) {
    doc[faker.string.fromCharacters('ab.[]\t_xé', { min: 1, max: 4 })] = randomValue(depth);
  }
  return doc;
}

describe('seeded random documents', () => {
  it.each(policies)('%s', (_policy, keys) => {
    faker.seed(13);
    for (let i = 0; i < 2000; i++) {
      const doc = { _id: i, ...randomDocument(3) };
      const bytes = BSON.serialize(doc);
      let expected: string | Error;
      try {
        expected = rowJson(BSON.deserialize(bytes, DECODE), keys);
      } catch (error) {
        expected = error as Error;
      }
      if (expected instanceof Error) {
        expect(expected).toBeInstanceOf(RowError);
        expect(() => bsonRowJson(bytes, keys)).toThrow(expected.message);
      } else {
        expect(bsonRowJson(bytes, keys)).toBe(expected);
      }
    }
  });
});

describe('Decimal128 text from its 16 bytes', () => {
  /** The 16 bytes of a Decimal128 with this coefficient, (unbiased) exponent and sign. */
  function decimalBytes(coefficient: bigint, exponent: number, negative: boolean): Buffer {
    const bits =
      (BigInt(negative ? 1 : 0) << 127n) | (BigInt(exponent + 6176) << 113n) | coefficient;
    const bytes = Buffer.alloc(16);
    bytes.writeBigUInt64LE(bits & 0xffffffffffffffffn, 0);
    bytes.writeBigUInt64LE(bits >> 64n, 8);
    return bytes;
  }
  const asBson = (bytes: Buffer) => new Decimal128(bytes).toString();

  it.each([
    ['0', 0n, 0, false],
    ['-0.00', 0n, -2, true],
    ['0E+3', 0n, 3, false],
    ['0E-6176', 0n, -6176, false],
    ['1.10', 110n, -2, false],
    ['-12345.6789', 123456789n, -4, true],
    ['0.000001', 1n, -6, false],
    ['1E-7', 1n, -7, false],
    ['1E+3', 1n, 3, false],
    ['largest fast coefficient', 2n ** 53n - 1n, -10, false],
    ['first coefficient of bson’s path', 2n ** 53n, -10, false],
    ['33 digits before the point', 10n ** 15n, 18, false],
    ['34 digits: scientific', 10n ** 15n, 19, false],
    ['34-digit coefficient', 10n ** 34n - 1n, -3, true],
    ['largest exponent', 9n, 6111, false],
  ])('%s', (_name, coefficient, exponent, negative) => {
    const bytes = decimalBytes(coefficient, exponent, negative);
    expect(decimal128Text(bytes, 0)).toBe(asBson(bytes));
  });

  it('NaN, Infinity and -Infinity', () => {
    for (const text of ['NaN', 'Infinity', '-Infinity']) {
      const bytes = Buffer.from(Decimal128.fromString(text).bytes);
      expect(decimal128Text(bytes, 0)).toBe(text);
    }
  });

  it('as bson writes it, for 20,000 seeded random values and byte patterns', () => {
    faker.seed(29);
    for (let i = 0; i < 20_000; i++) {
      const digits = faker.number.int({ min: 1, max: 34 });
      const coefficient = BigInt(faker.string.numeric({ length: digits, allowLeadingZeros: true }));
      const exponent =
        i % 4 === 0
          ? faker.number.int({ min: -6176, max: 6111 })
          : faker.number.int({ min: -40, max: 40 });
      const bytes = decimalBytes(coefficient, exponent, faker.datatype.boolean());
      expect(decimal128Text(bytes, 0)).toBe(asBson(bytes));
      const random = Buffer.from(faker.string.hexadecimal({ length: 32, prefix: '' }), 'hex');
      expect(decimal128Text(random, 0)).toBe(asBson(random));
    }
  });
});

describe('row keys and _ids from bytes', () => {
  it.each([
    ['ObjectId', oid],
    ['string', 'abc'],
    ['non-ASCII string', 'grüß'],
    ['Int32', new Int32(-3)],
    ['Double', new Double(1.5)],
    ['whole Double', new Double(10)],
    ['Long', Long.fromString('9007199254740993')],
    ['object, keys in order', { b: new Int32(1), a: 'x' }],
    ['UUID', new UUID('0df078f3-3aa7-4a2e-9696-e0520c1a828a')],
    ['Date', new Date(0)],
    ['Decimal128', Decimal128.fromString('1.10')],
  ])('%s', (_name, id) => {
    const bytes = BSON.serialize({ a: 1, _id: id, z: 2 });
    const decoded = BSON.deserialize(bytes, DECODE)._id as unknown;
    expect(bsonOid(bytes)).toBe(oidOf(decoded));
    expect(bsonId(bytes)).toEqual(decoded);
  });

  it('no _id', () => {
    expect(bsonOid(BSON.serialize({ a: 1 }))).toBeNull();
    expect(bsonId(BSON.serialize({ a: 1 }))).toBeUndefined();
  });
});

describe('ChangeEvent', () => {
  const event = {
    _id: { _data: '8265000000010000000A', _typeBits: new Binary(Buffer.from([1]), 0) },
    operationType: 'update',
    clusterTime: new Timestamp({ t: 1700000000, i: 3 }),
    wallTime: new Date(1700000000123),
    ns: { db: 'bank', coll: 'accounts' },
    documentKey: { _id: oid },
    updateDescription: { updatedFields: { n: new Int32(1) }, removedFields: [] },
    fullDocument: { _id: oid, n: new Int32(1) },
  };

  it('reads what every event needs from its bytes', () => {
    const change = ChangeEvent.fromDocument(event);
    expect(change._id).toEqual(event._id);
    expect(change.operationType).toBe('update');
    expect(change.ns).toEqual({ db: 'bank', coll: 'accounts' });
    expect(change.wallTimeMs).toBe(1700000000123);
    expect(change.clusterTimeSeconds).toBe(1700000000);
    expect(change.timeMs).toBe(1700000000123);
    expect(change.oid()).toBe(oid.toHexString());
    expect(change.updateDescription()).toEqual(event.updateDescription);
    expect(bsonRowJson(change.bytes, keepKeys, change.fullDocumentOffset)).toBe(
      `{"_id":"${oid.toHexString()}","n":1}`,
    );
    expect(change.toDocument()).toEqual(BSON.deserialize(BSON.serialize(event), DECODE));
    expect(change.size).toBe(BSON.calculateObjectSize(event));
  });

  it('an event without the optional fields', () => {
    const change = ChangeEvent.fromDocument({ operationType: 'dropDatabase', ns: { db: 'x' } });
    expect(change.ns).toEqual({ db: 'x' });
    expect(change.timeMs).toBeNull();
    expect(change.oid()).toBeNull();
    expect(change.fullDocumentOffset).toBe(-1);
    expect(change.updateDescription()).toBeNull();
  });

  it('a null fullDocument (the lookup found nothing) is no document', () => {
    expect(ChangeEvent.fromDocument({ ...event, fullDocument: null }).fullDocumentOffset).toBe(-1);
  });

  it('an unknown operation type is read as it is', () => {
    expect(ChangeEvent.fromDocument({ operationType: 'someday' }).operationType).toBe('someday');
  });

  it('a copied document is the insert event it stands for', () => {
    const doc = BSON.serialize({ _id: new Int32(5), a: 'x' });
    const insert = ChangeEvent.insertOf({ db: 'd', coll: 'c' }, doc);
    expect(insert.toDocument()).toEqual({
      operationType: 'insert',
      ns: { db: 'd', coll: 'c' },
      documentKey: { _id: new Int32(5) },
      fullDocument: { _id: new Int32(5), a: 'x' },
    });
    expect(insert.oid()).toBe('5');
  });
});
