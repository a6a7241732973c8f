// Reading a change stream in batches: up to `batchSize` events or `batchBytes` of them, waiting at
// most `batchWaitMs` after the first, a collection- or database-wide event always last in its batch. Reopens past
// `invalidate` with `startAfter`, as the design asks.
import { BSON, type Timestamp, type ChangeStream, type Document, type MongoClient } from 'mongodb';
import { explainMongoError } from './errors.js';
import { READ_BSON } from './connect.js';

export type FullDocumentMode = 'updateLookup' | 'whenAvailable' | 'required' | 'patch';

/** Where a change stream starts: the options it is opened with. */
export type StreamPosition = { startAfter: Document } | { startAtOperationTime: Timestamp };

export interface SourceOptions {
  database: string;
  /** null: every collection of the database. */
  collections: string[] | null;
  fullDocument: FullDocumentMode;
  /** Extra pipeline stages from --filter, applied after the relay's own. */
  filter: Document[];
  batchSize: number;
  /**
   * A batch closes once its events reach this many bytes (their BSON size), so large documents
   * make small batches; a batch always takes its first event, however large.
   */
  batchBytes: number;
  batchWaitMs: number;
}

export interface SourceBatch {
  events: Document[];
  /** Where a stream reopened after this batch continues; null before the server named one. */
  position: StreamPosition | null;
}

export const CONTROL_OPERATIONS = new Set(['drop', 'rename', 'dropDatabase', 'invalidate']);

export class ChangeSource {
  private stream: ChangeStream | null = null;
  private position: StreamPosition | null = null;

  constructor(
    private readonly client: MongoClient,
    readonly options: SourceOptions,
  ) {}

  get where(): string {
    const { database, collections } = this.options;
    return collections?.length === 1 ? `${database}.${collections[0]}` : database;
  }

  /** The relay's own stages: only the collections asked for, plus events that end a stream. */
  private pipeline(): Document[] {
    const { collections, filter } = this.options;
    const stages: Document[] = [];
    if (collections && collections.length > 1) {
      stages.push({
        $match: {
          $or: [
            { 'ns.coll': { $in: collections } },
            // A rename onto a relayed collection replaces it (dropTarget, $out into it).
            { 'to.coll': { $in: collections } },
            { operationType: { $in: ['dropDatabase', 'invalidate'] } },
          ],
        },
      });
    }
    return [...stages, ...filter];
  }

  open(position: StreamPosition): void {
    this.position = position;
    const { database, collections, fullDocument, batchSize, batchWaitMs } = this.options;
    const options = {
      ...position,
      ...(fullDocument === 'patch' ? {} : { fullDocument }),
      batchSize,
      maxAwaitTimeMS: batchWaitMs,
      ...READ_BSON,
    };
    const db = this.client.db(database);
    this.stream =
      collections?.length === 1
        ? db.collection(collections[0]!).watch(this.pipeline(), options)
        : db.watch(this.pipeline(), options);
  }

  /** The next batch of events; an empty one after `batchWaitMs` without any. */
  async next(): Promise<SourceBatch> {
    const stream = this.stream;
    if (!stream) throw new Error('ChangeSource.next() before open()');
    const events: Document[] = [];
    const started = Date.now();
    // A batch closes when full, or batchWaitMs after its first event: under steady load a read
    // never comes back empty, so waiting for one would hold events until the batch is full.
    let firstAt = 0;
    let bytes = 0;
    try {
      while (events.length < this.options.batchSize && bytes < this.options.batchBytes) {
        if (events.length > 0 && Date.now() - firstAt >= this.options.batchWaitMs) break;
        const event = await stream.tryNext();
        if (event) {
          if (events.length === 0) firstAt = Date.now();
          events.push(event);
          bytes += BSON.calculateObjectSize(event);
          if (CONTROL_OPERATIONS.has(event.operationType)) break;
          continue;
        }
        if (events.length > 0 || Date.now() - started >= this.options.batchWaitMs) break;
      }
    } catch (error) {
      throw explainMongoError(error, this.where);
    }
    const token = stream.resumeToken as Document | null;
    if (token) this.position = { startAfter: token };
    if (events.at(-1)?.operationType === 'invalidate') {
      // The server closed the stream; `startAfter` the invalidate token continues past it.
      await this.close();
      this.open({ startAfter: events.at(-1)!._id });
    }
    return { events, position: this.position };
  }

  async close(): Promise<void> {
    const stream = this.stream;
    this.stream = null;
    await stream?.close().catch(() => {});
  }
}

/**
 * Where a stream opened now starts: the postBatchResumeToken of a change-stream aggregate asked
 * for no events (batchSize 0). A stream started after it sees every write that commits later;
 * the operationTime of a command can be ahead of a write that reserved an earlier timestamp and
 * commits after it, which a stream started there would miss.
 */
export async function currentPosition(
  client: MongoClient,
  options: Pick<SourceOptions, 'database' | 'collections'>,
): Promise<StreamPosition> {
  const { database, collections } = options;
  const db = client.db(database);
  const collection = collections?.length === 1 ? collections[0]! : null;
  const reply = await db
    .command({
      aggregate: collection ?? 1,
      pipeline: [{ $changeStream: {} }],
      cursor: { batchSize: 0 },
    })
    .catch((error: unknown) => {
      throw explainMongoError(error, collection ? `${database}.${collection}` : database);
    });
  const cursor = reply.cursor as { id?: unknown; postBatchResumeToken?: Document } | undefined;
  if (cursor?.id && String(cursor.id) !== '0') {
    await db
      .command({ killCursors: collection ?? '$cmd.aggregate', cursors: [cursor.id] })
      .catch(() => undefined);
  }
  if (!cursor?.postBatchResumeToken) {
    throw new Error(`MongoDB did not report a resume token for ${database}; is it a replica set?`);
  }
  return { startAfter: cursor.postBatchResumeToken };
}
