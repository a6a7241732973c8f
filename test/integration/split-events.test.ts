// Change events over 16 MB: on MongoDB 7.0 / 6.0.9+ the relay asks for them split
// ($changeStreamSplitLargeEvent), reassembles the fragments into the one event, never closes a
// batch inside one, and checkpoints only the last fragment's token.
import { describe, expect, it } from 'vitest';
import { EJSON } from 'bson';
import { MongoClient, type Document } from 'mongodb';
import type { ChangeEvent } from '../../src/convert/change.js';
import { ChangeSource, type SourceOptions, type StreamPosition } from '../../src/mongo/source.js';
import { MongoHarness } from '../support/mongo/index.js';
import {
  query,
  relayArgs,
  spawnRelay,
  startRelay,
  tableRows,
  client,
  mongo,
  servers,
  target,
  useServers,
  waitFor,
} from '../support/relay.js';

useServers();

const MB = 1024 * 1024;

/** `mib` MiB of text in which every 16 characters name their offset: a cut or shift shows. */
function text(tag: string, mib: number): string {
  return Array.from(
    { length: (mib * MB) / 16 },
    (_, i) => `${tag}${i.toString(16).padStart(14, '0')}\n`,
  ).join('');
}

/**
 * A 9 MB document given a 6 MB field: the update event (6 MB updateDescription, 15 MB
 * fullDocument by updateLookup) is 21 MB, over the 16 MB limit, and comes in two fragments.
 */
async function largeUpdate(database: string, id: number): Promise<void> {
  const coll = client.db(database).collection<Document>('big');
  await coll.insertOne({ _id: id as never, a: 'a'.repeat(9 * MB) });
  await coll.updateOne({ _id: id as never }, { $set: { b: 'b'.repeat(6 * MB) } });
}

function sourceOptions(database: string): SourceOptions {
  return {
    database,
    collections: ['big'],
    fullDocument: 'updateLookup',
    filter: [],
    batchSize: 1,
    batchWaitMs: 20,
    batchBytes: 32 * MB,
  };
}

/**
 * Reopened at `position`, the stream sees the next write and nothing of the large event: a
 * mid-event token would yield its remaining fragments (an out-of-order error) first.
 */
async function resumesAfterEvent(source: ChangeSource, position: Document, database: string) {
  await source.close();
  source.open(position as StreamPosition);
  await client
    .db(database)
    .collection<Document>('big')
    .insertOne({ _id: 99 as never });
  const events: ChangeEvent[] = [];
  while (events.length === 0) events.push(...(await source.next()).events);
  expect(events.map((e) => [e.operationType, e.oid()])).toEqual([['insert', '99']]);
}

describe('change events over 16 MB', () => {
  it('writes split events whole, from fragments read several to a getMore, and resumes after them', async () => {
    const database = mongo.database('split');
    const coll = client.db(database).collection<Document>('big');
    await client.db(database).createCollection('big');
    // CrateDB indexes a TEXT sub-column only up to 32766 bytes (it dead-letters longer strings):
    // the large fields go into an unindexed object there.
    const args = relayArgs(
      servers,
      database,
      '--collection',
      'big',
      ...(target.dialect === 'cratedb' ? ['--object-policy', 'ignored'] : []),
    );
    const [a1, b1, c1, a2, b2] = [
      text('a', 2.5),
      text('b', 7),
      text('c', 7),
      text('d', 4.5),
      text('e', 6),
    ];
    /** Waits until the relay wrote the marker `id`, inserted after the events under test. */
    const marked = (id: string) =>
      waitFor(async () => (await tableRows(target, 'big')).has(id), `marker ${id}`, 60_000);
    /** The row of `id` holds exactly `fields`: each compared in full, not by length. */
    const expectStored = async (id: string, fields: Record<string, string>) => {
      const row = (await tableRows(target, 'big')).get(id) as Document;
      expect(Object.keys(row).sort()).toEqual(['_id', ...Object.keys(fields)].sort());
      for (const [key, value] of Object.entries(fields)) {
        expect(String(row[key]).length, `${id}.${key}`).toBe(value.length);
        expect(row[key] === value, `${id}.${key} holds what was written`).toBe(true);
      }
    };

    // Live: the update of a 2.5 MiB document with a 7 MiB field is a 16.5 MiB event.
    const first = await startRelay(args);
    await coll.insertOne({ _id: 1 as never, a: a1 });
    await coll.updateOne({ _id: 1 as never }, { $set: { b: b1 } });
    await coll.insertOne({ _id: 'm1' as never });
    await marked('m1');
    await first.stop();
    expect((await first.done).stats.eventsWritten).toBe(3);
    await expectStored('1', { a: a1, b: b1 });

    // A backlog, read in 16 MiB getMores: the second fragment of one split event (9.5 MiB) and
    // the first of the next (6 MiB) arrive in one reply, as the harness's conformance test shows.
    await coll.insertOne({ _id: 2 as never, a: a2 });
    await coll.updateOne({ _id: 1 as never }, { $set: { b: c1 } });
    await coll.updateOne({ _id: 2 as never }, { $set: { b: b2 } });
    await coll.insertOne({ _id: 'm2' as never });
    const second = await startRelay(args);
    await marked('m2');
    await second.stop();
    expect((await second.done).stats.eventsWritten).toBe(4);
    await expectStored('1', { a: a1, b: c1 });
    await expectStored('2', { a: a2, b: b2 });

    // Resumed from its checkpoint, a relay sees only what came after the whole event: a
    // mid-event token would hand it the remaining fragment, or the event again.
    const third = await startRelay(args);
    await coll.insertOne({ _id: 3 as never, n: 3 });
    await waitFor(async () => (await tableRows(target, 'big')).has('3'), 'the next insert');
    await third.stop();
    expect((await third.done).stats.eventsWritten).toBe(1);
  }, 180_000);

  describe.runIf(!process.env.TEST_MONGODB_URL)('fragments across reads', () => {
    it('does not close a batch on time between fragments; its position is the last fragment', async () => {
      const database = mongo.database('splitwait');
      await client.db(database).createCollection('big');
      const source = new ChangeSource(client, sourceOptions(database));
      const { currentPosition } = await import('../../src/mongo/source.js');
      source.open(await currentPosition(client, source.options));
      try {
        expect((await source.next()).events).toEqual([]);
        await largeUpdate(database, 1);
        // One fragment per getMore (batchSize 1), each held longer than batchWaitMs.
        mongo.harness!.failCommand('getMore', { blockTimeMS: 100, times: 'alwaysOn' });
        const events: ChangeEvent[] = [];
        let position: StreamPosition | null = null;
        while (events.length < 2) {
          const batch = await source.next();
          events.push(...batch.events);
          position = batch.position;
        }
        const update = events[1]!.toDocument();
        expect(update.operationType).toBe('update');
        expect(update.splitEvent).toBeUndefined();
        expect(String(update.fullDocument.b).length).toBe(6 * MB);
        expect(Object.keys(update.updateDescription.updatedFields)).toEqual(['b']);
        await resumesAfterEvent(source, position!, database);
      } finally {
        await client.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
        await source.close();
      }
    }, 60_000);

    it('a read failing between fragments leaves the position before the event, which reads whole again', async () => {
      const database = mongo.database('splitkill');
      await client.db(database).createCollection('big');
      const source = new ChangeSource(client, sourceOptions(database));
      const { currentPosition } = await import('../../src/mongo/source.js');
      source.open(await currentPosition(client, source.options));
      try {
        const before = (await source.next()).position!;
        await largeUpdate(database, 1);
        const insert = await source.next();
        expect(insert.events.map((e) => e.operationType)).toEqual(['insert']);
        // The getMore with the first fragment succeeds; the one for the second fails, without
        // the label that would let the driver resume by itself.
        await client.db('admin').command({
          configureFailPoint: 'failCommand',
          mode: { skip: 1 },
          data: { failCommands: ['getMore'], errorCode: 11600, errorLabels: [] },
        });
        await expect(source.next()).rejects.toThrow(/11600|InterruptedAtShutdown|interrupted/i);
        await client.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
        await source.close();
        source.open(insert.position ?? before);
        const again = await source.next();
        expect(again.events.map((e) => e.operationType)).toEqual(['update']);
        await resumesAfterEvent(source, again.position!, database);
      } finally {
        await client.db('admin').command({ configureFailPoint: 'failCommand', mode: 'off' });
        await source.close();
      }
    }, 60_000);
  });

  describe.runIf(!process.env.TEST_MONGODB_URL)('on a server that cannot split them', () => {
    it('stops with the 10334 sentence and a non-zero exit, the checkpoint before the event', async () => {
      // MongoDB 6.0.8 has no $changeStreamSplitLargeEvent: the relay asks buildInfo and opens
      // its stream without the stage, and the getMore holding the event fails with 10334.
      const old = await MongoHarness.start({ version: '6.0.8' });
      const oldClient = new MongoClient(old.url);
      const database = mongo.database('nosplit');
      const coll = oldClient.db(database).collection<Document>('old');
      try {
        await coll.insertOne({ _id: 1 as never, a: text('a', 9) });
        const relay = spawnRelay([
          'cdc-relay',
          ...relayArgs(servers, database, '--collection', 'old', '--stream-id', 'nosplit'),
          ...(target.dialect === 'cratedb' ? ['--object-policy', 'ignored'] : []),
          '--mongodb-url',
          old.url,
        ]);
        const rows = () => tableRows(target, 'old');
        await waitFor(async () => (await rows()).has('1'), 'the snapshot', 60_000);
        await coll.insertOne({ _id: 2 as never, n: 2 });
        await waitFor(async () => (await rows()).has('2'), 'the insert before the event');
        // A 6 MiB update description and the looked-up 15 MiB document: a 21 MiB event.
        await coll.updateOne({ _id: 1 as never }, { $set: { b: text('b', 6) } });
        const code = await Promise.race([
          relay.exited,
          new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 60_000)),
        ]);
        if (code === 'running') relay.child.kill('SIGKILL');
        expect(code, relay.output()).not.toBe('running');
        expect(code).not.toBe(0);
        expect(relay.output()).toContain(
          `a change event of ${database}.old is larger than MongoDB's 16 MB limit (error 10334: `,
        );
        expect(relay.output()).toMatch(
          /this MongoDB cannot split it: upgrade MongoDB to 6\.0\.9\+ or 7\.0/,
        );
        expect(Object.keys((await rows()).get('1') as Document)).not.toContain('b');

        // Nothing past the event was checkpointed: resumed from the checkpoint, the stream's
        // first event is that update (its large fields projected out so that it can be read).
        const checkpoints = `"${target.schema}"."relay_checkpoints"`;
        const [row] = await query<{ position: string }>(
          target,
          `SELECT position FROM ${checkpoints} WHERE stream_id = 'nosplit'`,
          [],
          checkpoints,
        );
        const position = EJSON.parse(row!.position, { relaxed: false }) as Document;
        const resumed = coll.watch([{ $project: { operationType: 1, documentKey: 1 } }], {
          ...position,
          fullDocument: 'updateLookup',
        });
        const next: Document = await resumed.next();
        await resumed.close();
        expect([next.operationType, next.documentKey]).toEqual(['update', { _id: 1 }]);
      } finally {
        await oldClient.close();
        await old.stop();
      }
    }, 180_000);
  });
});
