// Batches taken from the driver's replies: a batch that closes inside a reply (by bytes) must
// resume after its own last event, one that used up the reply at the reply's
// postBatchResumeToken, and the driver's own resume after a failed getMore must start after the
// last event handed out, not after the first of its reply (change-streams specification,
// "Resume Process"). The relay takes the events of a reply without one tryNext() each, so it
// caches these tokens itself.
import { describe, expect, it } from 'vitest';
import type { Document } from 'mongodb';
import type { ChangeEvent } from '../../src/convert/change.js';
import {
  ChangeSource,
  currentPosition,
  type SourceOptions,
  type StreamPosition,
} from '../../src/mongo/source.js';
import { client, mongo, useSource } from '../support/relay.js';

useSource();

function options(database: string): SourceOptions {
  return {
    database,
    collections: ['c'],
    fullDocument: 'updateLookup',
    filter: [],
    // One reply holds the whole backlog: the relay's batches are cut from it by bytes.
    batchSize: 100,
    batchWaitMs: 200,
    batchBytes: 64 * 1024 * 1024,
  };
}

/** About 1.1 KB of BSON per insert event: a batch closed at 3000 bytes takes three. */
const PADDING = 'x'.repeat(1000);

async function insert(database: string, ids: number[]): Promise<void> {
  const coll = client.db(database).collection<Document>('c');
  for (const id of ids) await coll.insertOne({ _id: id as never, padding: PADDING });
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
const oids = (events: ChangeEvent[]) => events.map((e) => Number(e.oid()));

/** Reads until `count` events came (or a read came back empty). */
async function readEvents(source: ChangeSource, count: number): Promise<ChangeEvent[]> {
  const events: ChangeEvent[] = [];
  while (events.length < count) {
    const batch = await source.next();
    if (batch.events.length === 0) break;
    events.push(...batch.events);
  }
  return events;
}

async function backlog(name: string): Promise<{ database: string; start: StreamPosition }> {
  const database = mongo.database(name);
  await client.db(database).createCollection('c');
  const start = await currentPosition(client, options(database));
  await insert(database, range(0, 10));
  return { database, start };
}

describe('change-stream batches cut from one reply', () => {
  it('resume after their own last event, and after the whole reply once it is used up', async () => {
    const { database, start } = await backlog('cut');
    const source = new ChangeSource(client, options(database));
    source.open(start);
    try {
      const first = await source.next(3000);
      expect(oids(first.events)).toEqual([0, 1, 2]);
      // Inside the reply: the token of the batch's last event.
      expect(first.position).toEqual({ startAfter: first.events.at(-1)!._id });

      const reopened = new ChangeSource(client, options(database));
      reopened.open(first.position!);
      try {
        expect(oids(await readEvents(reopened, 7))).toEqual(range(3, 10));
      } finally {
        await reopened.close();
      }

      const rest = await source.next();
      expect(oids(rest.events)).toEqual(range(3, 10));
      // The reply used up: a stream reopened there sees only what is written after.
      const after = new ChangeSource(client, options(database));
      after.open(rest.position!);
      try {
        await insert(database, [10]);
        expect(oids(await readEvents(after, 1))).toEqual([10]);
      } finally {
        await after.close();
      }
    } finally {
      await source.close();
    }
  });

  it('are followed, after a getMore lost its cursor, by the events after the last one read', async (ctx) => {
    // Killing the server's cursor needs the harness.
    if (!mongo.harness) ctx.skip();
    const { database, start } = await backlog('lost');
    const source = new ChangeSource(client, options(database));
    source.open(start);
    try {
      expect(oids((await source.next(3000)).events)).toEqual([0, 1, 2]);
      // The getMore after the reply is used up gets CursorNotFound, and the driver resumes
      // from the token it caches: a token left at the reply's first event would hand out
      // events 1-9 again.
      mongo.harness!.killChangeStreamCursors();
      await insert(database, [10, 11]);
      expect(oids(await readEvents(source, 9))).toEqual(range(3, 12));
    } finally {
      await source.close();
    }
  });
});
