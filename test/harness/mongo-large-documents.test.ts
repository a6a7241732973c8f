// Conformance of the MongoDB harness with large documents: replies are capped as a real server
// caps them, whatever batchSize asks. Sources: src/mongo/db/query/find_common.h
// (FindCommon::kMaxBytesToReturnToClientAtOnce = BSONObjMaxUserSize, 16 MiB; BSONObjCursorAppender:
// the first document of a batch always, each further one only while the batch stays within it),
// src/mongo/db/commands/query_cmd/getmore_cmd.cpp (batchedExecute: a getMore's batchSize 0 means
// "as many as fit"; a change-stream event that does not fit is stashed for the next batch),
// src/mongo/db/query/query_request_helper.h (kDefaultBatchSize 101: find's first batch), and
// src/mongo/bson/util/builder.h (BSONObjMaxInternalSize: a larger document fails with
// BSONObjectTooLarge, 10334). Runs against a real replica set with TEST_MONGODB_URL too.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BSON, Long, MongoClient, MongoServerError, type Document, type Timestamp } from 'mongodb';
import { startMongo, type TestMongo } from '../support/mongo/index.js';

const MiB = 1024 * 1024;
const MAX_BATCH_BYTES = 16 * MiB;
const DOCUMENTS = 300;
const PAYLOAD = 2 * MiB;

let mongo: TestMongo;
let client: MongoClient;
let database: string;
let startedAt: Timestamp;
const getMores: string[] = [];

const bytes = (docs: Document[]) => docs.reduce((n, d) => n + BSON.calculateObjectSize(d), 0);
const payload = (i: number) => `${String(i).padStart(4, '0')}`.padEnd(PAYLOAD, 'x');

beforeAll(async () => {
  mongo = await startMongo();
  client = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 5000, monitorCommands: true });
  client.on('commandStarted', (e) => {
    if (e.commandName === 'getMore') getMores.push(String(e.command.collection));
  });
  await client.connect();
  database = mongo.database('large');
  const db = client.db(database);
  startedAt = (await db.command({ ping: 1 })).operationTime as Timestamp;
  for (let i = 0; i < DOCUMENTS; i += 20) {
    await db
      .collection('big')
      .insertMany(
        Array.from({ length: 20 }, (_, k) => ({ _id: (i + k) as never, payload: payload(i + k) })),
      );
  }
}, 120_000);

afterAll(async () => {
  await client?.close();
  await mongo?.stop();
});

/** Runs a cursor command and its getMores by hand, returning every batch. */
async function batches(command: Document, collection: string): Promise<Document[][]> {
  const db = client.db(database);
  const first = await db.command(command, { promoteLongs: false });
  const out: Document[][] = [first.cursor.firstBatch];
  let id = first.cursor.id as Long;
  let total = first.cursor.firstBatch.length;
  while (!id.isZero() && total < DOCUMENTS) {
    const reply = await db.command(
      { getMore: id, collection, batchSize: 1000, maxTimeMS: 1000 },
      { promoteLongs: false },
    );
    out.push(reply.cursor.nextBatch);
    total += reply.cursor.nextBatch.length;
    id = reply.cursor.id as Long;
  }
  return out;
}

describe('replies with large documents', () => {
  it('find: 101 documents in the first batch by default, and no batch over 16 MiB whatever batchSize asks', async () => {
    const db = client.db(database);
    await db
      .collection('small')
      .insertMany(Array.from({ length: 150 }, (_, i) => ({ _id: i as never })));
    const small = await db.command({ find: 'small' });
    expect(small.cursor.firstBatch).toHaveLength(101);

    const found = await batches({ find: 'big', sort: { _id: 1 }, batchSize: 1000 }, 'big');
    expect(found.flat().map((d) => d._id)).toEqual(Array.from({ length: DOCUMENTS }, (_, i) => i));
    expect(found.length).toBeGreaterThanOrEqual(Math.ceil((DOCUMENTS * PAYLOAD) / MAX_BATCH_BYTES));
    for (const batch of found) {
      expect(batch.length).toBeGreaterThan(0);
      expect(bytes(batch)).toBeLessThanOrEqual(MAX_BATCH_BYTES);
    }
  }, 120_000);

  it('a change stream: no batch over 16 MiB, every event once, in order', async () => {
    const stage = { $changeStream: { startAtOperationTime: startedAt } };
    const found = await batches(
      { aggregate: 'big', pipeline: [stage, { $match: { operationType: 'insert' } }], cursor: {} },
      'big',
    );
    const events = found.flat();
    expect(events.map((e) => e.documentKey._id)).toEqual(
      Array.from({ length: DOCUMENTS }, (_, i) => i),
    );
    expect(found.filter((b) => b.length > 0).length).toBeGreaterThan(10);
    for (const batch of found) expect(bytes(batch)).toBeLessThanOrEqual(MAX_BATCH_BYTES);
  }, 120_000);

  it('the driver receives 300 × 2 MiB change events through several getMores and resumes between them', async () => {
    const coll = client.db(database).collection('big');
    const before = getMores.length;
    const stream = coll.watch([{ $match: { operationType: 'insert' } }], {
      startAtOperationTime: startedAt,
      batchSize: 1000,
    });
    let n = 0;
    let token: unknown;
    while (n < DOCUMENTS / 2) {
      const event = (await stream.next()) as Document;
      expect(event.documentKey._id).toBe(n);
      n++;
      token = event._id;
    }
    await stream.close();
    const resumed = coll.watch([{ $match: { operationType: 'insert' } }], {
      resumeAfter: token as Document,
      batchSize: 1000,
    });
    while (n < DOCUMENTS) {
      const event = (await resumed.next()) as Document;
      expect(event.documentKey._id).toBe(n);
      expect(event.fullDocument.payload).toBe(payload(n));
      n++;
    }
    await resumed.close();
    expect(getMores.length - before).toBeGreaterThan(10);
  }, 120_000);

  it('a result document over 16 MB is refused with BSONObjectTooLarge, and the server goes on answering', async () => {
    const fields = Object.fromEntries(
      Array.from({ length: 9 }, (_, i) => [`copy${i}`, '$payload']),
    );
    const error = await client
      .db(database)
      .collection('big')
      .aggregate([{ $match: { _id: 0 } }, { $project: fields }])
      .toArray()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MongoServerError);
    expect((error as MongoServerError).code).toBe(10334);
    expect((await client.db(database).command({ ping: 1 })).ok).toBe(1);
  }, 60_000);
});
