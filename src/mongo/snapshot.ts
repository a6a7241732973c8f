// The initial copy of a collection, in `_id` order and in batches, resumable after the last
// `_id` copied.
import type { Document, MongoClient } from 'mongodb';

export async function* snapshotBatches(
  client: MongoClient,
  database: string,
  collection: string,
  batchSize: number,
  afterId: unknown,
): AsyncGenerator<Document[]> {
  // `$gt` compares within one BSON type: a collection mixing `_id` types resumes within the type
  // it stopped at, and the change stream replay from the snapshot start covers later writes.
  const filter: Document =
    afterId === undefined || afterId === null ? {} : { _id: { $gt: afterId } };
  const cursor = client
    .db(database)
    .collection(collection)
    .find(filter, { sort: { _id: 1 }, batchSize, promoteLongs: false });
  let batch: Document[] = [];
  try {
    for await (const doc of cursor) {
      batch.push(doc);
      if (batch.length >= batchSize) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  } finally {
    await cursor.close();
  }
}

/** The collections of a database a whole-database relay copies and maps to tables. */
export async function listCollections(client: MongoClient, database: string): Promise<string[]> {
  const collections = await client
    .db(database)
    .listCollections({ type: 'collection' }, { nameOnly: true })
    .toArray();
  return collections
    .map((c) => c.name)
    .filter((name) => !name.startsWith('system.'))
    .sort();
}
