// cdc-relay end to end: harness MongoDB (or TEST_MONGODB_URL) -> embedded PostgreSQL (or
// TEST_TARGET_URL). Every operation type and option, checked by comparing table and collection.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Decimal128, Double, Long, type Document } from 'mongodb';
import { Binary, EJSON, UUID } from 'bson';
import { LosslessNumber } from 'lossless-json';
import { parseStoredJson, type StoredObject } from '../../src/convert/stored.js';
import { refusals } from '../support/target.js';
import {
  expectConverges,
  capture,
  parseOptions,
  relayArgs as serverRelayArgs,
  client,
  mongo,
  servers,
  target,
  useServers,
  query,
  runCli,
  spawnRelay,
  startRelay,
  tableExists,
  tableNames,
  tableRows,
  rowCount,
  waitFor,
} from '../support/relay.js';
import { tail } from '../../src/commands/tail.js';
import { tailSettings } from '../../src/config.js';

useServers();

const relayArgs = (database: string, ...extra: string[]) =>
  serverRelayArgs(servers, database, ...extra);

const samples = fs
  .readFileSync(
    new URL('../fixtures/sample_analytics.customers.ejson.jsonl', import.meta.url),
    'utf8',
  )
  .split('\n')
  .filter(Boolean)
  .slice(0, 60)
  .map((line) => EJSON.parse(line, { relaxed: false }) as Document);

describe('cdc-relay', () => {
  it('copies existing documents, then streams every operation type', async () => {
    const database = mongo.database('ops');
    const coll = client.db(database).collection('customers');
    await coll.insertMany(samples.slice(0, 40));
    await coll.insertOne({
      _id: 'typed' as never,
      big: Long.fromString('1152921504606846976'),
      small: Long.fromNumber(7),
      price: Decimal128.fromString('19.99'),
      at: new Date(Date.UTC(1969, 6, 20, 20, 17, 40, 123)),
      nested: { list: [1, 2, 3], deep: { er: true } },
      whole: new Double(10),
      count: 10,
    });
    const relay = await startRelay(relayArgs(database, '--collection', 'customers'));
    await expectConverges(coll, target);
    // Read as JSON text: every digit of the Int64 is in it (DESIGN §1), as a number.
    const table = `"${target.schema}"."customers"`;
    const [row] = await query(target, `SELECT data FROM ${table} WHERE oid = 'typed'`, [], table, {
      jsonText: true,
    });
    const typed = parseStoredJson(row!.data) as StoredObject;
    expect(typed.big).toEqual(new LosslessNumber('1152921504606846976'));
    expect(typed.small).toEqual(new LosslessNumber('7'));
    // A whole Double keeps its fraction and an Int32 stays an integer, copied and streamed alike.
    // CrateDB holds both in a DOUBLE PRECISION sub-column (an Int32/Double field must keep either
    // exactly, DESIGN §1), which it prints with a fraction: the value is exact, its text `10.0`.
    const int = (text: string) =>
      new LosslessNumber(target.dialect === 'cratedb' ? `${text}.0` : text);
    expect(typed.whole).toEqual(new LosslessNumber('10.0'));
    expect(typed.count).toEqual(int('10'));
    expect(typed.price).toBe('19.99');
    expect(String(typed.at)).toBe(String(Date.UTC(1969, 6, 20, 20, 17, 40, 123)));

    await coll.insertMany(samples.slice(40, 50));
    await coll.updateOne(
      { _id: samples[0]!._id },
      { $set: { address: 'moved', 'tier.new': 1 }, $unset: { email: '' } },
    );
    await coll.updateOne(
      { _id: samples[1]!._id },
      { $push: { accounts: 1 } as Document, $inc: { visits: 1 } as Document },
    );
    await coll.updateMany({ active: true }, { $set: { checked: true } });
    await coll.replaceOne({ _id: samples[2]!._id }, { name: 'replaced', at: new Date(0) });
    await coll.deleteOne({ _id: samples[3]!._id });
    await coll.deleteMany({ active: false });
    await coll.findOneAndUpdate({ _id: 'typed' as never }, { $set: { 'nested.list.1': 20 } });
    await coll.insertOne({ _id: 'streamed' as never, whole: new Double(-3), count: -3 });
    await expectConverges(coll, target);
    const [streamed] = await query(
      target,
      `SELECT data FROM ${table} WHERE oid = 'streamed'`,
      [],
      table,
      {
        jsonText: true,
      },
    );
    expect(parseStoredJson(streamed!.data)).toMatchObject({
      whole: new LosslessNumber('-3.0'),
      count: int('-3'),
    });
    await relay.stop();
  });

  it('applies updates as patches to the stored rows with --full-document patch', async () => {
    const database = mongo.database('patch');
    const coll = client.db(database).collection('accounts');
    await coll.insertMany([
      { _id: 1 as never, balance: 10, tags: ['a', 'b', 'c'], profile: { name: 'x', city: 'y' } },
      { _id: 2 as never, balance: 20, list: [1, 2, 3, 4] },
    ]);
    const relay = await startRelay(
      relayArgs(database, '--collection', 'accounts', '--full-document', 'patch'),
    );
    await expectConverges(coll, target);
    await coll.updateOne(
      { _id: 1 as never },
      { $inc: { balance: 5 }, $unset: { 'profile.city': '' }, $set: { 'profile.zip': '123' } },
    );
    await coll.updateOne({ _id: 1 as never }, { $pull: { tags: 'b' } as Document });
    await coll.updateOne({ _id: 2 as never }, { $pop: { list: 1 } as Document });
    await coll.updateOne({ _id: 2 as never }, { $push: { list: { $each: [9, 8] } } as Document });
    await coll.updateOne({ _id: 2 as never }, { $set: { 'list.0': 100, 'sub.deep.er': true } });
    await coll.insertOne({ _id: 3 as never, n: 1 });
    await coll.updateOne({ _id: 3 as never }, { $inc: { n: 1 } });
    await expectConverges(coll, target);
    await relay.stop();
  });

  it.each(['whenAvailable', 'required'])(
    'reads post-images with --full-document %s',
    async (mode) => {
      const database = mongo.database('images');
      const db = client.db(database);
      await db.createCollection('orders', { changeStreamPreAndPostImages: { enabled: true } });
      const coll = db.collection('orders');
      const relay = await startRelay(
        relayArgs(database, '--collection', 'orders', '--full-document', mode),
      );
      await coll.insertOne({ _id: 1 as never, status: 'new' });
      await coll.updateOne({ _id: 1 as never }, { $set: { status: 'paid' } });
      await expectConverges(coll, target);
      await relay.stop();
    },
  );

  it('keeps the table on drop with --on-drop ignore, and a forced --dialect that matches works', async () => {
    const database = mongo.database('ignore');
    const coll = client.db(database).collection('kept');
    await coll.insertOne({ _id: 1 as never });
    const relay = await startRelay(
      relayArgs(database, '--collection', 'kept', '--dialect', target.dialect),
    );
    await expectConverges(coll, target);
    await coll.drop();
    await coll.insertOne({ _id: 2 as never });
    await waitFor(async () => (await tableRows(target, 'kept')).has('2'), 'insert after the drop');
    expect((await tableRows(target, 'kept')).has('1')).toBe(true);
    await relay.stop();
  });

  it('moves its checkpoint forward while idle, so it never falls off the oplog', async () => {
    const database = mongo.database('idle');
    const db = client.db(database);
    await db.createCollection('quiet');
    const relay = await startRelay(
      relayArgs(database, '--collection', 'quiet', '--stream-id', 'idle'),
    );
    const position = async () =>
      (
        await query(
          target,
          `SELECT position FROM "${target.schema}"."relay_checkpoints" WHERE stream_id = 'idle'`,
        )
      )[0]?.position as string | undefined;
    const before = await waitFor(position, 'first checkpoint');
    // Writes elsewhere move the cluster time; the quiet stream's resume token follows it.
    await db.collection('busy').insertMany([{ n: 1 }, { n: 2 }]);
    const after = await waitFor(
      async () => {
        const now = await position();
        return now !== before && now?.includes('startAfter') ? now : null;
      },
      'an idle checkpoint',
      15_000,
    );
    expect(after).toMatch(/"startAfter":\{"_data":"[^"]+"/); // tokens are opaque
    await relay.stop();
  });

  it('relays several collections, a whole database, and into a named table', async () => {
    const database = mongo.database('multi');
    const db = client.db(database);
    await db.collection('a').insertOne({ _id: 1 as never, from: 'a' });
    await db.collection('b').insertOne({ _id: 1 as never, from: 'b' });
    await db.collection('c').insertOne({ _id: 1 as never, from: 'c' });

    const two = await startRelay(relayArgs(database, '--collection', 'a', '--collection', 'b'));
    await db.collection('a').insertOne({ _id: 2 as never });
    await db.collection('c').insertOne({ _id: 2 as never });
    await expectConverges(db.collection('a'), target);
    await expectConverges(db.collection('b'), target);
    expect(await tableExists(target, 'c')).toBe(false);
    await two.stop();

    const named = await startRelay(relayArgs(database, '--collection', 'c', '--table', 'c_copy'));
    await expectConverges(db.collection('c'), target, 'c_copy');
    await named.stop();

    const whole = await startRelay(relayArgs(database, '--stream-id', 'whole'));
    await db.collection('b').deleteOne({ _id: 1 as never });
    await expectConverges(db.collection('c'), target);
    await expectConverges(db.collection('b'), target);
    await whole.stop();
  });

  it('follows a whole database that has no collection yet (the compose stack starts this way)', async () => {
    const database = mongo.database('empty');
    const relay = await startRelay(relayArgs(database, '--stream-id', 'empty-db'));
    const coll = client.db(database).collection('later');
    await coll.insertMany([{ _id: 1 as never }, { _id: 2 as never }]);
    await coll.updateOne({ _id: 1 as never }, { $set: { a: 1 } });
    await expectConverges(coll, target);
    await relay.stop();
  });

  it('appends --filter stages to the change stream', async () => {
    const database = mongo.database('filter');
    const coll = client.db(database).collection('events');
    await coll.insertOne({ _id: 0 as never });
    const relay = await startRelay(
      relayArgs(
        database,
        '--collection',
        'events',
        '--filter',
        '[{"$match":{"operationType":{"$ne":"delete"}}}]',
      ),
    );
    await expectConverges(coll, target);
    await coll.insertMany([{ _id: 1 as never }, { _id: 2 as never }]);
    await coll.deleteOne({ _id: 1 as never });
    await waitFor(async () => (await tableRows(target, 'events')).size === 3, 'three rows');
    await relay.stop();
    expect([...(await tableRows(target, 'events')).keys()].sort()).toEqual(['0', '1', '2']);
  });

  it('truncates or drops the table on drop, and goes on after invalidate', async () => {
    const database = mongo.database('drop');
    const db = client.db(database);
    await db.collection('t').insertMany([{ _id: 1 as never }, { _id: 2 as never }]);
    const truncating = await startRelay(
      relayArgs(database, '--collection', 't', '--on-drop', 'truncate'),
    );
    await expectConverges(db.collection('t'), target);
    await db.collection('t').drop();
    await waitFor(async () => (await tableRows(target, 't')).size === 0, 'table truncated');
    // The stream was invalidated by the drop; the relay reopened it after the invalidate event.
    await db.collection('t').insertOne({ _id: 3 as never, again: true });
    await expectConverges(db.collection('t'), target);
    await truncating.stop();

    const dropping = await startRelay(
      relayArgs(database, '--collection', 't', '--on-drop', 'drop', '--stream-id', 'dropper'),
    );
    await db.collection('t').drop();
    await waitFor(async () => !(await tableExists(target, 't')), 'table dropped');
    await db.collection('t').insertOne({ _id: 4 as never });
    await expectConverges(db.collection('t'), target);
    await dropping.stop();
  });

  it('dead-letters a row the target rejects and writes the rest of its batch', async () => {
    const database = mongo.database('dlq');
    const coll = client.db(database).collection('poison');
    await client.db(database).createCollection('poison');
    const relay = await startRelay(relayArgs(database, '--collection', 'poison'));
    await waitFor(() => tableExists(target, 'poison'), 'poison table');
    const bad = { v: refusals[target.dialect].refusedValue };
    await coll.insertOne({ _id: 0 as never, v: 1 });
    // Written first, so that `v` holds a number before the refused text arrives.
    await waitFor(async () => (await tableRows(target, 'poison')).has('0'), 'the first row');
    await coll.insertMany([
      { _id: 1 as never, v: 2 },
      { _id: 2 as never, ...bad },
      { _id: 3 as never, v: 3 },
    ]);
    await waitFor(async () => (await tableRows(target, 'poison')).size === 3, 'good rows');
    const letters = await waitFor(async () => {
      const rows = await query(
        target,
        `SELECT * FROM "${target.schema}"."relay_dead_letters" WHERE oid = '2'`,
        [],
        `"${target.schema}"."relay_dead_letters"`,
      );
      return rows.length ? rows : null;
    }, 'dead letter');
    expect(letters[0]).toMatchObject({ ns: `${database}.poison`, oid: '2', operation: 'insert' });
    expect(String(letters[0]!.error)).not.toBe('');
    const events = EJSON.parse(String(letters[0]!.event), { relaxed: true }) as Document[];
    expect(events[0]).toMatchObject({ operationType: 'insert', documentKey: { _id: 2 } });
    await coll.insertOne({ _id: 4 as never, v: 4 });
    await waitFor(async () => (await tableRows(target, 'poison')).has('4'), 'relay goes on');
    await relay.stop();

    // Once the cause is fixed (here: the document), the dead letter replays like any event line.
    const fixed = EJSON.parse(String(letters[0]!.event), { relaxed: false }) as Document[];
    fixed[0]!.fullDocument.v = 99;
    const replayed = await replayLines([EJSON.stringify(fixed, { relaxed: false })]);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect((await tableRows(target, 'poison')).get('2')).toEqual({ _id: 2, v: 99 });
  });

  it('loses no row silently: values that change kind are written, or dead-lettered where the target refuses them', async () => {
    const database = mongo.database('kinds');
    const coll = client.db(database).collection('kinds');
    await client.db(database).createCollection('kinds');
    const relay = await startRelay(relayArgs(database, '--collection', 'kinds'));
    await waitFor(() => tableExists(target, 'kinds'), 'kinds table');
    // One batch: a new key first a number, then text; an array of mixed kinds. A multi-row
    // INSERT on CrateDB skips such rows without an error (shared/notes/cratedb.md).
    await coll.insertMany([
      { _id: 1 as never, k: 1, s: 'text' },
      { _id: 2 as never, k: 'one' },
      { _id: 3 as never, list: [1, 'a', { b: true }] },
      { _id: 4 as never, ok: true },
    ]);
    await waitFor(async () => (await tableRows(target, 'kinds')).has('4'), 'first batch');
    // A later batch: a number where CrateDB has typed `s` TEXT would be cast to "2".
    await coll.insertOne({ _id: 5 as never, s: 2 });
    const refused = refusals[target.dialect].refusesKindChanges ? ['2', '3', '5'] : [];
    await expectConverges(coll, target, 'kinds', 20_000, refused);
    await relay.stop();
  });

  it('stops before the checkpoint with --on-error fail', async () => {
    const database = mongo.database('fail');
    const coll = client.db(database).collection('strict');
    await client.db(database).createCollection('strict');
    const relay = await startRelay(
      relayArgs(database, '--collection', 'strict', '--on-error', 'fail', '--stream-id', 'strict'),
    );
    await waitFor(() => tableExists(target, 'strict'), 'strict table');
    const bad = { v: refusals[target.dialect].refusedValue };
    await coll.insertOne({ _id: 0 as never, v: 1 });
    await coll.insertOne({ _id: 1 as never, ...bad });
    await expect(relay.done).rejects.toThrow(/rejected strict document 1/);
    expect((await tableRows(target, 'strict')).has('1')).toBe(false);
    // The checkpoint stayed before the refused event: a restart meets it again.
    const again = await startRelay(
      relayArgs(database, '--collection', 'strict', '--stream-id', 'strict'),
    );
    const letters = await waitFor(async () => {
      const rows = await query(
        target,
        `SELECT oid FROM "${target.schema}"."relay_dead_letters" WHERE stream_id = 'strict'`,
        [],
        `"${target.schema}"."relay_dead_letters"`,
      );
      return rows.length ? rows : null;
    }, 'the refused event dead-lettered after restart');
    expect(letters.map((r) => r.oid)).toEqual(['1']);
    await again.stop();
  });

  it('resumes from its checkpoint after a clean stop without copying again', async () => {
    const database = mongo.database('resume');
    const coll = client.db(database).collection('r');
    await coll.insertMany(samples.slice(0, 10));
    const first = await startRelay(relayArgs(database, '--collection', 'r'));
    await expectConverges(coll, target);
    await first.stop();
    await coll.insertMany(samples.slice(10, 20));
    await coll.deleteOne({ _id: samples[0]!._id });
    const second = await startRelay(relayArgs(database, '--collection', 'r'));
    await expectConverges(coll, target);
    await second.stop();
    const stats = (await second.done).stats;
    expect(stats.snapshotDocs).toBe(0);
    expect(stats.eventsWritten).toBeGreaterThanOrEqual(11);
  });

  it('copies and exits with --snapshot only; streams only new changes with --snapshot never', async () => {
    const database = mongo.database('modes');
    const coll = client.db(database).collection('m');
    await coll.insertMany([{ _id: 1 as never }, { _id: 2 as never }]);
    const only = await startRelay(relayArgs(database, '--collection', 'm', '--snapshot', 'only'));
    const relay = await only.done;
    expect(relay.stats.snapshotDocs).toBe(2);
    await expectConverges(coll, target);

    const never = await startRelay(
      relayArgs(
        database,
        '--collection',
        'm',
        '--snapshot',
        'never',
        '--table',
        'm_new',
        '--stream-id',
        'never',
      ),
    );
    await waitFor(() => tableExists(target, 'm_new'), 'table');
    await coll.insertOne({ _id: 3 as never });
    await waitFor(async () => (await tableRows(target, 'm_new')).has('3'), 'new insert');
    await never.stop();
    expect([...(await tableRows(target, 'm_new')).keys()]).toEqual(['3']);
  });
});

describe('rename onto a relayed collection (dropTarget, or $out into it)', () => {
  it('handles the replaced table per --on-drop, then copies the renamed-in documents', async () => {
    const database = mongo.database('renameonto');
    const db = client.db(database);
    const a = db.collection('a');
    const b = db.collection('b');
    await a.insertMany([
      { _id: 1 as never, from: 'a' },
      { _id: 2 as never, from: 'a' },
    ]);
    await b.insertMany([
      { _id: 2 as never, from: 'b' },
      { _id: 3 as never, from: 'b' },
    ]);
    // One relay follows b alone (into its own table), one the whole database.
    const one = spawnRelay([
      'cdc-relay',
      ...relayArgs(database, '--collection', 'b', '--table', 'b_only', '--on-drop', 'truncate'),
      '--stream-id',
      'one',
    ]);
    const all = spawnRelay([
      'cdc-relay',
      ...relayArgs(database, '--on-drop', 'truncate', '--stream-id', 'all'),
    ]);
    try {
      await expectConverges(b, target, 'b_only');
      await expectConverges(b, target, 'b');
      await expectConverges(a, target, 'a');
      await a.rename('b', { dropTarget: true });
      await b.insertOne({ _id: 4 as never, after: true });
      await expectConverges(b, target, 'b_only');
      await expectConverges(b, target, 'b');
      await waitFor(async () => (await tableRows(target, 'a')).size === 0, 'table a emptied');
      const said = new RegExp(
        `rename of ${database}\\.a to ${database}\\.b replaced ${database}\\.b in the source; --on-drop truncate empties table`,
      );
      expect(one.output()).toMatch(said);
      expect(all.output()).toMatch(said);
    } finally {
      for (const relay of [one, all]) relay.child.kill('SIGTERM');
      expect(await one.exited).toBe(0);
      expect(await all.exited).toBe(0);
    }
  }, 90_000);

  it('lets the rename through the filter of a relay that follows several collections', async () => {
    const database = mongo.database('renamefilter');
    const db = client.db(database);
    const p = db.collection('p');
    const q = db.collection('q');
    await p.insertMany([{ _id: 1 as never, from: 'p' }]);
    await q.insertMany([{ _id: 2 as never, from: 'q' }]);
    await db.createCollection('r');
    const relay = spawnRelay([
      'cdc-relay',
      ...relayArgs(database, '--collection', 'q', '--collection', 'r', '--on-drop', 'truncate'),
    ]);
    try {
      await expectConverges(q, target);
      await p.rename('q', { dropTarget: true });
      await expectConverges(q, target);
      await relay.waitForOutput(/rename of \S+\.p to \S+\.q replaced/);
    } finally {
      relay.child.kill('SIGTERM');
      expect(await relay.exited).toBe(0);
    }
  }, 60_000);

  it('resumes the copy of the renamed-in documents after a kill during it', async () => {
    const database = mongo.database('renamekill');
    const db = client.db(database);
    const input = db.collection('input');
    const output = db.collection('output');
    await input.insertMany(Array.from({ length: 3000 }, (_, i) => ({ _id: i as never, n: i })));
    await output.insertMany([{ _id: -1 as never, stale: true }]);
    const args = [
      'cdc-relay',
      ...relayArgs(database, '--collection', 'output', '--on-drop', 'truncate'),
      '--batch-size',
      '5',
    ];
    const first = spawnRelay(args);
    await expectConverges(output, target);
    // $out into an existing collection is a rename onto it.
    await input.aggregate([{ $match: { n: { $gte: 10 } } }, { $out: 'output' }]).toArray();
    // The copy after the rename (not the first relay's initial one) has started.
    await first.waitForOutput(/replaced .*\n.*copying .*\.output/);
    // Killed once the checkpoint names a batch of that copy as written.
    await waitFor(async () => {
      const rows = await query(
        target,
        `SELECT snapshot FROM "${target.schema}"."relay_checkpoints" WHERE snapshot LIKE '%lastId%'`,
        [],
        `"${target.schema}"."relay_checkpoints"`,
      );
      return rows.length > 0;
    }, 'a batch of the copy written');
    first.child.kill('SIGKILL');
    await first.exited;
    const second = spawnRelay(args);
    try {
      await expectConverges(output, target, 'output', 60_000);
      expect(second.output()).toMatch(/"snapshotPending":true,"msg":"resuming from checkpoint/);
      expect(second.output()).not.toMatch(/replaced/);
      expect(second.output()).toMatch(/"resumingAfter":"\d+"/);
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  }, 120_000);
});

describe('renames across databases, and the temporary collections MongoDB renames', () => {
  // MongoDB renames into another database by copying into a temporary collection of the target
  // database, renaming that onto the target, and dropping the source; $out writes a temporary
  // collection renamed onto its target (see the harness conformance tests for the sources).
  const temporaryTables = async () =>
    (await tableNames(target)).filter((name) => name.toLowerCase().startsWith('tmp'));

  it('copies a collection renamed in from another database, without its temporary copy', async () => {
    const from = mongo.database('xfrom');
    const into = mongo.database('xinto');
    const incoming = client.db(from).collection('incoming');
    const landing = client.db(into).collection('landing');
    await incoming.insertMany([
      { _id: 1 as never, from: 'incoming' },
      { _id: 2 as never, from: 'incoming' },
    ]);
    await landing.insertMany([
      { _id: 2 as never, from: 'landing' },
      { _id: 3 as never, from: 'landing' },
    ]);
    const one = spawnRelay([
      'cdc-relay',
      ...relayArgs(into, '--collection', 'landing', '--table', 'landing_only'),
      ...['--on-drop', 'truncate', '--stream-id', 'x-one'],
    ]);
    const all = spawnRelay([
      'cdc-relay',
      ...relayArgs(into, '--on-drop', 'truncate', '--stream-id', 'x-all'),
    ]);
    try {
      await expectConverges(landing, target, 'landing_only');
      await expectConverges(landing, target, 'landing');
      await client.db('admin').command({
        renameCollection: incoming.namespace,
        to: landing.namespace,
        dropTarget: true,
      });
      await landing.insertOne({ _id: 4 as never, after: true });
      await expectConverges(landing, target, 'landing_only');
      await expectConverges(landing, target, 'landing');
      const said = new RegExp(
        `a rename from another database onto ${into}\\.landing \\(copied into ${into}\\.tmp[0-9A-Za-z]{5}\\.renameCollection, then renamed onto it\\) replaced ${into}\\.landing in the source; --on-drop truncate empties table`,
      );
      expect(await temporaryTables()).toEqual([]);
      expect(one.output()).toMatch(said);
      expect(all.output()).toMatch(said);
    } finally {
      for (const relay of [one, all]) relay.child.kill('SIGTERM');
      expect(await one.exited).toBe(0);
      expect(await all.exited).toBe(0);
    }
  }, 90_000);

  it('handles a collection renamed into another database per --on-drop, as the drop it is here', async () => {
    const away = mongo.database('away');
    const elsewhere = mongo.database('elsewhere');
    const db = client.db(away);
    await db.collection('stays').insertOne({ _id: 1 as never });
    const all = spawnRelay([
      'cdc-relay',
      ...relayArgs(away, '--on-drop', 'truncate', '--stream-id', 'away-all'),
    ]);
    let one: ReturnType<typeof spawnRelay> | null = null;
    try {
      await all.waitForOutput(/snapshot complete/);
      // Created after the whole-database relay started: followed all the same.
      const leaving = db.collection('leaving');
      await leaving.insertMany([{ _id: 1 as never }, { _id: 2 as never }]);
      one = spawnRelay([
        'cdc-relay',
        ...relayArgs(away, '--collection', 'leaving', '--table', 'leaving_only'),
        ...['--on-drop', 'drop', '--stream-id', 'away-one'],
      ]);
      await expectConverges(leaving, target);
      await expectConverges(leaving, target, 'leaving_only');
      await client.db('admin').command({
        renameCollection: leaving.namespace,
        to: `${elsewhere}.arrived`,
      });
      await waitFor(async () => (await rowCount(target, 'leaving')) === 0, 'table leaving emptied');
      await waitFor(async () => !(await tableExists(target, 'leaving_only')), 'table dropped');
      const said = (effect: string) =>
        new RegExp(
          `drop of ${away}\\.leaving in the source \\(a drop, or a rename into another database, which MongoDB carries out as a copy there and a drop here\\); --on-drop ${effect}`,
        );
      expect(all.output()).toMatch(said('truncate empties table leaving'));
      expect(one.output()).toMatch(said('drop drops table leaving_only'));
    } finally {
      for (const relay of [one, all]) relay?.child.kill('SIGTERM');
      expect(await all.exited).toBe(0);
      expect(await one?.exited).toBe(0);
    }
  }, 90_000);

  it('leaves out the temporary collection of $out, at the start and while streaming; follows $merge', async () => {
    const database = mongo.database('outdb');
    const db = client.db(database);
    const input = db.collection('input');
    const report = db.collection('report');
    await input.insertMany(Array.from({ length: 10 }, (_, i) => ({ _id: i as never, n: i })));
    await report.insertOne({ _id: 100 as never, stale: true });
    // What a $out in progress when the relay starts leaves: its temporary collection.
    await db
      .collection(`tmp.agg_out.${new UUID().toHexString(true)}`)
      .insertOne({ _id: 5 as never, n: 5 });
    const relay = spawnRelay([
      'cdc-relay',
      ...relayArgs(database, '--on-drop', 'truncate', '--stream-id', 'out-all'),
    ]);
    try {
      await expectConverges(input, target);
      await expectConverges(report, target);
      await input.aggregate([{ $match: { n: { $gte: 5 } } }, { $out: 'report' }]).toArray();
      await expectConverges(report, target);
      await relay.waitForOutput(
        new RegExp(
          `\\$out into ${database}\\.report \\(written to ${database}\\.tmp\\.agg_out\\.[0-9a-f-]+, then renamed onto it\\) replaced ${database}\\.report in the source; --on-drop truncate empties table report, then its documents are copied again`,
        ),
      );
      expect(await temporaryTables()).toEqual([]);
      // $merge writes into its target itself: ordinary inserts, updates and replaces.
      await input.updateMany({}, { $set: { merged: true } });
      await input
        .aggregate([{ $match: { n: { $lt: 7 } } }, { $merge: { into: 'report' } }])
        .toArray();
      await expectConverges(report, target);
    } finally {
      relay.child.kill('SIGTERM');
      expect(await relay.exited).toBe(0);
    }
  }, 90_000);
});

describe('Queryable Encryption state collections', () => {
  // Creating an encrypted collection creates enxcol_.<collection>.esc and .ecoc beside it (the
  // client-side encryption specification's createEncryptedCollection; .ecc before 7.0), which
  // the server tells by name (NamespaceString::isFLE2StateCollection, namespace_string.cpp) and
  // writes with each encrypted document. A database change stream shows those writes: it leaves
  // out only system.* (kRegexAllCollections, document_source_change_stream.h). Written here as
  // the plain documents they are: ESC {_id: BinData, value: BinData}, ECOC {_id, fieldName, value}.
  const stateTables = async () =>
    (await tableNames(target)).filter((name) => name.toLowerCase().startsWith('enxcol'));
  const token = (n: number) => new Binary(Buffer.alloc(32, n));

  it('leaves them out at the start and while streaming, saying so once for each', async () => {
    const database = mongo.database('qedb');
    const db = client.db(database);
    const patients = db.collection('qe_patients');
    const esc = db.collection('enxcol_.qe_patients.esc');
    const ecoc = db.collection('enxcol_.qe_patients.ecoc');
    await patients.insertOne({ _id: 1 as never, ssn: token(1) });
    await esc.insertOne({ _id: token(2) as never, value: token(3) });
    const relay = spawnRelay(['cdc-relay', ...relayArgs(database, '--stream-id', 'qe-all')]);
    try {
      await relay.waitForOutput(/snapshot complete/);
      await expectConverges(patients, target);
      for (const n of [4, 5]) {
        await patients.insertOne({ _id: n as never, ssn: token(n) });
        await esc.insertOne({ _id: token(10 + n) as never, value: token(20 + n) });
        await ecoc.insertOne({ fieldName: 'ssn', value: token(30 + n) });
      }
      await ecoc.deleteMany({});
      await patients.insertOne({ _id: 6 as never, ssn: token(6) });
      await expectConverges(patients, target);
      expect(await stateTables()).toEqual([]);
      for (const state of ['esc', 'ecoc']) {
        const said = relay
          .output()
          .split('\n')
          .filter((line) =>
            line.includes(
              `leaving out ${database}.enxcol_.qe_patients.${state}: a Queryable Encryption state collection: the server's metadata of an encrypted collection, not user data`,
            ),
          );
        expect(said, state).toHaveLength(1);
      }
    } finally {
      relay.child.kill('SIGTERM');
      expect(await relay.exited).toBe(0);
    }
  }, 90_000);
});

/** `relay tail` on `database` with `args`, printing into a buffer until it ends. */
async function startTail(database: string, ...args: string[]) {
  const out = capture();
  const settings = tailSettings(
    await parseOptions('tail', ['--mongodb-url', mongo.url, '--database', database, ...args]),
  );
  const done = tail(settings, out.stream);
  // tail opens its stream at the current cluster time; give it that moment before writing.
  await new Promise((r) => setTimeout(r, 500));
  return { done, text: out.text };
}

/** `relay replay` of `lines` (written to a temporary file) into this file's target. */
function replayLines(lines: string[], ...args: string[]) {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'relay-replay-')), 'events.jsonl');
  fs.writeFileSync(file, lines.join('\n'));
  return runCli(['replay', file, '--target-url', target.url, '--schema', target.schema, ...args]);
}

describe('tail and replay', () => {
  it('tail prints canonical Extended JSON that replay applies to an equal table', async () => {
    const database = mongo.database('tail');
    const coll = client.db(database).collection('t');
    const tailing = await startTail(database, '--collection', 't', '--limit', '6');
    await coll.insertOne({
      _id: 1 as never,
      n: Long.fromString('9007199254740993'),
      at: new Date(5),
    });
    await coll.insertOne({ _id: 2 as never, n: 1, s: { a: 1 } });
    await coll.updateOne({ _id: 2 as never }, { $set: { 's.b': 2 } });
    await coll.replaceOne({ _id: 2 as never }, { n: 3 });
    await coll.insertOne({ _id: 3 as never });
    await coll.deleteOne({ _id: 3 as never });
    await tailing.done;
    const lines = tailing.text().trim().split('\n');
    expect(lines).toHaveLength(6);
    const first = JSON.parse(lines[0]!);
    expect(first.fullDocument.n).toEqual({ $numberLong: '9007199254740993' });
    expect(first._id._data).toBeTypeOf('string');

    const result = await replayLines(lines, '--table', 'tail_replayed');
    expect(result.code, result.stderr).toBe(0);
    await expectConverges(coll, target, 'tail_replayed');
  });

  it('tail --format pretty prints one readable line per event', async () => {
    const database = mongo.database('pretty');
    const coll = client.db(database).collection('p');
    const tailing = await startTail(
      database,
      '--format',
      'pretty',
      '--operation',
      'update',
      '--limit',
      '1',
    );
    await coll.insertOne({ _id: 1 as never, a: 1 });
    await coll.updateOne({ _id: 1 as never }, { $set: { b: 2 }, $unset: { a: '' } });
    await tailing.done;
    expect(tailing.text()).toMatch(
      new RegExp(`^\\S+Z update ${database}\\.p 1 set b, unset a\\n$`),
    );
  });

  it('replay leaves out writes into temporary and encryption state collections, as a whole-database relay does', async () => {
    const database = mongo.database('tailtmp');
    const from = mongo.database('tailtmpfrom');
    const input = client.db(database).collection('rp_input');
    const incoming = client.db(from).collection('rp_incoming');
    await incoming.insertMany([{ _id: 1 as never }, { _id: 2 as never }]);
    // 4 inserts, 2 into $out's temporary collection and its rename, 2 into the temporary copy of
    // a rename from another database and its rename, 1 into a Queryable Encryption state
    // collection, 1 insert after.
    const tailing = await startTail(database, '--operation', 'insert,rename', '--limit', '12');
    await input.insertMany(Array.from({ length: 4 }, (_, i) => ({ _id: i as never, n: i })));
    await input.aggregate([{ $match: { n: { $gte: 2 } } }, { $out: 'rp_report' }]).toArray();
    await client
      .db('admin')
      .command({ renameCollection: incoming.namespace, to: `${database}.rp_landing` });
    await client
      .db(database)
      .collection('enxcol_.rp_input.esc')
      .insertOne({ _id: new Binary(Buffer.alloc(32, 1)) as never });
    await input.insertOne({ _id: 4 as never, n: 4 });
    await tailing.done;
    const lines = tailing.text().trim().split('\n');
    const leftOut = lines.filter((line) =>
      /"coll":"(tmp(\.agg_out\.[0-9a-f-]+|[0-9A-Za-z]{5}\.renameCollection)|enxcol_\.rp_input\.esc)"/.test(
        line,
      ),
    );
    // The file holds what the relay leaves out: 2 inserts into each temporary collection and the
    // rename of each onto its target (which replay does not apply), 1 into the state collection.
    expect(leftOut).toHaveLength(7);

    const result = await replayLines(lines);
    expect(result.code, result.stderr).toBe(0);
    const said = (ns: string, why: string) =>
      new RegExp(`writes into ${database}\\.${ns} left out, as the relay leaves them out: ${why}`);
    expect(result.stderr).toMatch(
      said(
        'tmp\\.agg_out\\.[0-9a-f-]+',
        "MongoDB's temporary collection of \\$out, whose documents are copied when it is renamed onto its target \\(replay does not apply the rename\\)",
      ),
    );
    expect(result.stderr).toMatch(
      said(
        'tmp[0-9A-Za-z]{5}\\.renameCollection',
        "MongoDB's temporary collection of cross-database rename",
      ),
    );
    expect(result.stderr).toMatch(
      said('enxcol_\\.rp_input\\.esc', 'a Queryable Encryption state collection'),
    );
    expect(result.stderr).toMatch(
      /replayed 5 events from .*; 0 dead letters; 5 writes into MongoDB's temporary or Queryable Encryption state collections left out/,
    );
    await expectConverges(input, target, 'rp_input');
    const tables = await tableNames(target);
    expect(tables.filter((name) => /^(tmp|enxcol)/i.test(name))).toEqual([]);
    expect(tables).not.toContain('rp_report');
    expect(tables).not.toContain('rp_landing');
  });

  it('replay stops at a malformed line with its number, writing nothing after it', async () => {
    const events = [1, 2, 3].map((n) =>
      EJSON.stringify(
        {
          _id: { _data: `82${n}` },
          operationType: 'insert',
          ns: { db: 'x', coll: 'c' },
          documentKey: { _id: n },
          fullDocument: { _id: n },
        },
        { relaxed: false },
      ),
    );
    const result = await replayLines(
      [events[0]!, '{"operationType": "insert", oops', events[2]!],
      '--table',
      'replay_bad',
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/line 2 is not valid Extended JSON/);
    expect([...(await tableRows(target, 'replay_bad')).keys()]).toEqual(['1']);
  });
});
