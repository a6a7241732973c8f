// The initial copy of a collection, in `_id` order and in batches, resumable after the last
// `_id` copied.
import { BSON, type Document, type MongoClient } from 'mongodb';
import { READ_BSON } from './connect.js';
import { isInternalCollection } from './namespaces.js';

/** A batch closes at `batchSize` documents or once they reach `batchBytes` (BSON size). */
export interface BatchLimits {
  batchSize: number;
  batchBytes: number;
}

export async function* snapshotBatches(
  client: MongoClient,
  database: string,
  collection: string,
  { batchSize, batchBytes }: BatchLimits,
  afterId: unknown,
): AsyncGenerator<Document[]> {
  // `$gt` compares within one BSON type; resumeAfter() does not resume a collection whose _ids mix
  // types (it would skip the other types).
  const filter: Document =
    afterId === undefined || afterId === null ? {} : { _id: { $gt: afterId } };
  const cursor = client
    .db(database)
    .collection(collection)
    .find(filter, { sort: { _id: 1 }, batchSize, ...READ_BSON });
  let batch: Document[] = [];
  let bytes = 0;
  try {
    for await (const doc of cursor) {
      batch.push(doc);
      bytes += BSON.calculateObjectSize(doc);
      if (batch.length >= batchSize || bytes >= batchBytes) {
        yield batch;
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length > 0) yield batch;
  } finally {
    await cursor.close();
  }
}

/** MongoDB's sort order of BSON types, as groups (numbers compare with each other, and so on). */
export function idTypeGroup(id: unknown): number {
  if (id === null || id === undefined) return 1;
  switch (typeof id) {
    case 'number':
    case 'bigint':
      return 2;
    case 'string':
      return 3;
    case 'boolean':
      return 8;
  }
  if (id instanceof Date) return 9;
  if (id instanceof RegExp) return 11;
  switch ((id as { _bsontype?: string })._bsontype) {
    case 'MinKey':
      return 0;
    case 'Int32':
    case 'Double':
    case 'Long':
    case 'Decimal128':
      return 2;
    case 'BSONSymbol':
      return 3;
    case 'Binary':
      return 6;
    case 'ObjectId':
      return 7;
    case 'Timestamp':
      return 10;
    case 'BSONRegExp':
      return 11;
    case 'MaxKey':
      return 12;
    default:
      return 4; // an embedded document
  }
}

/**
 * Where an interrupted copy resumes: after `lastId` when every _id has one BSON type (the usual
 * case, checked with two _id index lookups), otherwise from the start, since `$gt` would skip the
 * other types; copying again is harmless (upserts).
 */
export async function resumeAfter(
  client: MongoClient,
  database: string,
  collection: string,
  lastId: unknown,
): Promise<{ afterId: unknown; mixedTypes: boolean }> {
  if (lastId === undefined) return { afterId: undefined, mixedTypes: false };
  const coll = client.db(database).collection(collection);
  const [first] = await coll
    .find({}, { sort: { _id: 1 }, limit: 1, projection: { _id: 1 }, ...READ_BSON })
    .toArray();
  const [last] = await coll
    .find({}, { sort: { _id: -1 }, limit: 1, projection: { _id: 1 }, ...READ_BSON })
    .toArray();
  const mixedTypes =
    first !== undefined && last !== undefined && idTypeGroup(first._id) !== idTypeGroup(last._id);
  return mixedTypes ? { afterId: undefined, mixedTypes } : { afterId: lastId, mixedTypes };
}

/**
 * The collections of a database a whole-database relay copies and maps to tables: not MongoDB's
 * own, nor a temporary one that a `$out` or a rename in progress will rename onto its target.
 */
export async function listCollections(client: MongoClient, database: string): Promise<string[]> {
  const collections = await client
    .db(database)
    .listCollections({ type: 'collection' }, { nameOnly: true })
    .toArray();
  return collections
    .map((c) => c.name)
    .filter((name) => !isInternalCollection(name))
    .sort();
}
