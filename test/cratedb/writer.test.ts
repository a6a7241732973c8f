// The writer against the CrateDB harness (test/support/cratedb/), whatever this run's target:
// the issue #11 defects that need CrateDB's behaviour (multi-row INSERTs that skip failing rows,
// dynamic sub-column typing and lenient casts, refresh visibility, XX000 errors).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Int32, Long, type Document } from 'bson';
import { sql } from 'kysely';
import { convertEvent, type RowEvent } from '../../src/convert/event.js';
import { foldBatch } from '../../src/convert/fold.js';
import { canonicalJson, parseStoredJson } from '../../src/convert/stored.js';
import { crateDialect } from '../../src/target/cratedb/dialect.js';
import { connectTarget, type TargetConnection } from '../../src/target/connect.js';
import type { Dialect } from '../../src/target/dialect.js';
import { TargetWriter } from '../../src/target/writer.js';
import { CrateHarness } from '../support/cratedb/index.js';

let crate: CrateHarness;
let target: TargetConnection;

beforeAll(async () => {
  // A long refresh interval: reads other than key lookups see only what a REFRESH made visible.
  crate = await CrateHarness.start({ version: '6.0.0', refreshIntervalMs: 60_000 });
  target = await connectTarget(crate.url(), 'cratedb');
});

afterAll(async () => {
  await target?.close();
  await crate?.close();
});

let seq = 0;
const insert = (coll: string, doc: Document): RowEvent =>
  convertEvent(
    {
      _id: { _data: String(++seq) },
      operationType: 'insert',
      ns: { db: 'd', coll },
      documentKey: { _id: doc._id },
      fullDocument: doc,
    },
    crateDialect.objectKey,
  ) as RowEvent;

function writer(dialect: Dialect = crateDialect, objectPolicy: 'dynamic' | 'ignored' = 'dynamic') {
  return new TargetWriter(target.db, dialect, {
    schema: 'doc',
    streamId: `s${++seq}`,
    onError: 'dlq',
    objectPolicy,
    tableFor: (c) => dialect.tableName(c),
  });
}

async function stored(table: string): Promise<Map<string, string>> {
  await sql.raw(`REFRESH TABLE "doc"."${table}"`).execute(target.db);
  const { rows } = await sql<{ oid: string; data: string }>`
    SELECT oid, data FROM ${sql.raw(`"doc"."${table}"`)}`.execute(target.db);
  return new Map(rows.map((r) => [r.oid, canonicalJson(parseStoredJson(r.data))]));
}

async function columnTypes(table: string): Promise<Record<string, string>> {
  const { rows } = await sql<{ column_name: string; data_type: string }>`
    SELECT column_name, data_type FROM information_schema.columns
    WHERE table_schema = 'doc' AND table_name = ${table}`.execute(target.db);
  return Object.fromEntries(rows.map((r) => [r.column_name, r.data_type]));
}

const same = (text: string) => canonicalJson(parseStoredJson(text));

describe('rows a multi-row INSERT skips (issue #11.1)', () => {
  // Sub-column typing would refuse the bad row before the INSERT; without it, CrateDB itself
  // drops the row from the multi-row statement, which the writer must notice.
  const untyped: Dialect = {
    ...crateDialect,
    rowTyping: () => ({ prepare: async () => new Map(), forget: () => {} }),
  };

  it('are found by RETURNING, written alone for the reason, and dead-lettered with it', async () => {
    const w = writer(untyped);
    await w.prepare(['skips']);
    await w.write(foldBatch([insert('skips', { _id: 'a', v: Long.fromNumber(1) })]), null);
    const result = await w.write(
      foldBatch([
        insert('skips', { _id: 'b', v: Long.fromNumber(2) }),
        insert('skips', { _id: 'c', v: { not: 'a number' } }),
        insert('skips', { _id: 'd', v: Long.fromNumber(4) }),
      ]),
      null,
    );
    expect(result.upserted).toBe(2);
    expect(result.deadLetters).toMatchObject([
      { oid: 'c', error: expect.stringMatching(/Cannot cast|bigint/i) },
    ]);
    expect([...(await stored('skips')).keys()].sort()).toEqual(['a', 'b', 'd']);
  });
});

describe('sub-column typing (issue #11.3)', () => {
  it('an Int32/Double field keeps both exactly; Int64 beyond 2^53 there is dead-lettered', async () => {
    const w = writer();
    await w.prepare(['prices']);
    await w.write(foldBatch([insert('prices', { _id: 'p1', price: 10, at: new Date(5) })]), null);
    const second = await w.write(
      foldBatch([
        insert('prices', { _id: 'p2', price: 10.5 }),
        insert('prices', { _id: 'p3', price: Long.fromString('9007199254740993') }),
      ]),
      null,
    );
    expect(second.upserted).toBe(1);
    expect(second.deadLetters).toMatchObject([
      {
        oid: 'p3',
        error:
          "data['price'] is DOUBLE PRECISION and this document's value there is a BSON Int64: an Int64 beyond 2^53 would lose digits",
      },
    ]);
    expect(await columnTypes('prices')).toMatchObject({
      "data['price']": 'double precision',
      "data['at']": 'timestamp with time zone',
    });
    const rows = await stored('prices');
    expect(rows.get('p1')).toBe(same('{"_id":"p1","price":10,"at":5}'));
    expect(rows.get('p2')).toBe(same('{"_id":"p2","price":10.5}'));
  });

  it('a value CrateDB would cast with a change of kind is dead-lettered, the rest written', async () => {
    const w = writer();
    await w.prepare(['kinds']);
    await w.write(foldBatch([insert('kinds', { _id: 'k1', s: 'text', b: true, n: 1 })]), null);
    const result = await w.write(
      foldBatch([
        insert('kinds', { _id: 'k2', s: true }),
        insert('kinds', { _id: 'k3', n: '42' }),
        insert('kinds', { _id: 'k4', s: { x: 1 } }),
        insert('kinds', { _id: 'k5', s: 'fine', n: 2 }),
      ]),
      null,
    );
    expect(result.upserted).toBe(1);
    expect(result.deadLetters.map((d) => [d.oid, d.error])).toEqual([
      ['k2', expect.stringMatching(/data\['s'\] is TEXT .* BSON Boolean/)],
      ['k3', expect.stringMatching(/data\['n'\] is DOUBLE PRECISION .* BSON String/)],
      ['k4', expect.stringMatching(/data\['s'\] is TEXT .* an object/)],
    ]);
    expect((await stored('kinds')).get('k5')).toBe(same('{"_id":"k5","s":"fine","n":2}'));
  });

  it('an array of objects: 10 then 10.5 both stored exactly; a string there is dead-lettered', async () => {
    const w = writer();
    await w.prepare(['orders']);
    await w.write(foldBatch([insert('orders', { _id: 'o1', items: [{ price: 10 }] })]), null);
    const second = await w.write(
      foldBatch([
        insert('orders', { _id: 'o2', items: [{ price: 10.5 }, { price: new Int32(3) }] }),
        insert('orders', { _id: 'o3', items: [{ price: 'ten' }] }),
      ]),
      null,
    );
    expect(second.upserted).toBe(1);
    expect(second.deadLetters.map((d) => [d.oid, d.error])).toEqual([
      [
        'o3',
        "data['items']['price'] (items[].price) is DOUBLE PRECISION and this document's value there is a BSON String: it would change kind",
      ],
    ]);
    expect(await columnTypes('orders')).toMatchObject({
      "data['items']": 'object_array',
      "data['items']['price']": 'double precision',
    });
    const rows = await stored('orders');
    expect(rows.get('o1')).toBe(same('{"_id":"o1","items":[{"price":10}]}'));
    expect(rows.get('o2')).toBe(same('{"_id":"o2","items":[{"price":10.5},{"price":3}]}'));
  });

  it('OBJECT(IGNORED) tables: nothing declared, nothing refused', async () => {
    const w = writer(crateDialect, 'ignored');
    await w.prepare(['ignored']);
    const result = await w.write(
      foldBatch([insert('ignored', { _id: 'i1', v: 1 }), insert('ignored', { _id: 'i2', v: 'x' })]),
      null,
    );
    expect(result).toMatchObject({ upserted: 2, deadLetters: [] });
    expect(Object.keys(await columnTypes('ignored')).sort()).toEqual(['data', 'oid']);
  });
});

describe('--on-drop truncate (issue #11.7)', () => {
  it('removes rows written since the last refresh', async () => {
    const w = writer();
    await w.prepare(['trunc']);
    await w.write(foldBatch([insert('trunc', { _id: 't1', v: 1 })]), null);
    await w.clear('trunc', 'truncate');
    expect((await stored('trunc')).size).toBe(0);
  });
});

describe('--on-drop drop', () => {
  it('forgets the sub-column types of the dropped table', async () => {
    const w = writer();
    await w.prepare(['dropped']);
    await w.write(foldBatch([insert('dropped', { _id: 'x', v: 'text' })]), null);
    await w.clear('dropped', 'drop');
    const result = await w.write(foldBatch([insert('dropped', { _id: 'x', v: 10 })]), null);
    expect(result).toMatchObject({ upserted: 1, deadLetters: [] });
    expect(await columnTypes('dropped')).toMatchObject({ "data['v']": 'double precision' });
  });
});

describe('collection names that are not table names (issue #11.6)', () => {
  it('fs.files goes to fs_files', async () => {
    const w = writer();
    await w.prepare(['fs.files']);
    const result = await w.write(foldBatch([insert('fs.files', { _id: 'f1', length: 3 })]), null);
    expect(result.upserted).toBe(1);
    expect([...(await stored('fs_files')).keys()]).toEqual(['f1']);
  });
});

describe('CrateDB errors (issue #11.4)', () => {
  it("a shard that is not active is retried, not a row's fault", async () => {
    const w = writer();
    await w.prepare(['hiccup']);
    crate.failNext(1);
    const error = await w
      .write(foldBatch([insert('hiccup', { _id: 'h1', v: 1 })]), null)
      .catch((e: unknown) => e);
    expect(crateDialect.classifyError(error).kind).toBe('transient');
    const retried = await w.write(foldBatch([insert('hiccup', { _id: 'h1', v: 1 })]), null);
    expect(retried).toMatchObject({ upserted: 1, deadLetters: [] });
  });
});
