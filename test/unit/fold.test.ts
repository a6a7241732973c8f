// DESIGN.md §2: change events -> row changes, folded per oid; patches applied like MongoDB did.
import { describe, expect, it } from 'vitest';
import { Double, Int32, Long, ObjectId, Timestamp, type Document } from 'bson';
import { parseStoredJson, type StoredObject } from '../../src/convert/stored.js';
import { rowJson } from '../../src/convert/value.js';
import { convertEvent, type RowEvent } from '../../src/convert/event.js';
import { applyPatch, foldBatch } from '../../src/convert/fold.js';
import { crateDialect } from '../../src/target/cratedb/dialect.js';
import { postgresDialect } from '../../src/target/postgres/dialect.js';

const id = new ObjectId('5ca4bbc7a2dd94ee5816238c');
let seq = 1;

/** A change event in the shape MongoDB 7.0 sends (as the harness conformance tests pin). */
function event(operationType: string, extra: Document, key: unknown = id): Document {
  const n = seq++;
  return {
    _id: { _data: `8200000001${n.toString(16).padStart(8, '0')}00` },
    operationType,
    clusterTime: new Timestamp({ t: 1700000000, i: n }),
    wallTime: new Date(1700000000000 + n),
    ns: { db: 'bank', coll: 'accounts' },
    documentKey: { _id: key },
    ...extra,
  };
}

const insert = (doc: Document, key: unknown = id) =>
  event('insert', { fullDocument: { _id: key, ...doc } }, key);
const update = (
  updatedFields: Document,
  removedFields: string[] = [],
  truncatedArrays: Document[] = [],
  key: unknown = id,
) => event('update', { updateDescription: { updatedFields, removedFields, truncatedArrays } }, key);
const updateWithDoc = (doc: Document, key: unknown = id) =>
  event(
    'update',
    {
      updateDescription: { updatedFields: {}, removedFields: [], truncatedArrays: [] },
      fullDocument: { _id: key, ...doc },
    },
    key,
  );
const replace = (doc: Document, key: unknown = id) =>
  event('replace', { fullDocument: { _id: key, ...doc } }, key);
const del = (key: unknown = id) => event('delete', {}, key);

function rows(events: Document[], dialect = postgresDialect) {
  return foldBatch(events.map((e) => convertEvent(e, dialect.objectKey) as RowEvent));
}

describe('convertEvent', () => {
  it('insert and replace upsert the converted fullDocument', () => {
    const converted = convertEvent(
      insert({ limit: 9000, opened: new Date(10) }),
      postgresDialect.objectKey,
    );
    expect(converted).toMatchObject({
      type: 'row',
      collection: 'accounts',
      oid: id.toHexString(),
      change: { kind: 'upsert', json: `{"_id":"${id.toHexString()}","limit":9000,"opened":10}` },
    });
  });

  it('update without fullDocument becomes a patch: MongoDB paths, BSON values', () => {
    const converted = convertEvent(
      update({ 'a.b.c': 1, 'x.y[0]': new Date(3) }, ['gone.k'], [{ field: 'arr', newSize: 2 }]),
      crateDialect.objectKey,
    );
    expect(converted).toMatchObject({
      type: 'row',
      change: {
        kind: 'patch',
        patch: {
          // As the relay reads them (READ_BSON): an Int32 keeps its type.
          set: [
            { path: ['a', 'b', 'c'], value: new Int32(1) },
            { path: ['x', 'y[0]'], value: new Date(3) },
          ],
          unset: [['gone', 'k']],
          truncate: [{ path: ['arr'], size: 2 }],
        },
      },
    });
  });

  it('update with a fullDocument (updateLookup) upserts it', () => {
    const converted = convertEvent(updateWithDoc({ n: 2 }), postgresDialect.objectKey);
    expect(converted).toMatchObject({
      change: { kind: 'upsert', json: `{"_id":"${id.toHexString()}","n":2}` },
    });
    expect(converted.type === 'row' && converted.change.kind === 'upsert').toBe(true);
    if (converted.type === 'row' && converted.change.kind === 'upsert') {
      expect(converted.change.doc).toEqual({ _id: id, n: new Int32(2) });
    }
  });

  it('update whose lookup found nothing (fullDocument null) falls back to the patch', () => {
    const e = update({ n: 3 });
    e.fullDocument = null;
    expect(convertEvent(e, postgresDialect.objectKey)).toMatchObject({ change: { kind: 'patch' } });
  });

  it('a key collision makes the event a reject, not an exception', () => {
    expect(convertEvent(insert({ 'a.b': 1, a_b: 2 }), crateDialect.objectKey)).toMatchObject({
      type: 'row',
      change: { kind: 'reject', error: expect.stringMatching(/a_b/) },
    });
  });

  it.each(['drop', 'rename', 'dropDatabase', 'invalidate', 'create'])(
    '%s is a control event',
    (op) => {
      expect(
        convertEvent(
          { operationType: op, ns: { db: 'bank', coll: 'accounts' } },
          postgresDialect.objectKey,
        ),
      ).toMatchObject({
        type: 'control',
        operation: op,
      });
    },
  );

  it('oids follow DESIGN §1 for every _id type', () => {
    expect(convertEvent(del(42), postgresDialect.objectKey)).toMatchObject({ oid: '42' });
    expect(convertEvent(del('k'), postgresDialect.objectKey)).toMatchObject({ oid: 'k' });
    expect(convertEvent(del({ a: 1 }), postgresDialect.objectKey)).toMatchObject({
      oid: '{"a":1}',
    });
  });
});

describe('foldBatch', () => {
  const cases: [string, Document[], unknown][] = [
    ['insert', [insert({ n: 1 })], { kind: 'upsert', data: { _id: id.toHexString(), n: 1 } }],
    ['insert + delete = delete', [insert({ n: 1 }), del()], { kind: 'delete' }],
    [
      'delete + insert = upsert',
      [del(), insert({ n: 2 })],
      { kind: 'upsert', data: { _id: id.toHexString(), n: 2 } },
    ],
    [
      'insert + update patch merges',
      [insert({ n: 1, s: { a: 1 } }), update({ n: 2, 's.b': 3 }, ['s.a'])],
      {
        kind: 'upsert',
        data: { _id: id.toHexString(), n: 2, s: { b: 3 } },
      },
    ],
    [
      'replace after updates wins',
      [insert({ n: 1 }), update({ n: 2 }), replace({ m: 1 })],
      {
        kind: 'upsert',
        data: { _id: id.toHexString(), m: 1 },
      },
    ],
    [
      'patches without a base stay patches, in order',
      [update({ n: 1 }), update({ n: 2 })],
      {
        kind: 'patch',
        patches: [
          { set: [{ path: ['n'], value: new Int32(1) }], unset: [], truncate: [] },
          { set: [{ path: ['n'], value: new Int32(2) }], unset: [], truncate: [] },
        ],
      },
    ],
    ['patch + delete = delete', [update({ n: 1 }), del()], { kind: 'delete' }],
    [
      'update after delete is rejected',
      [del(), update({ n: 1 })],
      { kind: 'reject', error: expect.stringMatching(/follows its delete/) },
    ],
    [
      'a reject is settled by a later full document',
      [del(), update({ n: 1 }), insert({ n: 5 })],
      {
        kind: 'upsert',
        data: { _id: id.toHexString(), n: 5 },
      },
    ],
  ];

  it.each(cases)('%s', (_name, events, expected) => {
    const folded = rows(events);
    expect(folded).toHaveLength(1);
    const change = folded[0]!.change;
    expect(
      change.kind === 'upsert' ? { kind: 'upsert', data: JSON.parse(change.json) } : change,
    ).toEqual(expected);
    expect(folded[0]!.events).toHaveLength(events.length);
  });

  it('an update merged into an insert keeps BSON number types and dialect keys', () => {
    const folded = rows(
      [insert({ price: new Double(10) }), update({ qty: new Double(2), 'a[b': new Long(1) })],
      crateDialect,
    );
    expect(folded[0]!.change).toMatchObject({
      kind: 'upsert',
      json: `{"_id":"${id.toHexString()}","price":10.0,"qty":2.0,"a_b":1}`,
    });
  });

  it('keeps rows apart by collection and oid, in first-touched order', () => {
    const other = new ObjectId();
    const e3 = insert({ n: 3 }, other);
    e3.ns = { db: 'bank', coll: 'customers' };
    const folded = rows([insert({ n: 1 }, other), insert({ n: 2 }), e3, del(other)]);
    expect(folded.map((r) => [r.collection, r.oid, r.change.kind])).toEqual([
      ['accounts', other.toHexString(), 'delete'],
      ['accounts', id.toHexString(), 'upsert'],
      ['customers', other.toHexString(), 'upsert'],
    ]);
  });
});

describe('applyPatch', () => {
  const base = {
    _id: 'x',
    n: 1,
    s: { a: 1, b: { c: 2 } },
    arr: [1, 2, 3, 4],
    objs: [{ k: 1 }, { k: 2 }],
  };
  const cases: [string, Parameters<typeof applyPatch>[1], unknown][] = [
    [
      'set top-level',
      { set: [{ path: ['n'], value: 5 }], unset: [], truncate: [] },
      { ...base, n: 5 },
    ],
    [
      'set nested, creating objects',
      { set: [{ path: ['t', 'u', 'v'], value: true }], unset: [], truncate: [] },
      { ...base, t: { u: { v: true } } },
    ],
    [
      'set array element',
      { set: [{ path: ['arr', '1'], value: 9 }], unset: [], truncate: [] },
      { ...base, arr: [1, 9, 3, 4] },
    ],
    [
      'append array element',
      { set: [{ path: ['arr', '4'], value: 5 }], unset: [], truncate: [] },
      { ...base, arr: [1, 2, 3, 4, 5] },
    ],
    [
      'set field in array of objects',
      { set: [{ path: ['objs', '1', 'k'], value: 7 }], unset: [], truncate: [] },
      { ...base, objs: [{ k: 1 }, { k: 7 }] },
    ],
    [
      'unset nested',
      { set: [], unset: [['s', 'b', 'c']], truncate: [] },
      { ...base, s: { a: 1, b: {} } },
    ],
    ['unset missing is a no-op', { set: [], unset: [['zz', 'y']], truncate: [] }, base],
    [
      'truncate array',
      { set: [], unset: [], truncate: [{ path: ['arr'], size: 2 }] },
      { ...base, arr: [1, 2] },
    ],
  ];

  it.each(cases)('%s', (_name, patch, expected) => {
    const before = structuredClone(base);
    expect(applyPatch(base, patch)).toEqual(expected);
    expect(base).toEqual(before);
  });

  it('patches a stored row exactly: its number texts kept, paths spelled as stored', () => {
    const stored = parseStoredJson(
      '{"a_b":{"c":1.0},"n":9223372036854775807,"x":1.0E300}',
    ) as StoredObject;
    const patched = applyPatch(
      stored,
      { set: [{ path: ['a[b', 'd'], value: new Double(2) }], unset: [['x']], truncate: [] },
      crateDialect.objectKey,
    );
    expect(rowJson(patched, crateDialect.objectKey)).toBe(
      '{"a_b":{"c":1.0,"d":2.0},"n":9223372036854775807}',
    );
  });

  it('refuses to set a named field inside an array', () => {
    expect(() =>
      applyPatch(base, { set: [{ path: ['arr', 'x', 'y'], value: 1 }], unset: [], truncate: [] }),
    ).toThrow(/inside an array/);
  });
});
