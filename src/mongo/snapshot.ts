// The initial copy of a collection, in `_id` order and in batches, resumable after the last
// `_id` copied.
import type { Document, FindCursor, MongoClient } from 'mongodb';
import { READ_BSON } from './connect.js';
import { isInternalCollection } from './namespaces.js';

export interface SnapshotBatch {
  /** The documents as the bytes MongoDB sent, which the rows are written from (convert/bson.ts). */
  documents: Buffer[];
  /** Their BSON size. */
  bytes: number;
}

/** Reads one collection after `afterId` in `_id` order, a batch at a time. */
export class SnapshotReader {
  private readonly cursor: FindCursor<Buffer>;

  constructor(
    client: MongoClient,
    database: string,
    collection: string,
    private readonly batchSize: number,
    afterId: unknown,
  ) {
    // `$gt` compares within one BSON type; resumeAfter() does not resume a collection whose _ids
    // mix types (it would skip the other types).
    const filter: Document =
      afterId === undefined || afterId === null ? {} : { _id: { $gt: afterId } };
    this.cursor = client
      .db(database)
      .collection(collection)
      .find(filter, { sort: { _id: 1 }, batchSize, raw: true }) as unknown as FindCursor<Buffer>;
  }

  /**
   * The next documents, up to `batchSize` or until they reach `maxBytes` (the one that reaches
   * it included, so a document of any size is copied); none after the last.
   */
  async next(maxBytes: number): Promise<SnapshotBatch> {
    const documents: Buffer[] = [];
    let bytes = 0;
    while (documents.length < this.batchSize && bytes < maxBytes) {
      const doc = await this.cursor.next();
      if (doc === null) break;
      documents.push(doc);
      bytes += doc.length;
    }
    return { documents, bytes };
  }

  async close(): Promise<void> {
    await this.cursor.close();
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
 * own, nor a temporary one that a `$out` or a rename in progress will rename onto its target,
 * nor a Queryable Encryption state collection. `leftOut` is told each one left out but
 * `system.*`, which nobody expects relayed.
 */
export async function listCollections(
  client: MongoClient,
  database: string,
  leftOut?: (collection: string) => void,
): Promise<string[]> {
  const collections = await client
    .db(database)
    .listCollections({ type: 'collection' }, { nameOnly: true })
    .toArray();
  const names: string[] = [];
  for (const { name } of collections) {
    if (!isInternalCollection(name)) names.push(name);
    else if (!name.startsWith('system.')) leftOut?.(name);
  }
  return names.sort();
}
