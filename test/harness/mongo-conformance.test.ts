// Conformance of the MongoDB harness, written against the driver's public API only, so that it
// also runs against a real replica set (TEST_MONGODB_URL) and any difference shows up here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Binary,
  Code,
  type Collection,
  Decimal128,
  Long,
  MongoClient,
  MongoNetworkError,
  MongoServerError,
  ObjectId,
  Timestamp,
  type ChangeStream,
  type Document,
} from 'mongodb';
import { startMongo, type TestMongo } from '../support/mongo/index.js';

let mongo: TestMongo;
let client: MongoClient;

beforeAll(async () => {
  mongo = await startMongo();
  client = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 5000 });
  await client.connect();
});

afterAll(async () => {
  await client?.close();
  await mongo?.stop();
});

/** Opens the stream on the server before the test writes (watch() itself is lazy). */
async function openStream(stream: ChangeStream<Document>) {
  await stream.tryNext();
  return stream;
}

/** The next `n` events, loosely typed: the tests check shapes the driver's union types hide. */
async function take(stream: ChangeStream<Document>, n: number): Promise<Document[]> {
  const events: Document[] = [];
  while (events.length < n) events.push(await stream.next());
  return events;
}

describe('handshake', () => {
  it('answers hello as the writable primary of replica set rs0', async () => {
    const hello = await client.db('admin').command({ hello: 1 });
    expect(hello.isWritablePrimary).toBe(true);
    expect(hello.setName).toBeTypeOf('string');
    expect(hello.hosts).toContain(hello.me);
    expect(hello.primary).toBe(hello.me);
    expect(hello.maxWireVersion).toBeGreaterThanOrEqual(17);
    expect(hello.logicalSessionTimeoutMinutes).toBeGreaterThan(0);
    expect(hello.operationTime).toBeInstanceOf(Timestamp);
  });

  // Sources: mongodb/specifications source/server-discovery-and-monitoring/server-monitoring.md
  // ("Awaitable hello or legacy hello Server Specification", "Streaming Protocol") and
  // server-discovery-and-monitoring.md ("topologyVersion"); the server's
  // src/mongo/db/repl/replication_info.cpp (31368, 31372) and topology_coordinator.cpp (31382).
  it('answers hello with a topologyVersion and waits maxAwaitTimeMS when asked with it', async () => {
    const admin = client.db('admin');
    const raw = { promoteLongs: false } as const;
    const hello = await admin.command({ hello: 1 }, raw);
    const version = hello.topologyVersion as { processId: ObjectId; counter: Long };
    expect(Object.keys(version)).toEqual(['processId', 'counter']);
    expect(version.processId).toBeInstanceOf(ObjectId);
    expect(version.counter).toBeInstanceOf(Long);

    const started = Date.now();
    const awaited = await admin.command(
      { hello: 1, topologyVersion: version, maxAwaitTimeMS: 500 },
      raw,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(awaited.isWritablePrimary).toBe(true);
    expect(awaited.topologyVersion).toEqual(version);

    // Another process's topologyVersion (the server restarted since): the answer is at once.
    const fresh = Date.now();
    const other = { processId: new ObjectId(), counter: Long.fromNumber(0) };
    await admin.command({ hello: 1, topologyVersion: other, maxAwaitTimeMS: 10_000 });
    expect(Date.now() - fresh).toBeLessThan(5000);

    await expect(admin.command({ hello: 1, topologyVersion: version })).rejects.toMatchObject({
      code: 31368,
    });
    await expect(admin.command({ hello: 1, maxAwaitTimeMS: 100 })).rejects.toMatchObject({
      code: 31368,
    });
    const ahead = { processId: version.processId, counter: version.counter.add(1) };
    await expect(
      admin.command({ hello: 1, topologyVersion: ahead, maxAwaitTimeMS: 100 }),
    ).rejects.toMatchObject({ code: 31382 });
  });

  it("streams hello to the driver's monitor: every heartbeat awaited, none failed", async () => {
    // The driver monitors a server whose hello has a topologyVersion with the streaming
    // protocol: one awaitable hello with exhaustAllowed, then replies with moreToCome, one per
    // maxAwaitTimeMS (heartbeatFrequencyMS). A reply without moreToCome fails its heartbeat.
    const monitored = new MongoClient(mongo.url, {
      heartbeatFrequencyMS: 500,
      serverSelectionTimeoutMS: 5000,
    });
    const heartbeats: Array<{ awaited: boolean; failed: boolean }> = [];
    monitored.on('serverHeartbeatSucceeded', (e) =>
      heartbeats.push({ awaited: e.awaited, failed: false }),
    );
    monitored.on('serverHeartbeatFailed', (e) =>
      heartbeats.push({ awaited: e.awaited, failed: true }),
    );
    try {
      await monitored.connect();
      await new Promise((r) => setTimeout(r, 2500));
    } finally {
      await monitored.close();
    }
    // The first check is the monitor's handshake; every one after it is streamed.
    const streamed = heartbeats.slice(1);
    expect(heartbeats.filter((h) => h.failed)).toEqual([]);
    expect(streamed.length).toBeGreaterThanOrEqual(3);
    expect(streamed.every((h) => h.awaited)).toBe(true);
  });

  it('connects with directConnection=true as well as replicaSet', async () => {
    const url = new URL(mongo.url);
    url.searchParams.delete('replicaSet');
    url.searchParams.set('directConnection', 'true');
    const direct = new MongoClient(url.toString(), { serverSelectionTimeoutMS: 5000 });
    try {
      expect((await direct.db('admin').command({ ping: 1 })).ok).toBe(1);
      const info = await direct.db('admin').command({ buildInfo: 1 });
      expect(info.version).toMatch(/^\d+\.\d+/);
    } finally {
      await direct.close();
    }
  });
});

describe('CRUD', () => {
  it('inserts, rejects a duplicate _id with 11000, and keeps BSON types exact', async () => {
    const coll = client.db(mongo.database()).collection('crud');
    const id = new ObjectId();
    await coll.insertMany([
      {
        _id: id,
        big: Long.fromString('9007199254740993'),
        dec: Decimal128.fromString('42.42'),
        at: new Date(-1000),
      },
      { _id: new ObjectId(), n: 2 },
    ]);
    await expect(coll.insertOne({ _id: id })).rejects.toMatchObject({ code: 11000 });
    const doc = await coll.findOne({ _id: id }, { promoteLongs: false });
    expect(doc?.big).toEqual(Long.fromString('9007199254740993'));
    expect(doc?.dec.toString()).toBe('42.42');
    expect(doc?.at).toEqual(new Date(-1000));
    expect(await coll.countDocuments()).toBe(2);
    expect(await coll.countDocuments({ n: 2 })).toBe(1);
    expect(await coll.estimatedDocumentCount()).toBe(2);
  });

  it('applies update operators, replacements, upserts and multi updates', async () => {
    const coll = client.db(mongo.database()).collection<Document>('upd');
    await coll.insertOne({ _id: 1 as never, a: 1, tags: ['x', 'y', 'z'], old: 1, list: [1, 2] });
    await coll.updateOne({ _id: 1 as never }, {
      $set: { 'sub.k': 'v' },
      $inc: { a: 4 },
      $unset: { old: '' },
      $push: { list: { $each: [3, 4, 5], $slice: -3 } },
      $pull: { tags: 'y' },
    } as Document);
    await coll.updateOne({ _id: 1 as never }, { $rename: { a: 'b' } });
    expect(await coll.findOne({ _id: 1 as never })).toEqual({
      _id: 1,
      tags: ['x', 'z'],
      list: [3, 4, 5],
      sub: { k: 'v' },
      b: 5,
    });
    const up = await coll.updateOne({ _id: 2 as never }, { $set: { c: 1 } }, { upsert: true });
    expect(up.upsertedId).toBe(2);
    await coll.replaceOne({ _id: 2 as never }, { d: 1 });
    expect(await coll.findOne({ _id: 2 as never })).toEqual({ _id: 2, d: 1 });
    await coll.insertMany([{ g: 1 }, { g: 1 }, { g: 2 }]);
    const many = await coll.updateMany({ g: 1 }, { $set: { h: true } });
    expect(many.modifiedCount).toBe(2);
    const same = await coll.updateOne({ _id: 2 as never }, { $set: { d: 1 } });
    expect(same.matchedCount).toBe(1);
    expect(same.modifiedCount).toBe(0);
  });

  it('finds with filter, projection, sort, skip, limit and getMore batches', async () => {
    const coll = client.db(mongo.database()).collection<Document>('find');
    await coll.insertMany(
      Array.from({ length: 250 }, (_, i) => ({ _id: i as never, v: i % 10, w: 'x' })),
    );
    const all = await coll.find({}, { batchSize: 7 }).toArray();
    expect(all).toHaveLength(250);
    const page = await coll
      .find({ v: { $gte: 5 } }, { projection: { w: 0 }, sort: { _id: -1 }, skip: 2, limit: 3 })
      .toArray();
    expect(page).toEqual([
      { _id: 247, v: 7 },
      { _id: 246, v: 6 },
      { _id: 245, v: 5 },
    ]);
    const agg = await coll
      .aggregate([{ $match: { v: 1 } }, { $sort: { _id: 1 } }, { $limit: 2 }])
      .toArray();
    expect(agg.map((d) => d._id)).toEqual([1, 11]);
  });

  it('findOneAndUpdate, findOneAndDelete, deletes with limit 1 and 0', async () => {
    const coll = client.db(mongo.database()).collection<Document>('fam');
    await coll.insertMany([
      { _id: 1 as never, n: 1 },
      { _id: 2 as never, n: 1 },
      { _id: 3 as never, n: 2 },
    ]);
    const after = await coll.findOneAndUpdate(
      { _id: 1 as never },
      { $inc: { n: 1 } },
      { returnDocument: 'after' },
    );
    expect(after).toEqual({ _id: 1, n: 2 });
    const removed = await coll.findOneAndDelete({ _id: 3 as never });
    expect(removed).toEqual({ _id: 3, n: 2 });
    expect((await coll.deleteOne({ n: { $gte: 1 } })).deletedCount).toBe(1);
    expect((await coll.deleteMany({})).deletedCount).toBe(1);
  });

  it('creates, lists and drops collections and databases', async () => {
    const db = client.db(mongo.database());
    await db.createCollection('a');
    await expect(db.createCollection('a')).rejects.toMatchObject({ code: 48 });
    await db.collection('b').insertOne({ x: 1 });
    await db.collection('b').createIndex({ x: 1 });
    const names = (await db.listCollections({}, { nameOnly: true }).toArray())
      .map((c) => c.name)
      .sort();
    expect(names).toEqual(['a', 'b']);
    expect(await db.collection('a').drop()).toBe(true);
    const dbs = await client.db('admin').admin().listDatabases();
    expect(dbs.databases.map((d) => d.name)).toContain(db.databaseName);
    await db.dropDatabase();
    expect(await db.listCollections().toArray()).toEqual([]);
  });

  it('refuses to store a document over 16 MiB: insert 2, update 17419, upsert 17420', async () => {
    // Sources: BSONObjMaxUserSize (src/mongo/bson/bsonobj.h, 16 MiB); fixDocumentForInsert in
    // src/mongo/db/ops/insert.cpp (BadValue, "object to insert too large"); update_stage.cpp
    // (17419, "Resulting document after update is larger than") and upsert_stage.cpp (17420).
    const MiB = 1024 * 1024;
    const coll = client.db(mongo.database()).collection<Document>('limit');
    await expect(
      coll.insertOne({ _id: 1 as never, a: 'a'.repeat(16 * MiB) }),
    ).rejects.toMatchObject({
      code: 2,
      message: expect.stringMatching(/^object to insert too large/),
    });
    await coll.insertOne({ _id: 2 as never, a: 'a'.repeat(9 * MiB) });
    // Past 17 MiB, where js-bson can no longer encode the document whole.
    await expect(
      coll.updateOne({ _id: 2 as never }, { $set: { b: 'b'.repeat(9 * MiB) } }),
    ).rejects.toMatchObject({
      code: 17419,
      message: `Resulting document after update is larger than ${16 * MiB}`,
    });
    await expect(
      coll.updateOne({ _id: 2 as never }, { $set: { b: 'b'.repeat(7 * MiB) } }),
    ).rejects.toMatchObject({ code: 17419 });
    await expect(
      coll.updateOne(
        { _id: 3 as never },
        { $set: { a: 'a'.repeat(9 * MiB), b: 'b'.repeat(7 * MiB) } },
        { upsert: true },
      ),
    ).rejects.toMatchObject({ code: 17420 });
    const stored = await coll.find().toArray();
    expect(stored.map((d) => [d._id, Object.keys(d)])).toEqual([[2, ['_id', 'a']]]);
    expect(stored[0]!.a).toBe('a'.repeat(9 * MiB));
  });
});

describe('change streams', () => {
  it('reports every operation type with its real shape', async () => {
    const db = client.db(mongo.database());
    const coll = db.collection<Document>('events');
    const stream = await openStream(coll.watch());
    await coll.insertOne({ _id: 1 as never, a: 1, arr: [1, 2, 3], sub: { x: 1 } });
    await coll.updateOne({ _id: 1 as never }, {
      $set: { 'sub.y': 2, a: 2 },
      $unset: { 'sub.x': '' },
      $push: { arr: 4 },
    } as Document);
    await coll.updateOne({ _id: 1 as never }, [{ $set: { arr: [1] } }]);
    await coll.replaceOne({ _id: 1 as never }, { b: 1 });
    await coll.deleteOne({ _id: 1 as never });
    const [ins, upd, trunc, rep, del] = await take(stream, 5);
    expect(ins).toMatchObject({
      operationType: 'insert',
      ns: { db: db.databaseName, coll: 'events' },
      documentKey: { _id: 1 },
      fullDocument: { _id: 1, a: 1 },
    });
    expect(ins!._id).toHaveProperty('_data');
    expect(ins!.clusterTime).toBeInstanceOf(Timestamp);
    expect((ins as { wallTime?: Date }).wallTime).toBeInstanceOf(Date);
    expect(upd).toMatchObject({
      operationType: 'update',
      updateDescription: {
        updatedFields: { a: 2, 'sub.y': 2, 'arr.3': 4 },
        removedFields: ['sub.x'],
        truncatedArrays: [],
      },
    });
    expect(upd).not.toHaveProperty('fullDocument');
    expect(trunc).toMatchObject({
      operationType: 'update',
      updateDescription: { truncatedArrays: [{ field: 'arr', newSize: 1 }] },
    });
    expect(rep).toMatchObject({ operationType: 'replace', fullDocument: { _id: 1, b: 1 } });
    expect(del).toMatchObject({ operationType: 'delete', documentKey: { _id: 1 } });
    expect(del).not.toHaveProperty('fullDocument');
    await stream.close();
  });

  it('looks up the current document for updateLookup, null once it is gone', async () => {
    const coll = client.db(mongo.database()).collection<Document>('lookup');
    const stream = await openStream(coll.watch([], { fullDocument: 'updateLookup' }));
    await coll.insertOne({ _id: 1 as never, n: 1 });
    await coll.updateOne({ _id: 1 as never }, { $inc: { n: 1 } });
    await coll.updateOne({ _id: 1 as never }, { $set: { s: 'x'.repeat(1000) } });
    const events = await take(stream, 3);
    // The lookup happens when the event is read: both updates see the document's state then,
    // grown since the first one, and the rest of each event around it stays whole.
    const now = { _id: 1, n: 2, s: 'x'.repeat(1000) };
    expect(events[1]).toMatchObject({
      fullDocument: now,
      ns: { coll: 'lookup' },
      documentKey: { _id: 1 },
      updateDescription: { updatedFields: { n: 2 }, removedFields: [] },
    });
    expect(events[2]).toMatchObject({ fullDocument: now, documentKey: { _id: 1 } });
    await coll.deleteOne({ _id: 1 as never });
    await take(stream, 1);
    await stream.close();
    const late = await openStream(
      coll.watch([], { fullDocument: 'updateLookup', startAfter: events[0]!._id }),
    );
    const [update] = await take(late, 1);
    expect(update).toMatchObject({ operationType: 'update', fullDocument: null });
    await late.close();
  });

  it('serves post- and pre-images when the collection keeps them', async () => {
    const db = client.db(mongo.database());
    await db.createCollection('images', { changeStreamPreAndPostImages: { enabled: true } });
    await db.createCollection('plain');
    const images = db.collection<Document>('images');
    const plain = db.collection<Document>('plain');
    const a = await openStream(
      images.watch([], {
        fullDocument: 'whenAvailable',
        fullDocumentBeforeChange: 'whenAvailable',
      }),
    );
    const b = await openStream(plain.watch([], { fullDocument: 'whenAvailable' }));
    await images.insertOne({ _id: 1 as never, n: 1 });
    await images.updateOne({ _id: 1 as never }, { $set: { n: 2 } });
    await plain.insertOne({ _id: 1 as never, n: 1 });
    await plain.updateOne({ _id: 1 as never }, { $set: { n: 2 } });
    const [, withImages] = await take(a, 2);
    expect(withImages).toMatchObject({
      fullDocument: { _id: 1, n: 2 },
      fullDocumentBeforeChange: { _id: 1, n: 1 },
    });
    const [, without] = await take(b, 2);
    expect(without).toMatchObject({ fullDocument: null });
    await a.close();
    await b.close();
    const required = plain.watch([], {
      fullDocument: 'required',
      startAtOperationTime: withImages!.clusterTime,
    });
    await expect(required.next()).rejects.toBeInstanceOf(MongoServerError);
    await required.close();
  });

  it('resumes after a token, starts at an operation time, and applies later stages', async () => {
    const coll = client.db(mongo.database()).collection<Document>('resume');
    const stream = await openStream(coll.watch([{ $match: { operationType: 'insert' } }]));
    await coll.insertOne({ _id: 1 as never });
    await coll.deleteOne({ _id: 1 as never });
    await coll.insertOne({ _id: 2 as never });
    await coll.insertOne({ _id: 3 as never });
    const [first, second] = await take(stream, 2);
    expect(second!.documentKey).toEqual({ _id: 2 });
    await stream.close();
    const resumed = coll.watch([], { resumeAfter: first!._id });
    const after = await take(resumed, 3);
    expect(after.map((e) => e.operationType)).toEqual(['delete', 'insert', 'insert']);
    await resumed.close();
    const atTime = coll.watch([], { startAtOperationTime: second!.clusterTime });
    expect((await take(atTime, 1))[0]!.documentKey).toEqual({ _id: 2 });
    await atTime.close();
  });

  it('returns an empty batch with a postBatchResumeToken when idle', async () => {
    const coll = client.db(mongo.database()).collection<Document>('idle');
    const stream = coll.watch([], { maxAwaitTimeMS: 200 });
    const started = Date.now();
    expect(await stream.tryNext()).toBeNull();
    expect(await stream.tryNext()).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(stream.resumeToken).toHaveProperty('_data');
    await coll.insertOne({ _id: 1 as never });
    const resumed = coll.watch([], { resumeAfter: stream.resumeToken });
    expect((await take(resumed, 1))[0]!.operationType).toBe('insert');
    await stream.close();
    await resumed.close();
  });

  it('invalidates a collection stream on drop and rename; startAfter continues past it', async () => {
    const db = client.db(mongo.database());
    const coll = db.collection<Document>('gone');
    await coll.insertOne({ _id: 0 as never });
    const stream = await openStream(coll.watch());
    await coll.insertOne({ _id: 1 as never });
    await coll.drop();
    const [, drop, invalidate] = await take(stream, 3);
    expect(drop).toMatchObject({ operationType: 'drop', ns: { coll: 'gone' } });
    expect(invalidate!.operationType).toBe('invalidate');
    expect(stream.closed || (await stream.tryNext()) === null).toBe(true);
    await stream.close();
    await expect(coll.watch([], { resumeAfter: invalidate!._id }).next()).rejects.toBeInstanceOf(
      MongoServerError,
    );
    const again = coll.watch([], { startAfter: invalidate!._id });
    await coll.insertOne({ _id: 2 as never });
    expect((await take(again, 1))[0]).toMatchObject({
      operationType: 'insert',
      documentKey: { _id: 2 },
    });
    await again.close();

    const renaming = await openStream(coll.watch());
    await coll.rename('renamed');
    const [rename, inv] = await take(renaming, 2);
    expect(rename).toMatchObject({
      operationType: 'rename',
      to: { db: db.databaseName, coll: 'renamed' },
    });
    expect(inv!.operationType).toBe('invalidate');
    await renaming.close();
  });

  it('watches a database and the cluster; dropDatabase invalidates the database stream', async () => {
    const db = client.db(mongo.database());
    const dbStream = await openStream(db.watch());
    const clusterStream = await openStream(client.watch());
    await db.collection('x').insertOne({ _id: 1 as never });
    await db.collection('y').insertOne({ _id: 1 as never });
    await db.dropDatabase();
    const events = await take(dbStream, 6);
    expect(events.map((e) => e.operationType)).toEqual([
      'insert',
      'insert',
      'drop',
      'drop',
      'dropDatabase',
      'invalidate',
    ]);
    const cluster = await take(clusterStream, 5);
    expect(cluster.map((e) => e.operationType)).toEqual([
      'insert',
      'insert',
      'drop',
      'drop',
      'dropDatabase',
    ]);
    await dbStream.close();
    await clusterStream.close();
  });
});

// Sources: src/mongo/db/pipeline/resume_token.cpp and src/mongo/db/storage/key_string.cpp
// (KeyString token, _typeBits, 40647, 9, 40649),
// src/mongo/db/pipeline/document_source_change_stream_add_post_image.cpp and
// ..._add_pre_image.cpp (47),
// src/mongo/db/pipeline/pipeline.cpp (20: stage not permitted in a $changeStream pipeline),
// src/mongo/db/query/getmore_cmd.cpp (awaitData getMore waits for a matching event).
describe('resume tokens, errors and waits as a 7.0 server gives them', () => {
  it('gives opaque upper-case hex tokens whose length follows the event, _typeBits for doubles', async () => {
    const coll = client.db(mongo.database()).collection<Document>('tokens');
    const stream = await openStream(coll.watch());
    await coll.insertMany([{ _id: 1 as never }, { _id: 'a much longer _id value' as never }]);
    await coll.insertOne({ _id: 1.5 as never });
    const [short, long, double] = await take(stream, 3);
    for (const event of [short, long, double]) expect(event!._id._data).toMatch(/^[0-9A-F]+$/);
    expect(long!._id._data.length).toBeGreaterThan(short!._id._data.length);
    expect(short!._id).not.toHaveProperty('_typeBits');
    expect(double!._id._typeBits).toBeInstanceOf(Binary);
    expect(stream.resumeToken).toHaveProperty('_data');
    await stream.close();
    // Each token resumes right after its own event.
    const resumed = coll.watch([], { resumeAfter: short!._id });
    expect((await take(resumed, 1))[0]!.documentKey).toEqual({ _id: 'a much longer _id value' });
    await resumed.close();
  });

  it('refuses malformed tokens with 40647, 9 and 40649', async () => {
    const coll = client.db(mongo.database()).collection<Document>('badtokens');
    const open = (token: unknown) =>
      client.db(coll.dbName).command({
        aggregate: coll.collectionName,
        pipeline: [{ $changeStream: { resumeAfter: token } }],
        cursor: {},
      });
    await expect(open({ _data: 42 })).rejects.toMatchObject({ code: 40647 });
    await expect(open({})).rejects.toMatchObject({ code: 40647 });
    await expect(open({ _data: 'not hex' })).rejects.toMatchObject({ code: 9 });
    await expect(open({ _data: '' })).rejects.toMatchObject({ code: 40649 });
  });

  it('fails fullDocument and fullDocumentBeforeChange "required" without images with 47', async () => {
    const coll = client.db(mongo.database()).collection<Document>('required');
    await coll.insertOne({ _id: 1 as never, n: 1 });
    const after = await openStream(coll.watch([], { fullDocument: 'required' }));
    const before = await openStream(coll.watch([], { fullDocumentBeforeChange: 'required' }));
    await coll.updateOne({ _id: 1 as never }, { $set: { n: 2 } });
    await expect(after.next()).rejects.toMatchObject({ code: 47, codeName: 'NoMatchingDocument' });
    await expect(before.next()).rejects.toMatchObject({ code: 47, codeName: 'NoMatchingDocument' });
    await after.close();
    await before.close();
  });

  it('refuses stages a change stream does not allow with 20, unknown stages with 40324', async () => {
    const coll = client.db(mongo.database()).collection<Document>('stages');
    for (const stage of [{ $group: { _id: null } }, { $sort: { _id: 1 } }, { $limit: 1 }]) {
      const stream = coll.watch([stage]);
      await expect(stream.tryNext()).rejects.toMatchObject({
        code: 20,
        codeName: 'IllegalOperation',
      });
      await stream.close();
    }
    const allowed = coll.watch([
      { $match: { operationType: 'insert' } },
      { $project: { documentKey: 1 } },
      { $addFields: { x: 1 } },
      { $set: { y: 1 } },
      { $unset: 'y' },
    ]);
    expect(await allowed.tryNext()).toBeNull();
    await allowed.close();
    const unknown = coll.watch([{ $noSuchStage: {} }]);
    await expect(unknown.tryNext()).rejects.toMatchObject({ code: 40324 });
    await unknown.close();
  });

  it('an empty getMore waits out maxAwaitTimeMS unless a matching event arrives', async () => {
    const db = client.db(mongo.database());
    const watched = db.collection<Document>('waited');
    const other = db.collection<Document>('elsewhere');
    const stream = await openStream(watched.watch([], { maxAwaitTimeMS: 600 }));
    let started = Date.now();
    setTimeout(() => void other.insertOne({ _id: 1 as never }), 100);
    expect(await stream.tryNext()).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    started = Date.now();
    setTimeout(() => void watched.insertOne({ _id: 1 as never }), 100);
    const event = await stream.next();
    expect(event.operationType).toBe('insert');
    expect(Date.now() - started).toBeLessThan(550);
    await stream.close();
  });
});

// configureFailPoint as a mongod with enableTestCommands=1 answers it (a real server under
// TEST_MONGODB_URL needs that parameter). Sources: src/mongo/db/commands/fail_point_cmd.cpp,
// src/mongo/util/fail_point.cpp (modes, `count`), src/mongo/db/commands.cpp
// (evaluateFailCommandFailPoint, shouldActivateFailCommandFailPoint), src/mongo/db/query/
// getmore_cmd.cpp (failGetMoreAfterCursorCheckout), src/mongo/db/error_labels.cpp (labels);
// unified test format "Server Fail Points"; change-streams-resume-errorLabels.yml.
describe('fail points (configureFailPoint)', () => {
  const admin = () => client.db('admin');
  const configure = (command: Document) => admin().command(command);
  const off = async () => {
    await configure({ configureFailPoint: 'failCommand', mode: 'off' });
    await configure({ configureFailPoint: 'failGetMoreAfterCursorCheckout', mode: 'off' });
  };
  const failCommand = (mode: unknown, data: Document) =>
    configure({ configureFailPoint: 'failCommand', mode, data });

  it('answers with the count of earlier activations; refuses unknown fail points and modes', async () => {
    await off();
    const coll = client.db(mongo.database()).collection<Document>('count');
    await failCommand('alwaysOn', { failCommands: ['count'], errorCode: 2 });
    await expect(coll.estimatedDocumentCount()).rejects.toMatchObject({ code: 2 });
    await expect(coll.estimatedDocumentCount()).rejects.toMatchObject({ code: 2 });
    const reply = await configure({ configureFailPoint: 'failCommand', mode: 'off' });
    expect(Number(reply.count)).toBeGreaterThanOrEqual(2);
    expect(await coll.estimatedDocumentCount()).toBe(0);
    await expect(
      configure({ configureFailPoint: 'noSuchFailPoint', mode: 'off' }),
    ).rejects.toMatchObject({ code: 266, codeName: 'FailPointSetFailed' });
    await expect(
      configure({ configureFailPoint: 'failCommand', mode: 'sometimes' }),
    ).rejects.toMatchObject({ code: 2 });
    await expect(
      client.db(mongo.database()).command({ configureFailPoint: 'failCommand', mode: 'off' }),
    ).rejects.toMatchObject({ code: 13 });
  });

  it('fails {times: n} matching commands, then turns itself off; {skip: n} lets n pass first', async () => {
    const coll = client.db(mongo.database()).collection<Document>('modes');
    await coll.insertOne({ _id: 1 as never });
    await failCommand({ times: 2 }, { failCommands: ['find'], errorCode: 96 });
    await expect(coll.findOne({})).rejects.toMatchObject({ code: 96 });
    expect(await coll.countDocuments()).toBe(1); // aggregate: not counted against times
    await expect(coll.findOne({})).rejects.toMatchObject({ code: 96 });
    expect(await coll.findOne({})).toEqual({ _id: 1 });
    await failCommand({ skip: 1 }, { failCommands: ['find'], errorCode: 96 });
    expect(await coll.findOne({})).toEqual({ _id: 1 });
    await expect(coll.findOne({})).rejects.toMatchObject({ code: 96 });
    await expect(coll.findOne({})).rejects.toMatchObject({ code: 96 });
    await off();
    expect(await coll.findOne({})).toEqual({ _id: 1 });
  });

  it("a replica set's NotPrimaryError carries its topologyVersion; a shutdown error does not", async () => {
    // service_entry_point_common.cpp appendErrorLabelsAndTopologyVersion: NotPrimaryError codes
    // always (error_codes.yml: 189, 10107, 11602, 13435, 13436); ShutdownError codes only in
    // quiesce mode. A client ignores such an error whose topologyVersion is not newer than the
    // one it knows (server-discovery-and-monitoring.md, "topologyVersion").
    // A client of its own: after a shutdown error it knows the server as Unknown until its
    // monitor's next hello, which a streaming monitor receives only after maxAwaitTimeMS.
    const probe = new MongoClient(mongo.url, {
      appName: 'tvprobe',
      serverSelectionTimeoutMS: 5000,
    });
    const db = probe.db(mongo.database());
    const { topologyVersion } = await client.db('admin').command({ hello: 1 });
    const errorOf = (promise: Promise<unknown>) =>
      promise.then(
        () => expect.fail('the command succeeded'),
        (error: MongoServerError) => error.errorResponse,
      );
    try {
      const data = { failCommands: ['find'], appName: 'tvprobe' };
      await failCommand({ times: 1 }, { ...data, errorCode: 10107 });
      const notPrimary = await errorOf(db.command({ find: 'tv' }));
      expect(notPrimary.code).toBe(10107);
      expect(notPrimary.topologyVersion).toEqual(topologyVersion);
      await failCommand({ times: 1 }, { ...data, errorCode: 91 });
      const shutdown = await errorOf(db.command({ find: 'tv' }));
      expect(shutdown.code).toBe(91);
      expect(shutdown).not.toHaveProperty('topologyVersion');
    } finally {
      await probe.close();
    }
    await off();
  });

  it('a failCommand error carries exactly the errorLabels given; without them, what the server computes', async () => {
    const coll = client.db(mongo.database()).collection<Document>('labels');
    await coll.insertOne({ _id: 1 as never });
    // A getMore failed by failCommand never checked out its cursor: no change-stream label.
    const plain = await openStream(coll.watch());
    await failCommand({ times: 1 }, { failCommands: ['getMore'], errorCode: 6 });
    const error = await plain.next().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 6 });
    expect((error as MongoServerError).errorLabels).toEqual([]);
    await plain.close();
    // Given labels are the labels: this one resumes.
    const labelled = await openStream(coll.watch());
    await failCommand(
      { times: 1 },
      { failCommands: ['getMore'], errorCode: 50, errorLabels: ['ResumableChangeStreamError'] },
    );
    await coll.insertOne({ _id: 2 as never });
    expect((await take(labelled, 1))[0]!.documentKey).toEqual({ _id: 2 });
    await labelled.close();
    // The aggregate that opens a change stream gets the label from the server.
    await failCommand({ times: 1 }, { failCommands: ['aggregate'], errorCode: 6 });
    const opening = await client
      .db(coll.dbName)
      .command({ aggregate: coll.collectionName, pipeline: [{ $changeStream: {} }], cursor: {} })
      .catch((e: unknown) => e);
    expect((opening as MongoServerError).errorLabels).toEqual(['ResumableChangeStreamError']);
    // A retryable write gets RetryableWriteError, so the driver retries it once. (Not with a
    // state change error such as 91: the server is then Unknown until the monitor's next hello,
    // which a streaming monitor receives only after its maxAwaitTimeMS.)
    await failCommand({ times: 1 }, { failCommands: ['insert'], errorCode: 6 });
    await coll.insertOne({ _id: 3 as never });
    // An empty errorLabels list suppresses that: the error reaches the application.
    await failCommand({ times: 1 }, { failCommands: ['insert'], errorCode: 6, errorLabels: [] });
    await expect(coll.insertOne({ _id: 4 as never })).rejects.toMatchObject({ code: 6 });
    expect(await coll.countDocuments()).toBe(3);
  });

  it('failGetMoreAfterCursorCheckout fails inside getMore: resumable codes resume, others surface', async () => {
    const coll = client.db(mongo.database()).collection<Document>('checkout');
    const stream = await openStream(coll.watch());
    await configure({
      configureFailPoint: 'failGetMoreAfterCursorCheckout',
      mode: { times: 1 },
      data: { errorCode: 6 },
    });
    await coll.insertOne({ _id: 1 as never });
    expect((await take(stream, 1))[0]!.documentKey).toEqual({ _id: 1 });
    await configure({ configureFailPoint: 'failGetMoreAfterCursorCheckout', mode: { times: 1 } });
    await coll.insertOne({ _id: 2 as never });
    const error = await stream.next().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 1, codeName: 'InternalError' });
    expect((error as MongoServerError).errorLabels).toEqual([]);
    await stream.close();
  });

  it('closes the connection, blocks it for blockTimeMS, and applies only to its appName', async () => {
    const coll = client.db(mongo.database()).collection<Document>('network');
    await coll.insertOne({ _id: 1 as never });
    await failCommand({ times: 1 }, { failCommands: ['find'], closeConnection: true });
    // A closed connection is a network error; the driver retries the read once.
    expect(await coll.findOne({})).toEqual({ _id: 1 });
    await failCommand({ times: 2 }, { failCommands: ['find'], closeConnection: true });
    await expect(coll.findOne({})).rejects.toBeInstanceOf(MongoNetworkError);
    await failCommand(
      { times: 1 },
      { failCommands: ['find'], blockConnection: true, blockTimeMS: 300 },
    );
    const started = Date.now();
    expect(await coll.findOne({})).toEqual({ _id: 1 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    const app = new MongoClient(mongo.url, {
      appName: 'failpoint-app',
      serverSelectionTimeoutMS: 5000,
    });
    try {
      await failCommand('alwaysOn', {
        failCommands: ['find'],
        errorCode: 96,
        appName: 'failpoint-app',
      });
      expect(await coll.findOne({})).toEqual({ _id: 1 });
      await expect(
        app.db(coll.dbName).collection(coll.collectionName).findOne({}),
      ).rejects.toMatchObject({ code: 96 });
    } finally {
      await off();
      await app.close();
    }
  });
});

describe('renames onto an existing collection', () => {
  // Sources: mongodb/mongo src/mongo/db/pipeline/change_stream_filter_helpers.cpp (a rename is
  // seen by streams on its source and, through `o.to`, on its target; both are invalidated),
  // change_stream_event_transform.cpp (`ns` is the source, `to` and `operationDescription` name
  // the target), op_observer_impl.cpp onRenameCollection (one entry; `dropTarget` is the dropped
  // collection's UUID; no drop entry of its own); spec test change-streams-showExpandedEvents.
  it('is one rename event, seen on the target namespace too, which invalidates it', async () => {
    const db = client.db(mongo.database());
    const source = db.collection<Document>('source');
    const target = db.collection<Document>('target');
    await source.insertOne({ _id: 1 as never });
    await target.insertOne({ _id: 2 as never });
    const onSource = await openStream(source.watch());
    const onTarget = await openStream(target.watch([], { showExpandedEvents: true }));
    const onDb = await openStream(db.watch([], { showExpandedEvents: true }));
    await source.rename('target', { dropTarget: true });
    await db.collection('target').insertOne({ _id: 3 as never });

    const [rename, invalidate] = await take(onSource, 2);
    expect(rename).toMatchObject({
      operationType: 'rename',
      ns: { db: db.databaseName, coll: 'source' },
      to: { db: db.databaseName, coll: 'target' },
    });
    expect(rename).not.toHaveProperty('operationDescription');
    expect(invalidate!.operationType).toBe('invalidate');

    const [seen, invalidated] = await take(onTarget, 2);
    expect(seen).toMatchObject({
      operationType: 'rename',
      ns: { db: db.databaseName, coll: 'source' },
      to: { db: db.databaseName, coll: 'target' },
      operationDescription: { to: { db: db.databaseName, coll: 'target' } },
    });
    const dropped = seen!.operationDescription.dropTarget;
    expect(dropped?.constructor?.name).toMatch(/^(UUID|Binary)$/);
    expect(seen!.collectionUUID?.constructor?.name).toMatch(/^(UUID|Binary)$/);
    expect(invalidated!.operationType).toBe('invalidate');

    // The database stream: no drop event for the replaced collection, then the new insert.
    const [dbRename, insert] = await take(onDb, 2);
    expect(dbRename).toMatchObject({ operationType: 'rename', _id: seen!._id });
    expect(insert).toMatchObject({ operationType: 'insert', ns: { coll: 'target' } });
    // The renamed collection keeps its UUID.
    expect(insert!.collectionUUID).toEqual(seen!.collectionUUID);
    expect(await target.find().toArray()).toEqual([{ _id: 1 }, { _id: 3 }]);
    for (const stream of [onSource, onTarget, onDb]) await stream.close();
  });

  it('reads $out into an existing collection as a rename onto it', async () => {
    // DocumentSourceOut writes a temporary collection and renames it over the target.
    const db = client.db(mongo.database());
    const input = db.collection<Document>('input');
    const output = db.collection<Document>('output');
    await input.insertMany([
      { _id: 1 as never, n: 1 },
      { _id: 2 as never, n: 2 },
    ]);
    await output.insertOne({ _id: 9 as never });
    const onOutput = await openStream(output.watch());
    await input.aggregate([{ $match: { n: 2 } }, { $out: 'output' }]).toArray();
    const [rename, invalidate] = await take(onOutput, 2);
    expect(rename).toMatchObject({
      operationType: 'rename',
      to: { db: db.databaseName, coll: 'output' },
    });
    expect(rename!.ns.coll).toMatch(/^tmp\.agg_out\./);
    expect(invalidate!.operationType).toBe('invalidate');
    expect(await output.find().toArray()).toEqual([{ _id: 2, n: 2 }]);
    await onOutput.close();
  });
});

describe('renames across databases', () => {
  // Sources: mongodb/mongo src/mongo/db/catalog/rename_collection.cpp
  // (renameCollectionAcrossDatabases: a temporary collection tmp%%%%%.renameCollection in the
  // target database with a new UUID, the indexes built on it while empty, every document inserted
  // without fromMigrate, a rename within the target database, then a drop of the source),
  // jstests/change_streams/ddl_rename_cross_db.js and whole_db_metadata_notifications.js (what
  // streams on each side see), change_stream_filter_helpers.cpp (renames matched by `o.to`).
  const TEMP = /^tmp[0-9A-Za-z]{5}\.renameCollection$/;
  const admin = () => client.db('admin');

  it('is a drop on the source side and, on the target side, a copy renamed onto the target', async () => {
    const srcDb = client.db(mongo.database('from'));
    const dstDb = client.db(mongo.database('into'));
    const source = srcDb.collection<Document>('source');
    const target = dstDb.collection<Document>('target');
    await source.insertMany([
      { _id: 1 as never, a: 1 },
      { _id: 2 as never, a: 2 },
    ]);
    await source.createIndex({ a: 1 }, { name: 'a_1' });
    await target.insertOne({ _id: 9 as never, old: true });
    const [sourceInfo] = await srcDb.listCollections({ name: 'source' }).toArray();
    const onSource = await openStream(source.watch());
    const onSourceDb = await openStream(srcDb.watch());
    const onTarget = await openStream(target.watch());
    const onTargetDb = await openStream(dstDb.watch([], { showExpandedEvents: true }));
    const onTargetDbPlain = await openStream(dstDb.watch());
    await admin().command({
      renameCollection: source.namespace,
      to: target.namespace,
      dropTarget: true,
    });
    await target.insertOne({ _id: 3 as never });
    await srcDb.collection('marker').insertOne({ _id: 0 as never });

    // The source side sees a drop, never a rename.
    const [dropped, invalidated] = await take(onSource, 2);
    expect(dropped).toMatchObject({
      operationType: 'drop',
      ns: { db: srcDb.databaseName, coll: 'source' },
    });
    expect(invalidated!.operationType).toBe('invalidate');
    const [dbDrop, marker] = await take(onSourceDb, 2);
    expect(dbDrop).toMatchObject({ operationType: 'drop', ns: { coll: 'source' } });
    expect(marker).toMatchObject({ operationType: 'insert', ns: { coll: 'marker' } });

    // A stream on the target sees the rename from the temporary collection, and is invalidated.
    const [renamed, invalidate] = await take(onTarget, 2);
    expect(renamed).toMatchObject({
      operationType: 'rename',
      ns: { db: dstDb.databaseName },
      to: { db: dstDb.databaseName, coll: 'target' },
    });
    expect(renamed!.ns.coll).toMatch(TEMP);
    expect(invalidate!.operationType).toBe('invalidate');

    // The target database's stream sees the whole copy, then the rename, then later writes.
    const events = await take(onTargetDb, 6);
    expect(events.map((e) => e.operationType)).toEqual([
      'create',
      'createIndexes',
      'insert',
      'insert',
      'rename',
      'insert',
    ]);
    const temp = events[0]!.ns.coll as string;
    expect(temp).toMatch(TEMP);
    expect(events.slice(0, 5).every((e) => e.ns.coll === temp)).toBe(true);
    expect(events[1]!.operationDescription.indexes[0].name).toBe('a_1');
    expect(events.slice(2, 4).map((e) => e.fullDocument)).toEqual([
      { _id: 1, a: 1 },
      { _id: 2, a: 2 },
    ]);
    const rename = events[4]!;
    expect(rename).toMatchObject({
      to: { db: dstDb.databaseName, coll: 'target' },
      operationDescription: { to: { db: dstDb.databaseName, coll: 'target' } },
    });
    expect(rename.operationDescription.dropTarget?.constructor?.name).toMatch(/^(UUID|Binary)$/);
    expect(events[5]).toMatchObject({ ns: { coll: 'target' }, documentKey: { _id: 3 } });
    // The copy is a new collection: a UUID of its own, kept by the rename.
    const uuid = events[0]!.collectionUUID;
    expect(events.every((e) => String(e.collectionUUID) === String(uuid))).toBe(true);
    expect(String(uuid)).not.toBe(String((sourceInfo as Document).info.uuid));
    const plain = await take(onTargetDbPlain, 4);
    expect(plain.map((e) => `${e.operationType} ${e.ns.coll}`)).toEqual([
      `insert ${temp}`,
      `insert ${temp}`,
      `rename ${temp}`,
      'insert target',
    ]);

    expect(await target.find().toArray()).toEqual([{ _id: 1, a: 1 }, { _id: 2, a: 2 }, { _id: 3 }]);
    expect((await target.indexes()).map((i) => i.name)).toContain('a_1');
    expect(await srcDb.listCollections({ name: 'source' }).toArray()).toEqual([]);
    for (const stream of [onSource, onSourceDb, onTarget, onTargetDb, onTargetDbPlain]) {
      await stream.close();
    }
  });

  it('refuses an existing target without dropTarget (48) before writing anything', async () => {
    const srcDb = client.db(mongo.database('from'));
    const dstDb = client.db(mongo.database('into'));
    const source = srcDb.collection<Document>('source');
    await source.insertOne({ _id: 1 as never });
    await dstDb.collection('taken').insertOne({ _id: 1 as never });
    const onFresh = await openStream(
      dstDb.collection('fresh').watch([], { showExpandedEvents: true }),
    );
    const onTargetDb = await openStream(dstDb.watch());
    await expect(
      admin().command({ renameCollection: source.namespace, to: `${dstDb.databaseName}.taken` }),
    ).rejects.toMatchObject({ code: 48 });
    await admin().command({
      renameCollection: source.namespace,
      to: `${dstDb.databaseName}.fresh`,
    });

    // A stream on a collection that did not exist sees the rename onto it (no dropTarget).
    const [renamed, invalidate] = await take(onFresh, 2);
    expect(renamed).toMatchObject({
      operationType: 'rename',
      to: { db: dstDb.databaseName, coll: 'fresh' },
    });
    expect(renamed!.ns.coll).toMatch(TEMP);
    expect(renamed!.operationDescription).not.toHaveProperty('dropTarget');
    expect(invalidate!.operationType).toBe('invalidate');
    // Only the successful rename's copy: the refused one wrote nothing.
    const [insert, rename] = await take(onTargetDb, 2);
    expect(insert).toMatchObject({ operationType: 'insert', documentKey: { _id: 1 } });
    expect(rename).toMatchObject({ operationType: 'rename', to: { coll: 'fresh' } });
    expect(await dstDb.collection('fresh').find().toArray()).toEqual([{ _id: 1 }]);
    await onFresh.close();
    await onTargetDb.close();
  });
});

describe('collections a database stream does not show, and those it does', () => {
  it("shows $out's temporary collection: its inserts, then the rename onto the target", async () => {
    // DocumentSourceOut writes into tmp.agg_out.<UUID> through MongoProcessInterface::insert,
    // which is write_ops_exec::performInserts, ordinary logged inserts (no fromMigrate), and
    // kRegexAllCollections does not leave tmp.* out (non_shardsvr_process_interface.cpp,
    // document_source_out.cpp, change_stream_filter_helpers.cpp).
    const db = client.db(mongo.database());
    const input = db.collection<Document>('input');
    await input.insertMany([
      { _id: 1 as never, n: 1 },
      { _id: 2 as never, n: 2 },
    ]);
    await db.collection('output').insertOne({ _id: 9 as never });
    const onDb = await openStream(db.watch());
    await input.aggregate([{ $out: 'output' }]).toArray();
    await db.collection('after').insertOne({ _id: 0 as never });
    const events = await take(onDb, 4);
    const temp = events[0]!.ns.coll as string;
    expect(temp).toMatch(/^tmp\.agg_out\./);
    expect(events.map((e) => `${e.operationType} ${e.ns.coll}`)).toEqual([
      `insert ${temp}`,
      `insert ${temp}`,
      `rename ${temp}`,
      'insert after',
    ]);
    expect(events[2]!.to).toEqual({ db: db.databaseName, coll: 'output' });
    await onDb.close();
  });

  it('shows $merge as ordinary writes to its target: no temporary collection, no rename', async () => {
    // MergeProcessor (document_source_merge.cpp, merge_processor.cpp) writes into the target:
    // whenMatched merge is an upsert of {$set: doc}, replace an upserted replacement,
    // keepExisting an upsert of {$setOnInsert: doc}; an update that changes nothing is not logged.
    const db = client.db(mongo.database());
    const source = db.collection<Document>('source');
    const dest = db.collection<Document>('dest');
    await source.insertMany([
      { _id: 1 as never, a: 1 },
      { _id: 2 as never, a: 2 },
    ]);
    await dest.insertOne({ _id: 1 as never, a: 0, kept: true });
    const onDb = await openStream(db.watch());
    await source.aggregate([{ $merge: { into: 'dest' } }]).toArray();
    await source.updateOne({ _id: 2 as never }, { $set: { a: 3 } });
    await source.aggregate([{ $merge: { into: 'dest', whenMatched: 'replace' } }]).toArray();
    await source.insertOne({ _id: 3 as never, a: 4 });
    await source.aggregate([{ $merge: { into: 'dest', whenMatched: 'keepExisting' } }]).toArray();
    await db.collection('after').insertOne({ _id: 0 as never });
    const events = await take(onDb, 8);
    expect(events.map((e) => `${e.operationType} ${e.ns.coll} ${e.documentKey._id}`)).toEqual([
      'update dest 1',
      'insert dest 2',
      'update source 2',
      'replace dest 1',
      'replace dest 2',
      'insert source 3',
      'insert dest 3',
      'insert after 0',
    ]);
    expect(events[0]!.updateDescription.updatedFields).toEqual({ a: 1 });
    expect(await dest.find().toArray()).toEqual([
      { _id: 1, a: 1 },
      { _id: 2, a: 3 },
      { _id: 3, a: 4 },
    ]);
    await onDb.close();
  });

  it('leaves system.* collections out', async () => {
    // kRegexAllCollections `(?!(\$|system\.))` in document_source_change_stream.h;
    // jstests/change_streams/whole_db_metadata_notifications.js (system.views).
    const db = client.db(mongo.database());
    const onDb = await openStream(db.watch());
    await db.collection('system.js').insertOne({
      _id: 'echo' as never,
      value: new Code('function (x) { return x; }'),
    });
    await db.collection('visible').insertOne({ _id: 1 as never });
    const [next] = await take(onDb, 1);
    expect(next).toMatchObject({ operationType: 'insert', ns: { coll: 'visible' } });
    await onDb.close();
  });
});

describe('expanded events (showExpandedEvents)', () => {
  // Sources: change_stream_event_transform.cpp (collectionUUID, operationDescription,
  // stateBeforeChange; these operation types only with showExpandedEvents),
  // change_stream_document_diff_parser.cpp (disambiguatedPaths), op_observer_impl.cpp (what the
  // create, createIndexes, dropIndexes and collMod entries hold); spec tests
  // change-streams-showExpandedEvents and change-streams-disambiguatedPaths.
  it('reports create, createIndexes, dropIndexes and modify, with collectionUUID', async () => {
    const db = client.db(mongo.database());
    const plain = await openStream(db.watch());
    const expanded = await openStream(db.watch([], { showExpandedEvents: true }));
    await db.createCollection('made');
    const made = db.collection<Document>('made');
    await made.createIndex({ x: 1 }, { name: 'x_1' });
    await made.dropIndex('x_1');
    await db.command({ collMod: 'made', validationLevel: 'moderate' });
    await made.insertOne({ _id: 1 as never });

    const events = await take(expanded, 5);
    expect(events.map((e) => e.operationType)).toEqual([
      'create',
      'createIndexes',
      'dropIndexes',
      'modify',
      'insert',
    ]);
    const [create, createIndexes, dropIndexes, modify, insert] = events;
    const uuid = create!.collectionUUID;
    expect(uuid?.constructor?.name).toMatch(/^(UUID|Binary)$/);
    for (const event of events) expect(event.collectionUUID).toEqual(uuid);
    expect(create).toMatchObject({
      ns: { db: db.databaseName, coll: 'made' },
      operationDescription: { idIndex: { v: 2, key: { _id: 1 }, name: '_id_' } },
    });
    expect(createIndexes!.operationDescription).toEqual({
      indexes: [{ v: 2, key: { x: 1 }, name: 'x_1' }],
    });
    expect(dropIndexes!.operationDescription).toEqual({
      indexes: [{ v: 2, key: { x: 1 }, name: 'x_1' }],
    });
    expect(modify).toMatchObject({
      operationDescription: { validationLevel: 'moderate' },
      stateBeforeChange: { collectionOptions: { uuid } },
    });
    expect(insert).toMatchObject({ operationType: 'insert', documentKey: { _id: 1 } });

    // Without the flag: only the insert, and no collectionUUID on it.
    const [only] = await take(plain, 1);
    expect(only).toMatchObject({ operationType: 'insert', documentKey: { _id: 1 } });
    expect(only).not.toHaveProperty('collectionUUID');
    await plain.close();
    await expanded.close();
  });

  it('lists ambiguous update paths in disambiguatedPaths', async () => {
    const coll = client.db(mongo.database()).collection<Document>('paths');
    await coll.insertMany([
      { _id: 1 as never, a: { '1': 1 }, b: 1 },
      { _id: 2 as never, a: [{ '1': 1 }] },
    ]);
    const plain = await openStream(coll.watch());
    const expanded = await openStream(coll.watch([], { showExpandedEvents: true }));
    await coll.updateOne({ _id: 1 as never }, { $set: { 'a.1': 2 } });
    await coll.updateOne({ _id: 2 as never }, { $set: { 'a.0.1': 2 } });
    await coll.updateOne({ _id: 1 as never }, { $set: { b: 2 } });
    const [numeric, index, clear] = await take(expanded, 3);
    expect(numeric!.updateDescription).toEqual({
      updatedFields: { 'a.1': 2 },
      removedFields: [],
      truncatedArrays: [],
      disambiguatedPaths: { 'a.1': ['a', '1'] },
    });
    expect(index!.updateDescription.disambiguatedPaths).toEqual({ 'a.0.1': ['a', 0, '1'] });
    expect(clear!.updateDescription.disambiguatedPaths).toEqual({});
    const [withoutFlag] = await take(plain, 1);
    expect(withoutFlag!.updateDescription).not.toHaveProperty('disambiguatedPaths');
    await plain.close();
    await expanded.close();
  });
});

describe('change events over 16 MB', () => {
  // Sources: mongodb/mongo src/mongo/bson/bsonobj.cpp (BSONObjectTooLarge 10334 above
  // BSONObjMaxInternalSize, 16 MiB + 16 KiB), document_source_change_stream_split_large_event.cpp
  // and change_stream_split_event_helpers.cpp (fragments above 16 MiB + 8 KiB: fields smallest
  // first, `splitEvent: {fragment, of}`, a token per fragment, resuming inside a split event);
  // MongoDB manual "Large Change Events" (7.0, 6.0.9).
  const big = (char: string, mib: number) => char.repeat(mib * 1024 * 1024);

  /** An update whose looked-up document and update description together pass 16 MiB. */
  async function largeUpdate(coll: Collection<Document>) {
    await coll.insertOne({ _id: 1 as never, a: big('a', 8), b: '' });
    await coll.updateOne({ _id: 1 as never }, { $set: { b: big('b', 7.5) } });
    await coll.insertOne({ _id: 2 as never });
  }

  it('fails the stream with BSONObjectTooLarge (10334) without the split stage', async () => {
    const coll = client.db(mongo.database()).collection<Document>('large');
    const stream = await openStream(coll.watch([], { fullDocument: 'updateLookup' }));
    await coll.insertOne({ _id: 1 as never, a: big('a', 8), b: '' });
    expect((await take(stream, 1))[0]!.operationType).toBe('insert');
    await coll.updateOne({ _id: 1 as never }, { $set: { b: big('b', 7.5) } });
    // The whole getMore fails; the driver does not resume this code.
    await expect(stream.next()).rejects.toMatchObject({ code: 10334 });
    await stream.close();
  });

  it('splits it into fragments with $changeStreamSplitLargeEvent, each resumable', async () => {
    const coll = client.db(mongo.database()).collection<Document>('split');
    const split = [{ $changeStreamSplitLargeEvent: {} }];
    const options = { fullDocument: 'updateLookup' } as const;
    const stream = await openStream(coll.watch(split, options));
    await largeUpdate(coll);
    const [insert, first, second, after] = await take(stream, 4);
    expect(insert!.operationType).toBe('insert');
    expect(insert).not.toHaveProperty('splitEvent');
    expect(first!.splitEvent).toEqual({ fragment: 1, of: 2 });
    expect(second!.splitEvent).toEqual({ fragment: 2, of: 2 });
    // Smallest fields first: the update description fits beside them, the document does not.
    expect(first).toMatchObject({
      operationType: 'update',
      documentKey: { _id: 1 },
      updateDescription: { updatedFields: { b: big('b', 7.5) } },
    });
    expect(first).not.toHaveProperty('fullDocument');
    expect(Object.keys(second!)).toEqual(['_id', 'splitEvent', 'fullDocument']);
    expect(second!.fullDocument.a).toHaveLength(8 * 1024 * 1024);
    expect(first!._id).not.toEqual(second!._id);
    expect(after!.documentKey).toEqual({ _id: 2 });
    await stream.close();

    const fromFirst = coll.watch(split, { ...options, resumeAfter: first!._id });
    const [rest] = await take(fromFirst, 1);
    expect(rest!.splitEvent).toEqual({ fragment: 2, of: 2 });
    expect(rest!._id).toEqual(second!._id);
    await fromFirst.close();
    const fromSecond = coll.watch(split, { ...options, resumeAfter: second!._id });
    expect((await take(fromSecond, 1))[0]!.documentKey).toEqual({ _id: 2 });
    await fromSecond.close();
  });

  it('sends the fragments of consecutive split events several to a getMore, every byte intact', async () => {
    // Fragments are batched like any documents (FindCommon: 16 MiB a batch, the first always):
    // two fragments of one event never fit together, the last of one event and the first of
    // the next can. The fields are text in which every 16 characters name their offset, so a
    // cut, shifted or repeated piece cannot compare equal.
    const MiB = 1024 * 1024;
    const text = (tag: string, mib: number) =>
      Array.from(
        { length: (mib * MiB) / 16 },
        (_, i) => `${tag}${i.toString(16).padStart(14, '0')}\n`,
      ).join('');
    const [a1, b1, a2, b2] = [text('a', 2.5), text('b', 7), text('c', 4.5), text('d', 6)];
    const db = client.db(mongo.database());
    const coll = db.collection<Document>('fragments');
    await coll.insertMany([
      { _id: 1 as never, a: a1 },
      { _id: 2 as never, a: a2 },
    ]);
    const opened = await db.command({
      aggregate: 'fragments',
      pipeline: [
        { $changeStream: { fullDocument: 'updateLookup' } },
        { $changeStreamSplitLargeEvent: {} },
      ],
      cursor: { batchSize: 0 },
    });
    // Each event is 16.5 MiB: its update description (7 and 6 MiB) in its first fragment, its
    // looked-up document (9.5 and 10.5 MiB) in the second.
    await coll.updateOne({ _id: 1 as never }, { $set: { b: b1 } });
    await coll.updateOne({ _id: 2 as never }, { $set: { b: b2 } });
    await coll.insertOne({ _id: 3 as never });
    const batches: Document[][] = [];
    while (batches.flat().length < 5) {
      const reply = await db.command({
        getMore: opened.cursor.id,
        collection: 'fragments',
        batchSize: 1000,
        maxTimeMS: 1000,
      });
      if (reply.cursor.nextBatch.length > 0) batches.push(reply.cursor.nextBatch);
    }
    await db.command({ killCursors: 'fragments', cursors: [opened.cursor.id] });
    const shape = (e: Document) =>
      e.splitEvent ? `${e.splitEvent.fragment}/${e.splitEvent.of}` : e.operationType;
    expect(batches.map((batch) => batch.map(shape))).toEqual([
      ['1/2'],
      ['2/2', '1/2'],
      ['2/2', 'insert'],
    ]);
    const [first1, second1, first2, second2, insert] = batches.flat() as Document[];
    const sameText = (actual: unknown, expected: string, what: string) => {
      if (actual === expected) return;
      const got = String(actual);
      let at = 0;
      while (at < got.length && got[at] === expected[at]) at++;
      expect.fail(`${what}: ${got.length} characters, not ${expected.length}; differs at ${at}`);
    };
    for (const [first, second, id, a, b] of [
      [first1!, second1!, 1, a1, b1],
      [first2!, second2!, 2, a2, b2],
    ] as const) {
      expect(first).toMatchObject({ operationType: 'update', documentKey: { _id: id } });
      expect(Object.keys(first.updateDescription.updatedFields)).toEqual(['b']);
      sameText(first.updateDescription.updatedFields.b, b, `update ${id}: updatedFields.b`);
      expect(first).not.toHaveProperty('fullDocument');
      expect(Object.keys(second)).toEqual(['_id', 'splitEvent', 'fullDocument']);
      expect(Object.keys(second.fullDocument)).toEqual(['_id', 'a', 'b']);
      expect(second.fullDocument._id).toBe(id);
      sameText(second.fullDocument.a, a, `update ${id}: fullDocument.a`);
      sameText(second.fullDocument.b, b, `update ${id}: fullDocument.b`);
      expect(second._id).not.toEqual(first._id);
    }
    expect(insert!.fullDocument).toEqual({ _id: 3 });
  });

  it('refuses $changeStreamSplitLargeEvent anywhere but last', async () => {
    const coll = client.db(mongo.database()).collection<Document>('misplaced');
    const stream = coll.watch([{ $changeStreamSplitLargeEvent: {} }, { $match: {} }]);
    await expect(stream.next()).rejects.toMatchObject({ code: 7182802 });
    await stream.close();
  });
});

describe('the server version and $changeStreamSplitLargeEvent', () => {
  // Sources: MongoDB manual, "$changeStreamSplitLargeEvent (aggregation)": "New in MongoDB 7.0
  // (and 6.0.9)" (SERVER-71828, 7.0.0-rc0; backported to the 6.0 LTS from 6.0.9, DRIVERS-2674);
  // the change-streams spec runs its split-event prose test "only against servers >=6.0.9 &&
  // <6.1 or >=7.0" (mongodb/specifications source/change-streams/tests/README.md, test 19), so
  // the 6.1-6.3 rapid releases lack it. A stage a server does not know fails with 40324 (the
  // pipeline parser's "Unrecognized pipeline stage name"). maxWireVersion per release:
  // source/wireversion-featurelist (6.3 by its rule: from 5.1 on, one more per release).
  const hasSplitStage = ([major = 0, minor = 0, patch = 0]: number[]) =>
    major >= 7 || (major === 6 && minor === 0 && patch >= 9);
  const wireVersions: Record<string, number> = { '6.0': 17, '6.3': 20, '7.0': 21, '8.0': 25 };

  /** 'opened', or the code an aggregate with the split stage fails with. */
  async function openSplitStream(c: MongoClient): Promise<string | number> {
    const db = c.db(mongo.database('version'));
    try {
      const reply = await db.command({
        aggregate: 'v',
        pipeline: [{ $changeStream: {} }, { $changeStreamSplitLargeEvent: {} }],
        cursor: {},
      });
      await db.command({ killCursors: 'v', cursors: [reply.cursor.id] });
      return 'opened';
    } catch (error) {
      return (error as MongoServerError).code as number;
    }
  }

  it('reports its version in buildInfo and hello, and has the split stage from 6.0.9 on, not on 6.1-6.3', async () => {
    const { MongoHarness } = await import('../support/mongo/index.js');
    // On a real server: the version it reports agrees with the rule.
    const versions = mongo.harness ? ['6.0.8', '6.0.9', '6.3.2', '7.0.0', '8.0.4'] : [null];
    const seen: Array<[string, string | number]> = [];
    for (const version of versions) {
      const own = version ? await MongoHarness.start({ version }) : null;
      const c = own ? new MongoClient(own.url, { serverSelectionTimeoutMS: 5000 }) : client;
      try {
        const info = await c.db('admin').command({ buildInfo: 1 });
        const numbers = (info.versionArray as number[]).map(Number);
        if (version) {
          expect(info.version).toBe(version);
          expect(numbers.slice(0, 3)).toEqual(version.split('.').map(Number));
          const hello = await c.db('admin').command({ hello: 1 });
          expect(hello.maxWireVersion).toBe(wireVersions[numbers.slice(0, 2).join('.')]);
        }
        const opened = await openSplitStream(c);
        expect(opened).toBe(hasSplitStage(numbers) ? 'opened' : 40324);
        seen.push([String(info.version), opened]);
      } finally {
        if (own) {
          await c.close();
          await own.stop();
        }
      }
    }
    if (mongo.harness) {
      expect(seen).toEqual([
        ['6.0.8', 40324],
        ['6.0.9', 'opened'],
        ['6.3.2', 40324],
        ['7.0.0', 'opened'],
        ['8.0.4', 'opened'],
      ]);
    }
  });

  it.runIf(!process.env.TEST_MONGODB_URL)('keeps its version across a restart', async () => {
    const { MongoHarness } = await import('../support/mongo/index.js');
    const own = await MongoHarness.start({ version: '6.0.8' });
    const c = new MongoClient(own.url, { serverSelectionTimeoutMS: 5000 });
    try {
      await own.stop();
      await own.start();
      expect((await c.db('admin').command({ buildInfo: 1 })).version).toBe('6.0.8');
      expect(await openSplitStream(c)).toBe(40324);
    } finally {
      await c.close();
      await own.stop();
    }
  });
});

describe('events sharing one cluster time', () => {
  // Sources: a multi-document delete is logged in batches, each one applyOps entry (batched
  // deletes, default since 6.1: get_executor.cpp `batchUserMultiDeletes`,
  // OpObserverImpl::onBatchedWriteCommit); its events share the entry's clusterTime and differ
  // by txnOpIndex in their resume tokens (change_stream_event_transform.cpp makeResumeToken,
  // document_source_change_stream_unwind_transaction.cpp).
  it('gives each event of a deleteMany its own token; resuming in the middle works', async () => {
    const coll = client.db(mongo.database()).collection<Document>('batched');
    await coll.insertMany([1, 2, 3].map((n) => ({ _id: n as never })));
    const stream = await openStream(coll.watch());
    await coll.deleteMany({});
    await coll.insertOne({ _id: 4 as never });
    const [a, b, c, d] = await take(stream, 4);
    expect([a, b, c].map((e) => e!.operationType)).toEqual(['delete', 'delete', 'delete']);
    expect(b!.clusterTime).toEqual(a!.clusterTime);
    expect(c!.clusterTime).toEqual(a!.clusterTime);
    expect(new Set([a, b, c].map((e) => e!._id._data)).size).toBe(3);
    await stream.close();
    const resumed = coll.watch([], { resumeAfter: a!._id });
    const after = await take(resumed, 3);
    expect(after.map((e) => e.documentKey._id)).toEqual([
      b!.documentKey._id,
      c!.documentKey._id,
      4,
    ]);
    expect(d!.documentKey).toEqual({ _id: 4 });
    await resumed.close();
    const afterB = coll.watch([], { startAfter: b!._id });
    expect((await take(afterB, 1))[0]!._id).toEqual(c!._id);
    await afterB.close();
  });
});

describe('an idle stream', () => {
  // Source: src/mongo/db/repl/noop_writer.cpp (the primary logs a no-op when nothing was
  // written for periodicNoopIntervalSecs, 10 s by default), so the postBatchResumeToken of a
  // stream that sees no events still moves. The harness's interval is set short here.
  it('sees its postBatchResumeToken move on periodic no-op writes', async () => {
    const { MongoHarness } = await import('../support/mongo/index.js');
    const own = mongo.harness ? await MongoHarness.start({ noopIntervalMs: 200 }) : null;
    const c = own ? new MongoClient(own.url, { serverSelectionTimeoutMS: 5000 }) : client;
    try {
      const coll = c.db(mongo.database()).collection<Document>('idle');
      const stream = coll.watch([], { maxAwaitTimeMS: 100 });
      expect(await stream.tryNext()).toBeNull();
      const before = stream.resumeToken as { _data: string };
      await new Promise((r) => setTimeout(r, own ? 600 : 11_000));
      expect(await stream.tryNext()).toBeNull();
      const after = stream.resumeToken as { _data: string };
      expect(after._data).not.toBe(before._data);
      await stream.close();
      // The moved token is a position like any other: nothing is skipped from it.
      await coll.insertOne({ _id: 1 as never });
      const resumed = coll.watch([], { resumeAfter: after });
      expect((await take(resumed, 1))[0]!.documentKey).toEqual({ _id: 1 });
      await resumed.close();
    } finally {
      if (own) {
        await c.close();
        await own.stop();
      }
    }
  }, 30_000);
});

describe.runIf(!process.env.TEST_MONGODB_URL)('faults (harness only)', () => {
  it('kills change-stream cursors; the driver resumes without losing an event', async () => {
    const coll = client.db(mongo.database()).collection<Document>('kill');
    const stream = await openStream(coll.watch());
    await coll.insertOne({ _id: 1 as never });
    await take(stream, 1);
    expect(mongo.harness!.killChangeStreamCursors()).toBe(1);
    await coll.insertOne({ _id: 2 as never });
    expect((await take(stream, 1))[0]!.documentKey).toEqual({ _id: 2 });
    await stream.close();
  });

  it('drops every connection; streams resume', async () => {
    const coll = client.db(mongo.database()).collection<Document>('drop');
    const stream = await openStream(coll.watch());
    await coll.insertOne({ _id: 1 as never });
    await take(stream, 1);
    mongo.harness!.dropConnections();
    // A write in flight is retried only if its own connection fails first: when the streaming
    // monitor sees the drop first, the server is Unknown by then, and the driver labels the
    // error retryable only for a server known to support retryable writes. So write until done.
    const write = () => coll.replaceOne({ _id: 2 as never }, { n: 2 }, { upsert: true });
    await write().catch(write);
    expect((await take(stream, 1))[0]!.documentKey).toEqual({ _id: 2 });
    await stream.close();
  });

  it('failGetMore labels a resumable error inside getMore so the driver resumes', async () => {
    const coll = client.db(mongo.database()).collection<Document>('label');
    const stream = await openStream(coll.watch());
    mongo.harness!.failGetMore({ code: 91 });
    await coll.insertOne({ _id: 1 as never });
    expect((await take(stream, 1))[0]!.documentKey).toEqual({ _id: 1 });
    await stream.close();
  });

  it('failCommand in process is the failCommand fail point: no change-stream label on getMore', async () => {
    const coll = client.db(mongo.database()).collection<Document>('nolabel');
    const stream = await openStream(coll.watch());
    mongo.harness!.failCommand('getMore', { code: 91 });
    await coll.insertOne({ _id: 1 as never });
    const error = await stream.next().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 91 });
    expect((error as MongoServerError).errorLabels).not.toContain('ResumableChangeStreamError');
    await stream.close();
  });

  it('stops and starts again on the same port: data and oplog kept, fail points forgotten', async () => {
    const harness = mongo.harness!;
    const coll = client.db(mongo.database()).collection<Document>('restart');
    const stream = await openStream(coll.watch());
    await coll.insertOne({ _id: 1 as never });
    const [first] = await take(stream, 1);
    const address = harness.address;
    harness.failCommand('insert', { code: 91, times: 'alwaysOn' });
    const before = (await client.db('admin').command({ hello: 1 })).topologyVersion;
    await harness.stop();
    const refused = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 300 });
    await expect(refused.db('admin').command({ ping: 1 })).rejects.toThrow();
    await refused.close();
    await harness.start();
    expect(harness.address).toBe(address);
    // A new process: a new topologyVersion.processId.
    const after = (await client.db('admin').command({ hello: 1 })).topologyVersion;
    expect(after.processId).not.toEqual(before.processId);
    await coll.insertOne({ _id: 2 as never });
    expect((await take(stream, 1))[0]!.documentKey).toEqual({ _id: 2 });
    await stream.close();
    const resumed = coll.watch([], { resumeAfter: first!._id });
    expect((await take(resumed, 1))[0]!.documentKey).toEqual({ _id: 2 });
    await resumed.close();
    expect(await coll.countDocuments()).toBe(2);
  });

  it('applies a retried write once', async () => {
    const coll = client.db(mongo.database()).collection<Document>('retry');
    const stream = await openStream(coll.watch());
    mongo.harness!.failCommand('insert', { code: 91, closeConnection: true });
    await coll.insertOne({ _id: 1 as never });
    expect(await coll.countDocuments()).toBe(1);
    mongo.harness!.failCommand('update', { code: 189 });
    await coll.updateOne({ _id: 1 as never }, { $inc: { n: 1 } });
    expect(await coll.findOne({ _id: 1 as never })).toEqual({ _id: 1, n: 1 });
    const events = await take(stream, 2);
    expect(events.map((e) => e.operationType)).toEqual(['insert', 'update']);
    await stream.close();
  });

  it('fails a resume before discarded history with 286', async () => {
    const coll = client.db(mongo.database()).collection<Document>('lost');
    const stream = await openStream(coll.watch());
    await coll.insertOne({ _id: 1 as never });
    const [first] = await take(stream, 1);
    await stream.close();
    await coll.insertOne({ _id: 2 as never });
    mongo.harness!.discardHistory();
    const resumed = coll.watch([], { resumeAfter: first!._id });
    await expect(resumed.next()).rejects.toMatchObject({ code: 286 });
    await resumed.close();
  });

  it('pauses and resumes answering', async () => {
    const coll = client.db(mongo.database()).collection<Document>('pause');
    mongo.harness!.pause();
    let answered = false;
    const pending = coll.insertOne({ _id: 1 as never }).then(() => (answered = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);
    mongo.harness!.resume();
    await pending;
    expect(await coll.countDocuments()).toBe(1);
  });
});

describe.runIf(!process.env.TEST_MONGODB_URL)('standalone mode', () => {
  it('refuses change streams with 40573', async () => {
    const { MongoHarness } = await import('../support/mongo/index.js');
    const standalone = await MongoHarness.start({ replicaSet: false });
    const c = new MongoClient(standalone.url, { serverSelectionTimeoutMS: 3000 });
    try {
      await c.db('x').collection('y').insertOne({ a: 1 });
      await expect(c.db('x').collection('y').watch().next()).rejects.toMatchObject({ code: 40573 });
    } finally {
      await c.close();
      await standalone.stop();
    }
  });
});
